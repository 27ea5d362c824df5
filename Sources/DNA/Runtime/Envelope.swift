public import Synchronization

/// A local caller waiting for its answer: resumed once, by the answer or by the
/// cancellation of the caller's task, whichever comes first.
@usableFromInline
final class CallWaiter: Sendable {
    @usableFromInline
    enum State {
        case new
        case waiting(UnsafeContinuation<any Sendable, any Error>)
        case cancelled
        case done
    }

    @usableFromInline let state = Mutex(State.new)

    @inlinable
    init() {}

    /// Starts waiting on `continuation`; `false` if the task was cancelled already (then
    /// `continuation` was resumed with `CancellationError` and nothing must be sent).
    @inlinable
    func wait(on continuation: UnsafeContinuation<any Sendable, any Error>) -> Bool {
        let cancelled = state.withLock { state -> Bool in
            if case .cancelled = state { return true }
            state = .waiting(continuation)
            return false
        }
        if cancelled { continuation.resume(throwing: CancellationError()) }
        return !cancelled
    }

    @inlinable
    func resume(with result: Result<any Sendable, any Error>) {
        let continuation = state.withLock { state -> UnsafeContinuation<any Sendable, any Error>? in
            guard case .waiting(let continuation) = state else { return nil }
            state = .done
            return continuation
        }
        continuation?.resume(with: result)
    }

    /// The caller's task was cancelled: it stops waiting (the request may still be handled).
    @inlinable
    func cancel() {
        let continuation = state.withLock { state -> UnsafeContinuation<any Sendable, any Error>? in
            switch state {
            case .new:
                state = .cancelled
                return nil
            case .waiting(let continuation):
                state = .done
                return continuation
            case .cancelled, .done:
                return nil
            }
        }
        continuation?.resume(throwing: CancellationError())
    }
}

/// Where a call's answer goes: a caller on this node, or a caller on another node (the
/// answer is encoded and sent back on the connection the request came in on).
@usableFromInline
enum Reply: Sendable {
    case local(CallWaiter)
    case remote(RemoteReply)

    @inline(__always)
    func resume(with result: Result<any Sendable, any Error>) {
        switch self {
        case .local(let waiter): waiter.resume(with: result)
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
    /// The node it comes from, as this node numbers origins (0: this node).
    var origin: UInt32 = 0
    /// Its number in the order its origin sent it (0: not numbered yet). See ``OrderedMessage``.
    var sequence: UInt64 = 0
    /// The caller's trace context, when the node traces and the caller did.
    var trace: MessageTrace? = nil
}

extension Envelope: OrderedMessage {}

/// A response waiting behind the output gate.
struct HeldReply: Sendable {
    var reply: Reply
    var result: Result<any Sendable, any Error>

    func release() {
        reply.resume(with: result)
    }
}
