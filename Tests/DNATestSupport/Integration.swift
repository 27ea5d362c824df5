public import Testing

/// The trait of the integration suites — those that start processes, open sockets and
/// PostgreSQL servers, or wait on real time: one such suite runs at a time, across every
/// test target, its tests one after another (the suites are `.serialized` too), while the
/// unit tests (pure machines, codecs, the model simulation) run in parallel beside them.
/// On a machine of two cores, integration tests run side by side would time each other
/// out.
///
/// A suite waits for its turn before its first test starts, so the tests' time limits
/// count none of the waiting. A suite nested in another takes no turn of its own.
public struct IntegrationTrait: SuiteTrait, TestTrait, TestScoping {
    /// The turn is the suite's, not each test's (whose time limits must not count the wait).
    public var isRecursive: Bool { false }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        if IntegrationTurn.holding {
            try await function()
            return
        }
        await IntegrationTurn.shared.take()
        do {
            try await IntegrationTurn.$holding.withValue(true) { try await function() }
        } catch {
            await IntegrationTurn.shared.give()
            throw error
        }
        await IntegrationTurn.shared.give()
    }
}

extension Trait where Self == IntegrationTrait {
    /// Runs the suite when no other integration suite runs (``IntegrationTrait``).
    public static var integration: Self { IntegrationTrait() }
}

/// The one turn integration tests take, in the order they asked for it.
actor IntegrationTurn {
    static let shared = IntegrationTurn()
    @TaskLocal static var holding = false

    private var taken = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func take() async {
        guard taken else {
            taken = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func give() {
        if waiting.isEmpty {
            taken = false
        } else {
            waiting.removeFirst().resume()
        }
    }
}
