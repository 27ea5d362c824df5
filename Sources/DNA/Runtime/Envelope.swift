import Synchronization

/// Where a call's answer goes.
typealias ReplyContinuation = UnsafeContinuation<any Sendable, any Error>

/// One message in a mailbox.
struct Envelope: Sendable {
    var requestType: ObjectIdentifier
    var message: any Sendable
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
    let batch: CommitBatch
    let held: [HeldReply]
    private let state = Mutex<(result: Result<Void, StoreError>?, waiter: UnsafeContinuation<Result<Void, StoreError>, Never>?)>((nil, nil))

    init(batch: CommitBatch, held: [HeldReply]) {
        self.batch = batch
        self.held = held
    }

    func complete(_ result: Result<Void, StoreError>) {
        if case .success = result {
            for reply in held { reply.release() }
        }
        let waiter = state.withLock { state in
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
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
