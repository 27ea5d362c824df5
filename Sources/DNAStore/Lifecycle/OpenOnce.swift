import Synchronization

/// Opening a store: done once, by the first caller; concurrent callers wait for it; a
/// failure is remembered (later callers get the same error); after ``close()`` opening
/// fails with ``StoreError/Code/closed``.
package final class OpenOnce: Sendable {
    private enum State {
        case new
        case opening([CheckedContinuation<Void, any Error>])
        case open
        case failed(StoreError)
        case closed
    }

    private let state = Mutex(State.new)

    package init() {}

    package var isOpen: Bool {
        state.withLock { state in
            if case .open = state { return true }
            return false
        }
    }

    /// Runs `body` if nobody has yet; else waits for (or repeats) its outcome.
    package func run(_ body: () async throws(StoreError) -> Void) async throws(StoreError) {
        enum Turn {
            case mine, done, failed(StoreError), wait
        }
        let turn = state.withLock { state -> Turn in
            switch state {
            case .new:
                state = .opening([])
                return .mine
            case .opening: return .wait
            case .open: return .done
            case .failed(let error): return .failed(error)
            case .closed: return .failed(StoreError(.closed, "the store is closed"))
            }
        }
        switch turn {
        case .done:
            return
        case .failed(let error):
            throw error
        case .wait:
            do {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let outcome = state.withLock { state -> Result<Void, StoreError>? in
                        switch state {
                        case .new, .opening(_):
                            if case .opening(var waiters) = state {
                                waiters.append(continuation)
                                state = .opening(waiters)
                            }
                            return nil
                        case .open: return .success(())
                        case .failed(let error): return .failure(error)
                        case .closed: return .failure(StoreError(.closed, "the store is closed"))
                        }
                    }
                    if let outcome { continuation.resume(with: outcome) }
                }
            } catch {
                throw (error as? StoreError) ?? StoreError(.unavailable, "\(error)")
            }
        case .mine:
            let result: Result<Void, StoreError>
            do throws(StoreError) {
                try await body()
                result = .success(())
            } catch {
                result = .failure(error)
            }
            let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
                guard case .opening(let waiters) = state else { return [] }
                switch result {
                case .success: state = .open
                case .failure(let error): state = .failed(error)
                }
                return waiters
            }
            for waiter in waiters { waiter.resume(with: result.mapError { $0 as any Error }) }
            try result.get()
        }
    }

    /// Later opens fail with ``StoreError/Code/closed``.
    package func close() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            defer { state = .closed }
            if case .opening(let waiters) = state { return waiters }
            return []
        }
        for waiter in waiters { waiter.resume(throwing: StoreError(.closed, "the store was closed while it opened")) }
    }
}
