package import Logging
import NIOCore
import NIOPosix
import Synchronization

// The public API the runtime codes against. Framing is in `Framing/`, the handshake in
// `Handshake/`, connections in `Connection/`.

/// How a node's transport listens, authenticates and connects. Every setting has a
/// documented default.
package struct TransportConfiguration: Sendable {
    /// The cluster name; a peer of another cluster is refused in the handshake.
    package var cluster: String
    /// This node's identity (a `NodeID`'s raw value), told to peers in the handshake.
    package var nodeID: String
    /// The shared cluster secret. Never sent: the handshake proves knowledge of it with
    /// HMAC-SHA256 over both sides' nonces. At least 16 bytes.
    package var secret: [UInt8]
    /// Where to listen. Default `127.0.0.1`.
    package var host: String = "127.0.0.1"
    /// Port to listen on; 0 picks a free one (see ``ClusterTransport/start()``). Default 0.
    package var port: Int = 0
    /// The largest frame accepted or sent, in bytes. Default 16 MiB.
    package var maxFrameSize: Int = 16 << 20
    /// The most connections peers opened to this node that have not completed the
    /// handshake yet; one more is closed at once. Bounds what unauthenticated peers can
    /// hold (each waits at most ``handshakeTimeout``). Default 64.
    package var maxUnauthenticatedConnections = 64
    /// How long a handshake may take before the connection is closed. Default 5 s.
    package var handshakeTimeout: Duration = .seconds(5)
    /// How long a connection attempt may take. Default 2 s.
    package var connectTimeout: Duration = .seconds(2)
    /// First wait before reconnecting after a failed connection; doubles up to
    /// ``reconnectMaxDelay``. Default 50 ms.
    package var reconnectInitialDelay: Duration = .milliseconds(50)
    /// Longest wait between reconnection attempts. Default 2 s.
    package var reconnectMaxDelay: Duration = .seconds(2)
    /// The shortest time between two flushes of a link that is streaming (its last flush
    /// carried several requests): a stream of casts goes out in large writes instead of
    /// one wake-up and one syscall every few messages. A link whose flushes carry one
    /// request at a time (sequential calls) flushes at once, however short the round trip.
    /// Default 100 µs; `.zero` flushes every event-loop tick.
    package var flushWindow: Duration = .microseconds(100)
    /// The most bytes of requests one link holds that the peer has not taken yet (queued
    /// while connecting, or while the connection is not writable because the peer reads
    /// slower than we send). A send past it is refused at once with
    /// ``TransportError/Code/overloaded`` and nothing is queued, so a slow or stopped peer
    /// cannot make a sender use unbounded memory. Default 64 MiB.
    package var maxQueuedBytes: Int = 64 << 20
    package var logger: Logger = Logger(label: "dna.transport")
    /// Numbers the requests this node sends (see ``WireRequest/sequence``); a node shares
    /// it with its local mailboxes. Default: one of the transport's own.
    package var sequencer = RequestSequencer()
    /// TLS for every connection, listener and outgoing; `nil` (the default) is plain TCP.
    /// The DNA handshake runs inside TLS either way.
    package var tls: (any TransportSecurity)? = nil

    package init(cluster: String, nodeID: String, secret: [UInt8]) {
        self.cluster = cluster
        self.nodeID = nodeID
        self.secret = secret
    }
}

/// A node's address on the network, `host:port`.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    /// The host name or IP address (an IPv6 address without brackets).
    public var host: String
    /// The TCP port; 0 in a listening address picks a free port.
    public var port: Int

    /// The address `host:port`, taken as it is (``init(parsing:)`` checks its text).
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (IPv6 as `[::1]:port`); throws ``TransportError`` if malformed.
    public init(parsing text: String) throws(TransportError) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw TransportError(.invalidAddress, "malformed address \"\(text)\": expected [host]:port")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
                throw TransportError(.invalidAddress, "malformed address \"\(text)\": expected host:port")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, !host.contains(where: \.isWhitespace) else {
            throw TransportError(.invalidAddress, "malformed address \"\(text)\": empty host")
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0 >= "0" && $0 <= "9" }), let port = Int(portText), (1...65535).contains(port)
        else {
            throw TransportError(.invalidAddress, "malformed address \"\(text)\": port must be 1...65535")
        }
        self.init(host: String(host), port: port)
    }

    /// `host:port` (an IPv6 host without brackets).
    public var description: String { "\(host):\(port)" }
}

/// A request from one node to an actor hosted (or to be placed) on another.
package struct WireRequest: Sendable, Equatable {
    /// Unique per sending node; the response carries it back. 0 for a cast.
    package var id: UInt64
    /// `false` for a cast: no response is sent.
    package var expectsReply: Bool
    /// How many times this request was forwarded already.
    package var hops: UInt8
    package var namespace: String
    package var kind: String
    package var key: String
    /// The request type's registered name (`ActorRequest.requestName`).
    package var requestName: String
    /// The encoded request.
    package var payload: [UInt8]
    /// The node the request comes from, when it is not the node that sends it on this
    /// connection (a request forwarded on behalf of another); empty: the sender itself.
    package var origin: String
    /// Numbers the requests of the origin in the order it sent them (0: the link numbers
    /// it when it queues it). An activation handles a request only if it is later than
    /// every request of the same origin it handled, so a request that was overtaken on
    /// another route is refused instead of handled out of order.
    package var sequence: UInt64
    /// The caller's trace context (swift-distributed-tracing's carrier, as `key=value`
    /// lines), empty when the caller does not trace. At most ``maxTraceContextSize`` bytes.
    package var traceContext: String

    /// The most bytes a request's trace context may take.
    package static let maxTraceContextSize = 4096

    package init(
        id: UInt64, expectsReply: Bool, hops: UInt8, namespace: String, kind: String, key: String,
        requestName: String, payload: [UInt8], origin: String = "", sequence: UInt64 = 0, traceContext: String = ""
    ) {
        self.traceContext = traceContext
        self.id = id
        self.expectsReply = expectsReply
        self.hops = hops
        self.namespace = namespace
        self.kind = kind
        self.key = key
        self.requestName = requestName
        self.payload = payload
        self.origin = origin
        self.sequence = sequence
    }
}

/// An error carried back to the caller's node.
package struct WireError: Sendable, Equatable, Error {
    /// A stable code (a `DNAError.Code` name).
    package var code: String
    package var message: String
    package var retryable: Bool

    package init(code: String, message: String, retryable: Bool) {
        self.code = code
        self.message = message
        self.retryable = retryable
    }
}

/// The answer to a ``WireRequest`` that expects one.
package struct WireResponse: Sendable, Equatable {
    package var id: UInt64
    /// The encoded response, or the error.
    package var result: Result<[UInt8], WireError>

    package init(id: UInt64, result: Result<[UInt8], WireError>) {
        self.id = id
        self.result = result
    }
}

/// An error of the transport, with a stable code.
public struct TransportError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A stable error code; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's stable name, for example `"unreachable"`.
        public let name: String
        /// The code named `name`.
        public init(_ name: String) { self.name = name }
        /// The code's name.
        public var description: String { name }

        /// An address is malformed (``PeerAddress/init(parsing:)``).
        public static let invalidAddress = Code("invalidAddress")
        /// A setting cannot be used (for example a secret shorter than 16 bytes, or TLS files
        /// that cannot be read), or the transport was started twice.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// The peer could not be reached, or the connection broke.
        public static let unreachable = Code("unreachable")
        /// The handshake failed (wrong secret, cluster, protocol version, timeout).
        public static let handshakeFailed = Code("handshakeFailed")
        /// A frame broke the protocol (malformed, unknown type, too big).
        public static let protocolViolation = Code("protocolViolation")
        /// A peer sent a frame larger than the maximum frame size.
        public static let frameTooLarge = Code("frameTooLarge")
        /// The transport is shut down.
        public static let shutDown = Code("shutDown")
        /// The link to the peer already holds ``TransportConfiguration/maxQueuedBytes``
        /// not yet taken by the peer; nothing was queued. Slow down and try again.
        public static let overloaded = Code("overloaded")
    }

    /// What went wrong, in a form code can test.
    public var code: Code
    /// A description for people; its wording may change.
    public var message: String

    /// An error with `code` and a `message` for people.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `TransportError.<code>: <message>`.
    public var description: String { "TransportError.\(code): \(message)" }
}

/// Where a received request's response goes: back on the connection it came in on.
/// Safe to use from any thread; at most one response per request.
///
/// One sink serves every request of a connection. A response larger than
/// ``TransportConfiguration/maxFrameSize`` is replaced by a `payloadTooLarge` ``WireError``.
package final class ResponseSink: Sendable {
    private enum Writer {
        case connection(InboundWriter)
        /// Another transport's (the simulation's).
        case other(@Sendable (WireResponse) -> Void)
    }

    private let writer: Writer
    private let authenticatedPeer: String

    init(writer: InboundWriter, peerNodeID: String) {
        self.writer = .connection(writer)
        self.authenticatedPeer = peerNodeID
    }

    /// A sink for a transport other than ``ClusterTransport`` (the simulation's): `send`
    /// carries the response back to `peerNodeID`.
    package init(peerNodeID: String, send: @escaping @Sendable (WireResponse) -> Void) {
        self.writer = .other(send)
        self.authenticatedPeer = peerNodeID
    }

    /// The authenticated peer's node id (from the handshake).
    package var peerNodeID: String { authenticatedPeer }
    /// Queues `response`; writes are coalesced per event-loop tick. Dropped if the
    /// connection has closed.
    package func send(_ response: WireResponse) {
        switch writer {
        case .connection(let writer): writer.send(response)
        case .other(let send): send(response)
        }
    }
}

/// What a node needs of its links to the other nodes: ``ClusterTransport``, or the
/// simulation's network (which runs the real node over simulated links).
package protocol NodeTransport: Sendable {
    /// Starts listening; returns the bound port.
    func start() async throws -> Int
    /// Queues `request` on the link to `peer` (see ``ClusterTransport/send(_:to:queued:)``).
    func send(_ request: WireRequest, to peer: PeerAddress, queued: (UInt64) -> Void) throws(TransportError)
    func connect(to peer: PeerAddress)
    func disconnect(from peer: PeerAddress)
    var linkedPeers: [PeerAddress] { get }
    func isConnected(to peer: PeerAddress) -> Bool
    func shutdown() async
}

extension ClusterTransport: NodeTransport {}

/// What the transport hands to its owner (the node). Called on event-loop threads: do
/// not block.
package protocol ClusterTransportDelegate: AnyObject, Sendable {
    /// A request from an authenticated peer. Answer through `sink` if it expects a reply.
    func transport(didReceive request: WireRequest, sink: ResponseSink)
    /// A response to a request this node sent to `peer`.
    func transport(didReceive response: WireResponse, from peer: PeerAddress)
    /// A connection attempt of the link to a peer failed (refused, broken, handshake
    /// refused): the requests sent on that attempt and not answered yet will not be.
    func transport(linkFailed failure: LinkFailure)
}

/// What ``ClusterTransportDelegate/transport(linkFailed:)`` reports.
package struct LinkFailure: Sendable {
    package var peer: PeerAddress
    /// The connection attempt that failed (what ``ClusterTransport/send(_:to:queued:)``
    /// reported for the requests it carried): requests sent on a later attempt are not
    /// affected, however late this report comes.
    package var attempt: UInt64
    package var error: TransportError
    /// Casts that were queued on the attempt and are lost with it (nobody can be told:
    /// count and log them). Casts already written to a connection that broke are lost
    /// too, uncounted: TCP does not say what the peer read.
    package var droppedCasts: Int

    package init(peer: PeerAddress, attempt: UInt64, error: TransportError, droppedCasts: Int) {
        self.peer = peer
        self.attempt = attempt
        self.error = error
        self.droppedCasts = droppedCasts
    }
}

/// The node-to-node transport: a listener for peers' connections and one outgoing,
/// authenticated connection per peer address, with requests pipelined by id.
///
/// Connections run on `MultiThreadedEventLoopGroup.singleton` (NIO's process-wide event
/// loops): the transport starts no threads of its own and has none to shut down.
///
/// A request whose frame would exceed ``TransportConfiguration/maxFrameSize`` is never sent;
/// if it expects a reply, the delegate receives a synthetic failed ``WireResponse`` with
/// code `"payloadTooLarge"` (not retryable) through
/// ``ClusterTransportDelegate/transport(didReceive:from:)`` — the link itself is fine, so
/// `linkFailed` is not called.
package final class ClusterTransport: Sendable {
    private let core: TransportCore

    /// Makes the transport; it holds `delegate` until ``shutdown()``.
    ///
    /// Throws ``TransportError/Code/invalidConfiguration`` if the secret is shorter than 16
    /// bytes, a size or duration is out of range, or the TLS configuration is unusable.
    package init(configuration: TransportConfiguration, delegate: any ClusterTransportDelegate) throws(TransportError) {
        guard configuration.secret.count >= 16 else {
            throw TransportError(.invalidConfiguration, "the cluster secret must be at least 16 bytes")
        }
        guard configuration.maxFrameSize >= 64, configuration.maxFrameSize <= Int(UInt32.max) else {
            throw TransportError(.invalidConfiguration, "maxFrameSize must be 64...\(UInt32.max) bytes")
        }
        guard configuration.port >= 0, configuration.port <= 65535 else {
            throw TransportError(.invalidConfiguration, "port must be 0...65535")
        }
        let durations = [
            configuration.handshakeTimeout, configuration.connectTimeout, configuration.reconnectInitialDelay,
            configuration.reconnectMaxDelay,
        ]
        guard durations.allSatisfy({ $0 > .zero }) else {
            throw TransportError(.invalidConfiguration, "timeouts and reconnection delays must be positive")
        }
        let tls = try configuration.tls.map { (tls) throws(TransportError) in try tls.prepareConnections() }
        core = TransportCore(configuration: configuration, delegate: delegate, tls: tls)
    }

    /// Starts listening; returns the bound port.
    ///
    /// Throws ``TransportError`` with ``TransportError/Code/shutDown`` after ``shutdown()``,
    /// ``TransportError/Code/invalidConfiguration`` if already started; NIO's error if the
    /// address can not be bound.
    package func start() async throws -> Int {
        let core = self.core
        let starting = core.state.withLock { state -> TransportError? in
            if state.isShutDown { return TransportError(.shutDown, "the transport is shut down") }
            if state.serverChannel != nil { return TransportError(.invalidConfiguration, "already started") }
            return nil
        }
        if let starting { throw starting }
        let channel = try await ServerBootstrap(group: core.group)
            .serverChannelOption(.backlog, value: 256)
            // A restarted node must get its port back while old connections sit in TIME_WAIT.
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                do {
                    try core.register(channel)
                    try channel.pipeline.syncOperations.addHandler(LinkByteCounter(core.metrics))
                    try core.tls?.addServerHandlers(to: channel.pipeline.syncOperations)
                    // Stops reading while the responses already written back pile up (the
                    // channel is not writable): a peer that sends calls and never reads the
                    // answers stalls its own connection, not this node's memory.
                    try channel.pipeline.syncOperations.addHandler(BackPressureHandler())
                    try channel.pipeline.syncOperations.addHandler(InboundConnectionHandler(core: core))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: core.configuration.host, port: core.configuration.port)
            .get()
        let accepted = core.state.withLock { state -> Bool in
            guard !state.isShutDown, state.serverChannel == nil else { return false }
            state.serverChannel = channel
            return true
        }
        guard accepted else {
            try? await channel.close()
            throw TransportError(.shutDown, "the transport was shut down or started concurrently")
        }
        let port = channel.localAddress?.port ?? core.configuration.port
        core.logger.info("listening", metadata: ["address": "\(core.configuration.host):\(port)"])
        return port
    }

    /// Sends `request` to the node at `peer`, connecting (and authenticating) first if
    /// needed. Never blocks; requests to one peer are written in the order of the calls.
    /// `queued` is called, before this returns and before any failure of it can be
    /// reported, with the connection attempt that carries the request; if that attempt
    /// fails, ``ClusterTransportDelegate/transport(linkFailed:)`` says so.
    ///
    /// - Throws: without queuing anything (the delegate hears nothing of this request):
    ///   ``TransportError/Code/unreachable`` while the link backs off after a failure,
    ///   ``TransportError/Code/shutDown`` after ``shutdown()``, and
    ///   ``TransportError/Code/overloaded`` if the link already holds
    ///   ``TransportConfiguration/maxQueuedBytes`` the peer has not taken.
    package func send(_ request: WireRequest, to peer: PeerAddress, queued: (UInt64) -> Void = { _ in }) throws(TransportError) {
        guard let link = link(to: peer) else { throw TransportError(.shutDown, "the transport is shut down") }
        try link.send(request, queued: queued)
    }

    /// Drops the link to `peer` (a node that left): closes its connection and forgets it.
    /// A later send connects afresh.
    package func disconnect(from peer: PeerAddress) {
        guard let link = core.links.withLock({ $0?.removeValue(forKey: peer) }) else { return }
        link.shutDown()?.close(promise: nil)
    }

    /// The peers this transport has a link to (connected or not).
    package var linkedPeers: [PeerAddress] { core.links.withLock { $0.map { Array($0.keys) } ?? [] } }

    /// Opens (and authenticates) the link to `peer` now if it is not connected, so that
    /// the first request does not wait for the connection. Does nothing if the link is
    /// connecting, connected, still backing off after a failure, or the transport is shut
    /// down; a failure is reported like any other (`linkFailed`).
    package func connect(to peer: PeerAddress) {
        link(to: peer)?.connectIfDisconnected()
    }

    /// Whether the link to `peer` is connected and authenticated.
    package func isConnected(to peer: PeerAddress) -> Bool {
        core.links.withLock { $0?[peer] }?.isConnected ?? false
    }

    private func link(to peer: PeerAddress) -> OutgoingLink? {
        let core = self.core
        return core.links.withLock { links -> OutgoingLink? in
            guard links != nil else { return nil }
            if let link = links![peer] { return link }
            let link = OutgoingLink(peer: peer, core: core)
            links![peer] = link
            return link
        }
    }

    /// Closes the listener and every connection; later sends are dropped (the delegate
    /// hears `linkFailed` with ``TransportError/Code/shutDown``).
    package func shutdown() async {
        let links = core.links.withLock { links in
            defer { links = nil }
            return links.map { Array($0.values) } ?? []
        }
        // Links first: from here on, sends fail with `shutDown` and new connections are refused.
        for link in links { link.shutDown() }
        let (server, channels) = core.state.withLock { state in
            state.isShutDown = true
            defer { state.serverChannel = nil }
            return (state.serverChannel, Array(state.channels.values))
        }
        if let server { try? await server.close() }
        for channel in channels { channel.close(promise: nil) }
        for channel in channels { try? await channel.closeFuture.get() }
        core.delegate.release()
    }
}

/// Numbers what a node sends, in the order it puts it on its way (see
/// ``WireRequest/sequence``). One per node, shared by its transport and its local mailboxes.
package final class RequestSequencer: Sendable {
    private let last = Atomic<UInt64>(0)

    package init() {}

    /// The next number (the first is 1).
    package func next() -> UInt64 { last.wrappingAdd(1, ordering: .relaxed).newValue }
}
