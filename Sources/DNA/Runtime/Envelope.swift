import Synchronization

/// Where a call's answer goes.
typealias ReplyContinuation = UnsafeContinuation<any Sendable, any Error>

/// One message in a mailbox.
struct Envelope: Sendable {
    var requestType: ObjectIdentifier
    /// A ``MessageBox`` of the request type.
    var message: any AnyObject & Sendable
    /// `nil` for a cast.
    var reply: ReplyContinuation?
}

/// A response waiting behind the output gate.
struct HeldReply: Sendable {
    var continuation: ReplyContinuation
    var result: Result<any Sendable, any Error>

    func release() {
        continuation.resume(with: result)
    }
}

/// A batch being committed while the activation handles the next one. Its held replies are
/// released by whoever sees the commit succeed first: the store's completion, or the
/// activation after a retry.
final class InFlightCommit: Sendable {
    private struct State {
        var held: [HeldReply]
        var result: Result<Void, StoreError>?
        var waiter: UnsafeContinuation<Result<Void, StoreError>, Never>?
    }

    let batch: CommitBatch
    private let state: Mutex<State>

    init(batch: CommitBatch, held: [HeldReply]) {
        self.batch = batch
        self.state = Mutex(State(held: held))
    }

    /// Whether the store has answered.
    var isComplete: Bool {
        state.withLock { (state: inout State) -> Bool in
            if case .none = state.result { return false }
            return true
        }
    }

    /// Adds replies to release with this batch (or at once, if it is already durable).
    func append(_ replies: [HeldReply]) {
        let releaseNow = state.withLock { state -> Bool in
            if case .success = state.result { return true }
            state.held.append(contentsOf: replies)
            return false
        }
        if releaseNow { for reply in replies { reply.release() } }
    }

    /// Called by the store, on its thread.
    func complete(_ result: Result<Void, StoreError>) {
        let (waiter, replies) = state.withLock { state in
            state.result = result
            defer {
                state.waiter = nil
                if case .success = result { state.held = [] }
            }
            if case .success = result { return (state.waiter, state.held) }
            return (state.waiter, [])
        }
        for reply in replies { reply.release() }
        waiter?.resume(returning: result)
    }

    /// After a successful retry.
    func releaseHeld() {
        let replies = state.withLock { state in
            state.result = .success(())
            defer { state.held = [] }
            return state.held
        }
        for reply in replies { reply.release() }
    }

    /// The batch will never commit: its callers get `error`.
    func fail(_ error: any Error) {
        let replies = state.withLock { state in
            defer { state.held = [] }
            return state.held
        }
        for reply in replies { reply.continuation.resume(throwing: error) }
    }

    func wait() async -> Result<Void, StoreError> {
        await withUnsafeContinuation { continuation in
            let ready = state.withLock { state -> Result<Void, StoreError>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
