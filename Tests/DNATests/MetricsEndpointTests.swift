@testable import DNA
import DNAPrometheus
import Foundation
import Metrics
import Prometheus
import DNATestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The process's one metrics backend (swift-metrics is bootstrapped once per process):
/// nodes made after the first use report into `registry`.
enum TestMetrics {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()
}

/// A plain HTTP/1.0 GET over a socket: the status code and the body.
func httpGet(port: Int, path: String) throws -> (status: Int, body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure(reason: "socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw TestFailure(reason: "connect to \(port) failed: errno \(errno)") }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: localhost\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        response += buffer[0..<count]
    }
    let text = String(decoding: response, as: UTF8.self)
    let parts = text.components(separatedBy: "\r\n\r\n")
    let statusLine = parts.first?.split(separator: "\r\n").first ?? ""
    let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, parts.dropFirst().joined(separator: "\r\n\r\n"))
}

@Suite("Metrics and health endpoint", .integration, .serialized)
struct MetricsEndpointTests {
    /// The value of an unlabelled sample in Prometheus text, if present.
    private func sample(_ name: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }

    @Test func metricsAreScrapedOverHTTPAndParse() async throws {
        let registry = TestMetrics.registry
        let directory = try TemporaryDirectory()
        let node = try Node(configuration: .init(store: .sqlite(path: directory.databasePath)), actors: [Recorder.self])
        let endpoint = MetricsEndpoint(node: node, address: PeerAddress(host: "127.0.0.1", port: 0), registry: registry)
        let serving = Task { try await endpoint.run() }
        let port = try await endpoint.waitUntilBound()
        let before = sample("dna_messages_total", in: try httpGet(port: port, path: "/metrics").body) ?? 0
        try await node.withRunning { node in
            for index in 0..<20 { try await node.ref(Recorder.self, key: "m").call(Recorder.Put(key: "\(index)", value: "v")) }
            let scrape = try httpGet(port: port, path: "/metrics")
            #expect(scrape.status == 200)
            #expect(scrape.body.contains("# TYPE dna_messages_total counter"))
            #expect((sample("dna_messages_total", in: scrape.body) ?? 0) >= before + 20)
            #expect(scrape.body.contains("dna_commit_duration"))
            #expect(scrape.body.contains("dna_batch_messages"))
            let ready = try httpGet(port: port, path: "/health/ready")
            #expect(ready.status == 200 && ready.body == "ok\n")
            #expect(try httpGet(port: port, path: "/nothing").status == 404)
        }
        // Stopped: neither live nor ready, with the reason.
        let live = try httpGet(port: port, path: "/health/live")
        #expect(live.status == 503)
        #expect(live.body.contains("stopped"))
        serving.cancel()
        _ = await serving.result
    }

    @Test func readinessFlipsWhenTheNodeDrains() async throws {
        // The backend first: the links' counters are made with the nodes (they counted
        // nothing when this test ran before every other that bootstraps it).
        let registry = TestMetrics.registry
        guard let cluster = try await TestCluster.start(.sqlite, count: 2) else { return }
        let a = cluster.nodes[0]
        let endpoint = MetricsEndpoint(node: a, address: PeerAddress(host: "127.0.0.1", port: 0), registry: registry)
        let serving = Task { try await endpoint.run() }
        let port = try await endpoint.waitUntilBound()
        #expect(try httpGet(port: port, path: "/health/ready").status == 200)
        try await a.ref(Recorder.self, key: "r").call(Recorder.Put(key: "k", value: "v"))
        // B calls the actor on A: bytes cross the link both ways, and are counted.
        try await cluster.nodes[1].ref(Recorder.self, key: "r").call(Recorder.Put(key: "k2", value: "v"))
        let scrape = try httpGet(port: port, path: "/metrics").body
        #expect((sample(#"dna_link_bytes_total{direction="sent"}"#, in: scrape) ?? 0) > 0, "\(scrape)")
        #expect((sample(#"dna_link_bytes_total{direction="received"}"#, in: scrape) ?? 0) > 0)
        _ = await a.moveActivationsAway()
        let ready = try httpGet(port: port, path: "/health/ready")
        #expect(ready.status == 503)
        #expect(ready.body.contains("draining"))
        #expect(try httpGet(port: port, path: "/health/live").status == 200)
        serving.cancel()
        _ = await serving.result
        await cluster.shutdown()
    }

    @Test func aMetricsPortInUseIsAClearError() async throws {
        let directory = try TemporaryDirectory()
        let node = try Node(configuration: .init(store: .sqlite(path: directory.databasePath)), actors: [Recorder.self])
        let first = MetricsEndpoint(node: node, address: PeerAddress(host: "127.0.0.1", port: 0), registry: TestMetrics.registry)
        let serving = Task { try await first.run() }
        let port = try await first.waitUntilBound()
        let second = MetricsEndpoint(node: node, address: PeerAddress(host: "127.0.0.1", port: port), registry: TestMetrics.registry)
        let error = await #expect(throws: DNAError.self) { try await second.run() }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("cannot serve metrics on 127.0.0.1:\(port)") == true, "\(String(describing: error))")
        serving.cancel()
        _ = await serving.result
        await node.shutdown()
    }
}
