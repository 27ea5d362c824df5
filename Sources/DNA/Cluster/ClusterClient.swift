import DNATransport
import NIOCore
import NIOPosix
import Synchronization

/// A client of a DNA cluster that is not a node: it connects to one node, authenticates
/// with the cluster secret, and calls actors through it (the node forwards to wherever the
/// actor lives). `dna kv` uses it.
///
/// Its calls to one actor are handled in the order they leave its connection: the node
/// takes them as its own requests, in the order they arrive. A call whose connection broke
/// (``DNAError/Code/nodeUnreachable``) may still be handled, but never after a later call
/// that came in on a newer connection: then it is refused.
///
/// ```swift
/// let client = try ClusterClient(cluster: "prod", secret: secret, node: try PeerAddress(parsing: "10.0.0.5:7400"))
/// let value = try await client.call(KVActor.Get(key: "a"), kind: "kv", key: "users")
/// await client.shutdown()
/// ```
public final class ClusterClient: Sendable {
    private let transport: ClusterTransport
    private let delegate: ClientDelegate
    private let node: PeerAddress
    private let nextID = Atomic<UInt64>(1)
    /// How long a call waits for its answer before failing with a retryable
    /// ``DNAError/Code/nodeUnreachable`` (the node may still handle it). Default 30 s.
    public let callTimeout: Duration

    /// - Parameters:
    ///   - cluster: the cluster's name, as its nodes were given it.
    ///   - secret: the cluster secret (at least 16 bytes), as the nodes' `DNA_CLUSTER_SECRET`.
    ///   - node: the node the client connects to; it forwards calls to the actors' owners.
    ///   - tls: the cluster's TLS settings, if its nodes use TLS.
    ///   - callTimeout: how long a call waits for its answer (see ``callTimeout``).
    /// - Throws: `TransportError` if the secret is shorter than 16 bytes or the TLS
    ///   settings are invalid.
    public init(
        cluster: String, secret: [UInt8], node: PeerAddress, tls: (any TransportSecurity)? = nil,
        callTimeout: Duration = .seconds(30)
    ) throws(TransportError) {
        self.node = node
        self.callTimeout = callTimeout
        delegate = ClientDelegate()
        var configuration = TransportConfiguration(cluster: cluster, nodeID: Self.idPrefix + NodeID.random().rawValue, secret: secret)
        configuration.tls = tls
        transport = try ClusterTransport(configuration: configuration, delegate: delegate)
    }

    /// Calls the actor `kind`/`key` in `namespace` with `request` through the node.
    ///
    /// If the calling task is cancelled, the call throws `CancellationError` at once; the
    /// node may still handle the request.
    ///
    /// - Throws: ``DNAError`` (the node's or the actor's answer; ``DNAError/Code/nodeUnreachable``
    ///   if the node could not be reached, the connection broke, or no answer came within
    ///   ``callTimeout``).
    public func call<R: ActorRequest>(_ request: R, kind: String, key: String, namespace: String = "default") async throws -> R.Response {
        let codec = RemoteCodec(for: R.self)
        let payload = try codec.encodeRequest(MessageBox(request))
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let delegate = delegate
        let timeout = callTimeout
        let node = node
        let transport = transport
        let bytes: [UInt8] = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // A timer on the event loop, cancelled with the answer: no task sleeps per call.
                let timer = MultiThreadedEventLoopGroup.singleton.next().scheduleTask(in: TimeAmount(clamping: timeout)) { () -> Void in
                    delegate.take(id)?.continuation.resume(
                        throwing: DNAError(
                            .nodeUnreachable, "no answer from \(node) within \(timeout); the request may or may not have been handled"))
                }
                delegate.pending.withLock { $0[id] = ClientDelegate.Call(continuation: continuation, timer: timer) }
                if Task.isCancelled {
                    delegate.take(id)?.continuation.resume(throwing: CancellationError())
                    return
                }
                do throws(TransportError) {
                    // Not numbered here: the link numbers it as it queues it, so numbers
                    // follow the order calls leave (the node refuses an earlier number after
                    // a later one, see `ClientOrder`).
                    try transport.send(
                        WireRequest(
                            id: id, expectsReply: true, hops: 0, namespace: namespace, kind: kind, key: key,
                            requestName: R.requestName, payload: payload),
                        to: node,
                        queued: { attempt in delegate.pending.withLock { $0[id]?.attempt = attempt } })
                } catch {
                    let code: DNAError.Code = error.code == .overloaded ? .overloaded : .nodeUnreachable
                    delegate.take(id)?.continuation.resume(throwing: DNAError(code, error.message, underlying: error))
                }
            }
        } onCancel: {
            delegate.take(id)?.continuation.resume(throwing: CancellationError())
        }
        return try codec.decodeResponse(bytes) as! R.Response
    }

    /// What a client's id starts with, and a node's never does (a node's id is hex): the node
    /// a client connects to tells its requests from a node's by it.
    static let idPrefix = "client-"

    static func isClient(_ peerID: String) -> Bool { peerID.hasPrefix(idPrefix) }

    /// Closes the connection; calls still waiting fail.
    public func shutdown() async {
        await transport.shutdown()
        delegate.failAll(DNAError(.nodeStopped, "the client was shut down"))
    }
}

private final class ClientDelegate: ClusterTransportDelegate {
    struct Call {
        var continuation: CheckedContinuation<[UInt8], any Error>
        var timer: Scheduled<Void>
        var attempt: UInt64 = 0
    }

    let pending = Mutex<[UInt64: Call]>([:])

    /// Removes call `id` and stops its timer; `nil` if it was answered already.
    func take(_ id: UInt64) -> Call? {
        let call = pending.withLock { $0.removeValue(forKey: id) }
        call?.timer.cancel()
        return call
    }

    func transport(didReceive request: WireRequest, sink: ResponseSink) {
        // A client hosts no actors.
        if request.expectsReply {
            sink.send(
                WireResponse(
                    id: request.id,
                    result: .failure(
                        WireError(code: DNAError.Code.unknownActorKind.name, message: "a client hosts no actors", retryable: false))))
        }
    }

    func transport(didReceive response: WireResponse, from peer: PeerAddress) {
        guard let call = take(response.id) else { return }
        switch response.result {
        case .success(let bytes): call.continuation.resume(returning: bytes)
        case .failure(let wire): call.continuation.resume(throwing: DNAError(wire))
        }
    }

    func transport(linkFailed failure: LinkFailure) {
        let error = DNAError(
            .nodeUnreachable, "node at \(failure.peer) could not be reached: \(failure.error.message)", underlying: failure.error)
        let failed = pending.withLock { pending in
            let ids = pending.compactMap { $0.value.attempt == failure.attempt ? $0.key : nil }
            return ids.compactMap { pending.removeValue(forKey: $0) }
        }
        for call in failed {
            call.timer.cancel()
            call.continuation.resume(throwing: error)
        }
    }

    func failAll(_ error: DNAError) {
        let waiting = pending.withLock { pending in
            defer { pending = [:] }
            return Array(pending.values)
        }
        for call in waiting {
            call.timer.cancel()
            call.continuation.resume(throwing: error)
        }
    }
}
