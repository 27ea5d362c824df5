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
    /// The node it comes from, as this node numbers origins (0: this node).
    var origin: UInt32 = 0
    /// Its number in the order its origin sent it (0: not numbered yet). See ``OrderedMessage``.
    var sequence: UInt64 = 0
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
