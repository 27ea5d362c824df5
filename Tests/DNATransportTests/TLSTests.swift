import NIOCore
import NIOSSL
import Testing

@testable import DNATransport

/// Test certificates (P-256, valid until 2126): a CA, a node certificate it signed for
/// `localhost` and `127.0.0.1`, and an unrelated self-signed one. Made with openssl for
/// these tests only.
enum TestCertificates {
    static let ca = """
-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIULrnc9MvsdA4f4q8fpb7AeUEf4X0wCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLRE5BIHRlc3QgQ0EwIBcNMjYxMTIyMDczNzE2WhgPMjEyNjEw
MjkwNzM3MTZaMBYxFDASBgNVBAMMC0ROQSB0ZXN0IENBMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEMggOEqqeHjxgCmrS8v+WdCcfOxfCcMw8zZ8jwgjlJ+5Ftp5A
TFOfrIKcBk/0DGzLdS0HAXfvbltLqZ1eGjK1uqNTMFEwHQYDVR0OBBYEFNOYdrt0
rVX+IGHym8JbM+TaUKLrMB8GA1UdIwQYMBaAFNOYdrt0rVX+IGHym8JbM+TaUKLr
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAIGWceO4RD+g03Qi
gNt3ImKvfhh1J3stans3iKSpkzORAiAejCnUFQSqvq7otCxb3eOQLRKqLxb3lA0a
wjqpdDrc8Q==
-----END CERTIFICATE-----
"""

    static let node = """
-----BEGIN CERTIFICATE-----
MIIBxTCCAWugAwIBAgIUOmfedPUTu1SW3KfCw1TWkLE1PL8wCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLRE5BIHRlc3QgQ0EwIBcNMjYxMTIyMDczNzE3WhgPMjEyNjEw
MjkwNzM3MTdaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABHsFN7FPVcY4AtKMrGnuKRJwnOMWbRO3dBM1P1IBXsv8AHVtNWV1
+10jozr4hiQqPKucBj62IlB4H0MwdsWycHKjgZYwgZMwGgYDVR0RBBMwEYIJbG9j
YWxob3N0hwR/AAABMAkGA1UdEwQCMAAwCwYDVR0PBAQDAgeAMB0GA1UdJQQWMBQG
CCsGAQUFBwMBBggrBgEFBQcDAjAdBgNVHQ4EFgQUXLsqhlWJkq9fIa6by4WHyNu3
ndUwHwYDVR0jBBgwFoAU05h2u3StVf4gYfKbwlsz5NpQouswCgYIKoZIzj0EAwID
SAAwRQIgVFN4/+R2MzPi2QCdMeeoArFS/W6LFGAay7m8ZF/JKeUCIQD0Rg4+u+GR
dvSeqtUtlwJiJak3YvQSPN2zuONJxhWmMQ==
-----END CERTIFICATE-----
"""

    static let nodeKey = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+kZYi12PP0sPO2yG
PEf6zLf4IEyKAOW6MaMxao8SxjqhRANCAAR7BTexT1XGOALSjKxp7ikScJzjFm0T
t3QTNT9SAV7L/AB1bTVldftdI6M6+IYkKjyrnAY+tiJQeB9DMHbFsnBy
-----END PRIVATE KEY-----
"""

    static let other = """
-----BEGIN CERTIFICATE-----
MIIBmTCCAUGgAwIBAgIUZpaL4nVZ6Vn6L1RLcvWTNnb5tIcwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMjA3MzcxN1oYDzIxMjYxMDI5
MDczNzE3WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQ9ERGcplqxtML7opJz9NJf8LTuKW9je4S3SpUnDXXz5cHv3ixrBdIc
vRHqj3jjxADeYPR9rgDWLqwjh5vYxdvbo28wbTAdBgNVHQ4EFgQUds9ZEq7naHqW
iZI45nYyIZtgiyowHwYDVR0jBBgwFoAUds9ZEq7naHqWiZI45nYyIZtgiyowDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRgAwQwIfcGhRBzeMEmgGopId4x795Ukdm/YeFLflZhBxD/gjewIgeFdX
49uviHotspZLkTZp3b1FR8pdXScXM7YYZ00RYK0=
-----END CERTIFICATE-----
"""

    static let otherKey = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXtgLjHxaZFtOz0vR
t/pFSXtcuiaOOezoVAaDEXi/0vKhRANCAAQ9ERGcplqxtML7opJz9NJf8LTuKW9j
e4S3SpUnDXXz5cHv3ixrBdIcvRHqj3jjxADeYPR9rgDWLqwjh5vYxdvb
-----END PRIVATE KEY-----
"""
}

@Suite("TLS")
struct TLSTests {
    static func tls(certificate: String = TestCertificates.node, key: String = TestCertificates.nodeKey) throws
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
        for id in 1...UInt64(500) { client.send(Fixtures.request(id), to: address) }
        let log = try await clientLog.wait(for: "500 responses") { $0.responses.count >= 500 }
        #expect(log.responses.map(\.id) == Array(1...500))
        #expect(serverLog.log.requests.map(\.id) == Array(1...500))
        // By name too: the certificate lists localhost.
        client.send(Fixtures.request(501), to: PeerAddress(host: "localhost", port: address.port))
        try await clientLog.wait(for: "the response by name") { $0.responseIDs.contains(501) }
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a server whose certificate the client does not trust fails the link")
    func untrustedServer() async throws {
        let (server, serverLog, address) = try await Fixtures.transport(nodeID: "server", configure: {
            $0.tls = try? Self.tls(certificate: TestCertificates.other, key: TestCertificates.otherKey)
        })
        let (client, clientLog, _) = try await Fixtures.transport(nodeID: "client", configure: { $0.tls = try? Self.tls() })
        client.send(Fixtures.request(1), to: address)
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
        plain.send(Fixtures.request(1), to: address)
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
        var server = TLSConfiguration.makeServerConfiguration(certificateChain: [], privateKey: .privateKey(
            try NIOSSLPrivateKey(bytes: Array(TestCertificates.nodeKey.utf8), format: .pem)))
        server.trustRoots = .file("/nonexistent/roots.pem")
        server.certificateVerification = .fullVerification
        configuration.tls = TransportTLSConfiguration(server: server, client: .makeClientConfiguration())
        #expect(throws: TransportError.self) { _ = try ClusterTransport(configuration: configuration, delegate: Recorder()) }
    }
}
