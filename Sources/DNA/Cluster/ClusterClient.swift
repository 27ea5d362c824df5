import DNATransport
import Synchronization

/// A client of a DNA cluster that is not a node: it connects to one node, authenticates
/// with the cluster secret, and calls actors through it (the node forwards to wherever the
/// actor lives). `dna kv` uses it.
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

    /// - Parameter tls: the cluster's TLS settings, if its nodes use TLS.
    /// - Throws: ``TransportError`` if the secret is shorter than 16 bytes or the TLS
    ///   settings are invalid.
    public init(
        cluster: String, secret: [UInt8], node: PeerAddress, tls: (any TransportSecurity)? = nil,
        callTimeout: Duration = .seconds(30)
    ) throws(TransportError) {
        self.node = node
        self.callTimeout = callTimeout
        delegate = ClientDelegate()
        var configuration = TransportConfiguration(cluster: cluster, nodeID: "client-" + NodeID.random().rawValue, secret: secret)
        configuration.tls = tls
        transport = try ClusterTransport(configuration: configuration, delegate: delegate)
    }

    /// Calls the actor `kind`/`key` in `namespace` with `request` through the node.
    ///
    /// - Throws: ``DNAError`` (the node's or the actor's answer; ``DNAError/Code/nodeUnreachable``
    ///   if the node could not be reached or the connection broke).
    public func call<R: ActorRequest>(_ request: R, kind: String, key: String, namespace: String = "default") async throws -> R.Response {
        let codec = RemoteCodec(for: R.self)
        let payload = try codec.encodeRequest(MessageBox(request))
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let delegate = delegate
        let timeout = callTimeout
        let node = node
        let bytes: [UInt8] = try await withCheckedThrowingContinuation { continuation in
            delegate.pending.withLock { $0[id] = continuation }
            Task {
                try? await Task.sleep(for: timeout)
                delegate.pending.withLock { $0.removeValue(forKey: id) }?.resume(
                    throwing: DNAError(.nodeUnreachable, "no answer from \(node) within \(timeout); the request may or may not have been handled"))
            }
            do throws(TransportError) {
                try transport.send(
                    WireRequest(
                        id: id, expectsReply: true, hops: 0, namespace: namespace, kind: kind, key: key,
                        requestName: R.requestName, payload: payload, sequence: id),
                    to: node)
            } catch {
                let code: DNAError.Code = error.code == .overloaded ? .overloaded : .nodeUnreachable
                delegate.pending.withLock { $0.removeValue(forKey: id) }?.resume(
                    throwing: DNAError(code, error.message, underlying: error))
            }
        }
        return try codec.decodeResponse(bytes) as! R.Response
    }

    /// Closes the connection; calls still waiting fail.
    public func shutdown() async {
        await transport.shutdown()
        delegate.failAll(DNAError(.nodeStopped, "the client was shut down"))
    }
}

private final class ClientDelegate: ClusterTransportDelegate {
    let pending = Mutex<[UInt64: CheckedContinuation<[UInt8], any Error>]>([:])

    func transport(didReceive request: WireRequest, sink: ResponseSink) {
        // A client hosts no actors.
        if request.expectsReply {
            sink.send(
                WireResponse(
                    id: request.id, result: .failure(WireError(code: DNAError.Code.unknownActorKind.name, message: "a client hosts no actors", retryable: false))))
        }
    }

    func transport(didReceive response: WireResponse, from peer: PeerAddress) {
        guard let continuation = pending.withLock({ $0.removeValue(forKey: response.id) }) else { return }
        switch response.result {
        case .success(let bytes): continuation.resume(returning: bytes)
        case .failure(let wire): continuation.resume(throwing: DNAError(wire))
        }
    }

    func transport(linkFailed peer: PeerAddress, error: TransportError) {
        failAll(DNAError(.nodeUnreachable, "node at \(peer) could not be reached: \(error.message)", underlying: error))
    }

    func failAll(_ error: DNAError) {
        let waiting = pending.withLock { pending in
            defer { pending = [:] }
            return Array(pending.values)
        }
        for continuation in waiting { continuation.resume(throwing: error) }
    }
}
