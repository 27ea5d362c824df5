import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import DNATransport

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// A delegate that records every event, lets a test await a condition with a deadline,
/// and optionally answers requests.
final class Recorder: ClusterTransportDelegate {
    struct Log: Sendable {
        var requests: [WireRequest] = []
        var responses: [WireResponse] = []
        var failures: [LinkFailure] = []
        var responseIDs: Set<UInt64> = []
        var peerNodeIDs: Set<String> = []
    }

    private struct Waiter {
        var predicate: @Sendable (Log) -> Bool
        var continuation: CheckedContinuation<Log, any Error>
    }

    private struct State {
        var log = Log()
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())
    private let reply: (@Sendable (WireRequest, ResponseSink) -> Void)?

    /// `reply` answers each request; by default requests expecting a reply are echoed.
    init(reply: (@Sendable (WireRequest, ResponseSink) -> Void)? = Recorder.echo) {
        self.reply = reply
    }

    static let echo: @Sendable (WireRequest, ResponseSink) -> Void = { request, sink in
        if request.expectsReply { sink.send(WireResponse(id: request.id, result: .success(request.payload))) }
    }

    func transport(didReceive request: WireRequest, sink: ResponseSink) {
        record {
            $0.requests.append(request)
            $0.peerNodeIDs.insert(sink.peerNodeID)
        }
        reply?(request, sink)
    }

    func transport(didReceive response: WireResponse, from peer: PeerAddress) {
        record {
            $0.responses.append(response)
            $0.responseIDs.insert(response.id)
        }
    }

    func transport(linkFailed failure: LinkFailure) {
        record { $0.failures.append(failure) }
    }

    var log: Log { state.withLock { $0.log } }

    private func record(_ change: (inout Log) -> Void) {
        let ready = state.withLock { state -> [(Waiter, Log)] in
            change(&state.log)
            let done = state.waiters.filter { $0.value.predicate(state.log) }
            for id in done.keys { state.waiters[id] = nil }
            return done.values.map { ($0, state.log) }
        }
        for (waiter, log) in ready { waiter.continuation.resume(returning: log) }
    }

    /// Waits until `predicate` holds for the log; throws ``TimedOut`` after `timeout`.
    @discardableResult
    func wait(
        for what: String, timeout: Duration = .seconds(10), until predicate: @escaping @Sendable (Log) -> Bool
    ) async throws -> Log {
        try await withCheckedThrowingContinuation { continuation in
            let id = state.withLock { state -> UInt64? in
                if predicate(state.log) { return nil }
                state.nextWaiter += 1
                state.waiters[state.nextWaiter] = Waiter(predicate: predicate, continuation: continuation)
                return state.nextWaiter
            }
            guard let id else {
                continuation.resume(returning: log)
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.continuation.resume(throwing: TimedOut(what: what))
            }
        }
    }
}

enum Fixtures {
    static let secret = Array("0123456789abcdef-cluster-secret".utf8)

    static func configuration(
        cluster: String = "test", nodeID: String, secret: [UInt8] = secret, port: Int = 0,
        configure: (inout TransportConfiguration) -> Void = { _ in }
    ) -> TransportConfiguration {
        var configuration = TransportConfiguration(cluster: cluster, nodeID: nodeID, secret: secret)
        configuration.port = port
        configuration.logger = Logger(label: "dna.transport.test.\(nodeID)")
        configuration.logger.logLevel = .critical
        configure(&configuration)
        return configuration
    }

    /// A started transport and its recorder.
    /// A free port below the kernel's ephemeral range (32768 and up), so that no other test
    /// binding port 0 can be handed it while a test relies on it being closed or reusable.
    static func unusedLowPort() -> Int {
        while true {
            let port = Int.random(in: 20_000..<30_000)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { return port }
        }
    }

    static func transport(
        nodeID: String, cluster: String = "test", secret: [UInt8] = secret, port: Int = 0,
        reply: (@Sendable (WireRequest, ResponseSink) -> Void)? = Recorder.echo,
        configure: (inout TransportConfiguration) -> Void = { _ in }
    ) async throws -> (ClusterTransport, Recorder, PeerAddress) {
        let recorder = Recorder(reply: reply)
        let transport = try ClusterTransport(
            configuration: configuration(cluster: cluster, nodeID: nodeID, secret: secret, port: port, configure: configure),
            delegate: recorder)
        let bound = try await transport.start()
        return (transport, recorder, PeerAddress(host: "127.0.0.1", port: bound))
    }

    static func request(_ id: UInt64, payload: [UInt8] = [1, 2, 3], expectsReply: Bool = true) -> WireRequest {
        WireRequest(
            id: id, expectsReply: expectsReply, hops: 0, namespace: "ns", kind: "kv", key: "k\(id)", requestName: "Get",
            payload: payload)
    }

    /// Sends one request and waits for its response (fails on linkFailed or timeout).
    static func roundTrip(
        _ transport: ClusterTransport, _ recorder: Recorder, to peer: PeerAddress, id: UInt64
    )
        async throws -> WireResponse
    {
        let failuresBefore = recorder.log.failures.count
        try transport.send(request(id), to: peer)
        let log = try await recorder.wait(for: "response \(id)") {
            $0.responseIDs.contains(id) || $0.failures.count > failuresBefore
        }
        guard let response = log.responses.last(where: { $0.id == id }) else {
            throw log.failures.last!.error
        }
        return response
    }
}

/// A raw TCP connection speaking crafted bytes to a transport, to check how the server
/// treats peers that are not well-behaved DNA nodes.
struct RawConnection {
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var accumulator = FrameAccumulator()

    /// Connects to `port`, runs `body`, closes; the whole session is bounded by `timeout`.
    static func session<T: Sendable>(
        port: Int, timeout: Duration = .seconds(10), _ body: @escaping @Sendable (inout RawConnection) async throws -> T
    ) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    var connection = RawConnection(inbound: inbound.makeAsyncIterator(), outbound: outbound)
                    return try await body(&connection)
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TimedOut(what: "the raw session to end")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    func write(_ bytes: [UInt8]) async throws {
        try await outbound.write(ByteBuffer(bytes: bytes))
    }

    func write(_ frame: Frame) async throws {
        try await outbound.write(encoded(frame))
    }

    func write(_ buffer: ByteBuffer) async throws {
        try await outbound.write(buffer)
    }

    /// Runs the client side of the handshake with the fixtures' secret.
    mutating func authenticate(cluster: String = "test", nodeID: String = "raw-client") async throws {
        var handshake = ClientHandshakeStateMachine(
            cluster: cluster, nodeID: nodeID, proofs: HandshakeProofs(secret: Fixtures.secret), nonce: HandshakeNonce.random(),
            protocolVersion: Hello.currentProtocolVersion)
        try await write(handshake.start())
        while true {
            guard let frame = try await nextFrame() else { throw TimedOut(what: "the handshake (connection closed)") }
            switch handshake.receive(frame) {
            case .send(let reply): try await write(reply)
            case .authenticated: return
            case .fail(let reason): throw TimedOut(what: "the handshake (failed: \(reason))")
            case .ignore: continue
            }
        }
    }

    /// The next frame, or `nil` when the server has closed the connection.
    mutating func nextFrame() async throws -> Frame? {
        while true {
            if let frame = try accumulator.next(maxFrameSize: 1 << 20) { return frame }
            // A reset counts as closed: the server may close with our bytes unread.
            guard let buffer = try? await inbound.next() else { return nil }
            accumulator.append(buffer)
        }
    }

    /// Reads until the server closes; returns the frames it sent before closing.
    mutating func framesUntilClosed() async throws -> [Frame] {
        var frames: [Frame] = []
        while let frame = try await nextFrame() { frames.append(frame) }
        return frames
    }
}

func encoded(_ frame: Frame) -> ByteBuffer {
    var buffer = ByteBuffer()
    FrameCodec.encode(frame, into: &buffer)
    return buffer
}

func hello(
    cluster: String = "test", version: UInt16 = Hello.currentProtocolVersion, magic: [UInt8] = Hello.magic,
    nonce: [UInt8] = HandshakeNonce.random()
)
    -> Frame
{
    .hello(Hello(magic: magic, protocolVersion: version, cluster: cluster, nodeID: "raw", nonce: nonce))
}
