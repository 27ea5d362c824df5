public import DNA
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import Prometheus
public import ServiceLifecycle
import Synchronization

/// The node's HTTP endpoint for operations: `GET /metrics` (the Prometheus text format of
/// `registry`), `GET /health/live` and `GET /health/ready` (200 or 503, with the reasons in
/// the body: `Node.health`). Run it as a `Service` beside the node.
///
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))   // before the node is made
/// let node = try Node(configuration: configuration, actors: [Store.self])
/// let endpoint = MetricsEndpoint(node: node, address: PeerAddress(host: "0.0.0.0", port: 9400), registry: registry)
/// try await ServiceGroup(services: [node, endpoint], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
public final class MetricsEndpoint: Service, Sendable {
    /// The address to listen on, as given (port 0: a free one, see ``waitUntilBound()``).
    public let address: PeerAddress
    private let node: Node
    private let registry: PrometheusCollectorRegistry
    private let logger: Logger
    private let bound = Mutex<(port: Int?, waiters: [CheckedContinuation<Int, any Error>], failure: (any Error)?)>((nil, [], nil))

    /// No I/O: the port is bound in ``run()``.
    public init(node: Node, address: PeerAddress, registry: PrometheusCollectorRegistry, logger: Logger = Logger(label: "dna.metrics")) {
        self.node = node
        self.address = address
        self.registry = registry
        self.logger = logger
    }

    /// Binds the address and serves until graceful shutdown or cancellation.
    ///
    /// - Throws: `DNAError.Code.invalidArgument` when the address cannot be bound (in use,
    ///   or not this machine's), naming it.
    public func run() async throws {
        let node = self.node
        let registry = self.registry
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMapThrowing {
                        try channel.pipeline.syncOperations.addHandler(EndpointHandler(node: node, registry: registry))
                    }
                }
                .bind(host: address.host, port: address.port).get()
        } catch {
            let failure = DNAError(.invalidArgument, "cannot serve metrics on \(address): \(error)")
            let waiters = bound.withLock { state in
                state.failure = failure
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(throwing: failure) }
            throw failure
        }
        let port = channel.localAddress?.port ?? address.port
        let waiters = bound.withLock { state in
            state.port = port
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: port) }
        logger.info("serving metrics and health probes", metadata: ["address": "\(address.host):\(port)"])
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                try? await channel.closeFuture.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }

    /// The port bound (the one chosen when the address says 0), once ``run()`` has bound it.
    public func waitUntilBound() async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            let outcome = bound.withLock { state -> Result<Int, any Error>? in
                if let port = state.port { return .success(port) }
                if let failure = state.failure { return .failure(failure) }
                state.waiters.append(continuation)
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }
}

/// Answers one request at a time on a connection.
private final class EndpointHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let node: Node
    private let registry: PrometheusCollectorRegistry

    init(node: Node, registry: PrometheusCollectorRegistry) {
        self.node = node
        self.registry = registry
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
        if head.method != .GET && head.method != .HEAD {
            (status, contentType, body) = (.methodNotAllowed, "text/plain", Array("only GET\n".utf8))
        } else {
            switch path {
            case "/metrics":
                (status, contentType, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
            case "/health/live", "/health/ready":
                let health = node.health
                let ok = path == "/health/live" ? health.live : health.ready
                let text = ok ? "ok\n" : health.reasons.joined(separator: "\n") + "\n"
                (status, contentType, body) = (ok ? .ok : .serviceUnavailable, "text/plain", Array(text.utf8))
            default:
                (status, contentType, body) = (
                    .notFound, "text/plain", Array("not found: try /metrics, /health/live, /health/ready\n".utf8)
                )
            }
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.count)")
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
