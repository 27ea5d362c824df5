import Synchronization

/// A local caller's continuation.
@usableFromInline
typealias ReplyContinuation = UnsafeContinuation<any Sendable, any Error>

/// Where a call's answer goes: a caller on this node, or a caller on another node (the
/// answer is encoded and sent back on the connection the request came in on).
@usableFromInline
enum Reply: Sendable {
    case local(ReplyContinuation)
    case remote(RemoteReply)

    @inline(__always)
    func resume(with result: Result<any Sendable, any Error>) {
        switch self {
        case .local(let continuation): continuation.resume(with: result)
        case .remote(let remote): remote.send(result)
        }
    }

    @inline(__always)
    func resume(throwing error: any Error) { resume(with: .failure(error)) }
}

/// One message in a mailbox.
struct Envelope: Sendable {
    var requestType: ObjectIdentifier
    /// A ``MessageBox`` of the request type.
    var message: any AnyObject & Sendable
    /// `nil` for a cast.
    var reply: Reply?
    /// How many network links the message has crossed (0 when sent on this node).
    var hops: UInt8 = 0
}

/// A response waiting behind the output gate.
struct HeldReply: Sendable {
    var reply: Reply
    var result: Result<any Sendable, any Error>

    func release() {
        reply.resume(with: result)
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
        for reply in replies { reply.reply.resume(throwing: error) }
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
