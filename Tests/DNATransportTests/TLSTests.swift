import NIOCore
import DNATLS
import NIOSSL
import DNATestSupport
import Testing

@testable import DNATransport
import DNATestCertificates

@Suite("TLS", .integration, .serialized)
struct TLSTests {
    static func tls(
        certificate: String = TestCertificates.node, key: String = TestCertificates.nodeKey
    ) throws
        -> TransportTLSConfiguration
    {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.utf8)).map { NIOSSLCertificateSource.certificate($0) }
        let privateKey = try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem)
        let server = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(privateKey))
        var client = TLSConfiguration.makeClientConfiguration()
        client.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(TestCertificates.ca.utf8)))
        client.certificateVerification = .fullVerification
        return TransportTLSConfiguration(server: server, client: client)
    }

    @Test("requests and responses flow over TLS, in order")
    func roundTripsOverTLS() async throws {
        let tls = try Self.tls()
        let (server, serverLog, address) = try await Fixtures.transport(nodeID: "server", configure: { $0.tls = tls })
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client", configure: { $0.tls = tls })
        for id in 1...UInt64(500) { try client.send(Fixtures.request(id), to: address) }
        let log = try await clientLog.wait(for: "500 responses") { $0.responses.count >= 500 }
        #expect(log.responses.map(\.id) == Array(1...500))
        #expect(serverLog.log.requests.map(\.id) == Array(1...500))
        // By name too: the certificate lists localhost.
        try client.send(Fixtures.request(501), to: PeerAddress(host: "localhost", port: address.port))
        try await clientLog.wait(for: "the response by name") { $0.responseIDs.contains(501) }
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a server whose certificate the client does not trust fails the link")
    func untrustedServer() async throws {
        let (server, serverLog, address) = try await Fixtures.transport(
            nodeID: "server",
            configure: {
                $0.tls = try? Self.tls(certificate: TestCertificates.other, key: TestCertificates.otherKey)
            })
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client", configure: { $0.tls = try? Self.tls() })
        try client.send(Fixtures.request(1), to: address)
        let log = try await clientLog.wait(for: "linkFailed") { !$0.failures.isEmpty }
        #expect(log.responses.isEmpty)
        #expect(serverLog.log.requests.isEmpty)
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a plain-TCP peer can not talk to a TLS node, and the TLS node keeps serving")
    func plainPeerAgainstTLS() async throws {
        let tls = try Self.tls()
        let (server, _, address) = try await Fixtures.transport(nodeID: "server", configure: { $0.tls = tls })
        let (plain, plainLog, _) = try await Fixtures.transport(nodeID: "plain")
        try plain.send(Fixtures.request(1), to: address)
        let log = try await plainLog.wait(for: "linkFailed") { !$0.failures.isEmpty }
        #expect(log.responses.isEmpty)
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client", configure: { $0.tls = tls })
        #expect(try await Fixtures.roundTrip(client, clientLog, to: address, id: 2).result == .success([1, 2, 3]))
        await plain.shutdown()
        await client.shutdown()
        await server.shutdown()
    }

    @Test("an unusable TLS configuration is refused by init")
    func invalidTLSConfiguration() throws {
        var configuration = Fixtures.configuration(nodeID: "n")
        var server = TLSConfiguration.makeServerConfiguration(
            certificateChain: [],
            privateKey: .privateKey(
                try NIOSSLPrivateKey(bytes: Array(TestCertificates.nodeKey.utf8), format: .pem)))
        server.trustRoots = .file("/nonexistent/roots.pem")
        server.certificateVerification = .fullVerification
        configuration.tls = TransportTLSConfiguration(server: server, client: .makeClientConfiguration())
        #expect(throws: TransportError.self) { _ = try ClusterTransport(configuration: configuration, delegate: Recorder()) }
    }
}
