import Logging
import NIOCore

// API SKETCH — the implementation (bodies marked `fatalError("unimplemented")`) lands in
// the transport branch. Signatures here are what the runtime codes against: keep them.

/// How a node's transport listens, authenticates and connects. Every setting has a
/// documented default.
public struct TransportConfiguration: Sendable {
    /// The cluster name; a peer of another cluster is refused in the handshake.
    public var cluster: String
    /// This node's identity (a `NodeID`'s raw value), told to peers in the handshake.
    public var nodeID: String
    /// The shared cluster secret. Never sent: the handshake proves knowledge of it with
    /// HMAC-SHA256 over both sides' nonces. At least 16 bytes.
    public var secret: [UInt8]
    /// Where to listen. Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// Port to listen on; 0 picks a free one (see ``ClusterTransport/start()``). Default 0.
    public var port: Int = 0
    /// The largest frame accepted or sent, in bytes. Default 16 MiB.
    public var maxFrameSize: Int = 16 << 20
    /// How long a handshake may take before the connection is closed. Default 5 s.
    public var handshakeTimeout: Duration = .seconds(5)
    /// How long a connection attempt may take. Default 2 s.
    public var connectTimeout: Duration = .seconds(2)
    /// First wait before reconnecting after a failed connection; doubles up to
    /// ``reconnectMaxDelay``. Default 50 ms.
    public var reconnectInitialDelay: Duration = .milliseconds(50)
    /// Longest wait between reconnection attempts. Default 2 s.
    public var reconnectMaxDelay: Duration = .seconds(2)
    public var logger: Logger = Logger(label: "dna.transport")

    public init(cluster: String, nodeID: String, secret: [UInt8]) {
        self.cluster = cluster
        self.nodeID = nodeID
        self.secret = secret
    }
}

/// A node's address on the network, `host:port`.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (IPv6 as `[::1]:port`); throws ``TransportError`` if malformed.
    public init(parsing text: String) throws(TransportError) { fatalError("unimplemented") }

    public var description: String { "\(host):\(port)" }
}

/// A request from one node to an actor hosted (or to be placed) on another.
public struct WireRequest: Sendable, Equatable {
    /// Unique per sending node; the response carries it back. 0 for a cast.
    public var id: UInt64
    /// `false` for a cast: no response is sent.
    public var expectsReply: Bool
    /// How many times this request was forwarded already.
    public var hops: UInt8
    public var namespace: String
    public var kind: String
    public var key: String
    /// The request type's registered name (`ActorRequest.requestName`).
    public var requestName: String
    /// The encoded request.
    public var payload: [UInt8]

    public init(
        id: UInt64, expectsReply: Bool, hops: UInt8, namespace: String, kind: String, key: String,
        requestName: String, payload: [UInt8]
    ) {
        self.id = id
        self.expectsReply = expectsReply
        self.hops = hops
        self.namespace = namespace
        self.kind = kind
        self.key = key
        self.requestName = requestName
        self.payload = payload
    }
}

/// An error carried back to the caller's node.
public struct WireError: Sendable, Equatable, Error {
    /// A stable code (a `DNAError.Code` name).
    public var code: String
    public var message: String
    public var retryable: Bool

    public init(code: String, message: String, retryable: Bool) {
        self.code = code
        self.message = message
        self.retryable = retryable
    }
}

/// The answer to a ``WireRequest`` that expects one.
public struct WireResponse: Sendable, Equatable {
    public var id: UInt64
    /// The encoded response, or the error.
    public var result: Result<[UInt8], WireError>

    public init(id: UInt64, result: Result<[UInt8], WireError>) {
        self.id = id
        self.result = result
    }
}

/// An error of the transport, with a stable code.
public struct TransportError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let invalidAddress = Code("invalidAddress")
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// The peer could not be reached, or the connection broke.
        public static let unreachable = Code("unreachable")
        /// The handshake failed (wrong secret, cluster, protocol version, timeout).
        public static let handshakeFailed = Code("handshakeFailed")
        /// A frame broke the protocol (malformed, unknown type, too big).
        public static let protocolViolation = Code("protocolViolation")
        public static let frameTooLarge = Code("frameTooLarge")
        public static let shutDown = Code("shutDown")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "TransportError.\(code): \(message)" }
}

/// Where a received request's response goes: back on the connection it came in on.
/// Safe to use from any thread; at most one response per request.
public final class ResponseSink: Sendable {
    /// The authenticated peer's node id (from the handshake).
    public var peerNodeID: String { fatalError("unimplemented") }
    /// Queues `response`; writes are coalesced per event-loop tick. Dropped if the
    /// connection has closed.
    public func send(_ response: WireResponse) { fatalError("unimplemented") }
}

/// What the transport hands to its owner (the node). Called on event-loop threads: do
/// not block.
public protocol ClusterTransportDelegate: AnyObject, Sendable {
    /// A request from an authenticated peer. Answer through `sink` if it expects a reply.
    func transport(didReceive request: WireRequest, sink: ResponseSink)
    /// A response to a request this node sent to `peer`.
    func transport(didReceive response: WireResponse, from peer: PeerAddress)
    /// The link to `peer` failed (connection refused, broken, handshake refused, or the
    /// link is backing off). Requests sent to it and not yet answered will not be.
    func transport(linkFailed peer: PeerAddress, error: TransportError)
}

/// The node-to-node transport: a listener for peers' connections and one outgoing,
/// authenticated connection per peer address, with requests pipelined by id.
public final class ClusterTransport: Sendable {
    /// Makes the transport; it holds `delegate` until ``shutdown()``.
    public init(configuration: TransportConfiguration, delegate: any ClusterTransportDelegate) throws(TransportError) {
        fatalError("unimplemented")
    }

    /// Starts listening; returns the bound port.
    public func start() async throws -> Int { fatalError("unimplemented") }

    /// Sends `request` to the node at `peer`, connecting (and authenticating) first if
    /// needed. Never blocks; requests to one peer are written in the order of the calls.
    /// If the link fails, ``ClusterTransportDelegate/transport(linkFailed:error:)`` says so.
    public func send(_ request: WireRequest, to peer: PeerAddress) { fatalError("unimplemented") }

    /// Closes the listener and every connection; later sends are dropped (the delegate
    /// hears `linkFailed` with ``TransportError/Code/shutDown``).
    public func shutdown() async { fatalError("unimplemented") }
}
