import DNATransport
import Synchronization

/// A call sent to another node, waiting for its answer.
struct PendingCall: Sendable {
    var reply: Reply
    var decode: @Sendable ([UInt8]) throws(DNAError) -> any Sendable
    var peer: PeerAddress
    /// The connection attempt of the link that carries it (0 until the link says).
    var attempt: UInt64 = 0
    var owner: NodeID
    var actor: ActorID
}

/// The calls this node sent to other nodes that are not answered yet, by request id.
final class CallsInFlight: Sendable {
    let pending = Mutex<[UInt64: PendingCall]>([:])
    private let nextRequestID = Atomic<UInt64>(1)

    func makeRequestID() -> UInt64 { nextRequestID.wrappingAdd(1, ordering: .relaxed).oldValue }
}

/// Hands the transport's callbacks to the node (the transport is made before the node is
/// whole, and must not keep it alive).
final class TransportDelegateProxy: ClusterTransportDelegate {
    struct WeakNode: @unchecked Sendable {
        // A weak reference to a Sendable class, only read under the mutex.
        weak var value: Node?
    }

    let weakNode = Mutex(WeakNode())

    private var node: Node? { weakNode.withLock { $0.value } }

    func transport(didReceive request: WireRequest, sink: ResponseSink) {
        node?.receive(request, sink: sink)
    }

    func transport(didReceive response: WireResponse, from peer: PeerAddress) {
        node?.receive(response, from: peer)
    }

    func transport(linkFailed failure: LinkFailure) {
        node?.linkFailed(failure)
    }
}

extension Duration {
    /// This duration in whole nanoseconds.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
