public import DNATransport
import Foundation
import NIOCore
public import NIOSSL

/// TLS for node-to-node connections: set it as `Node.Configuration.tls` (and give it to
/// `ClusterClient`), or as `TransportConfiguration.tls`.
///
/// The DNA handshake runs inside TLS: peers still prove knowledge of the cluster secret,
/// and TLS adds confidentiality and, with certificate verification, the server's (and,
/// if the server configuration asks for client certificates, the client's) identity.
public struct TransportTLSConfiguration: TransportSecurity {
    /// Used for connections peers open to this node (needs a certificate chain and key).
    public var server: TLSConfiguration
    /// Used for connections this node opens to peers.
    public var client: TLSConfiguration
    /// The name to verify the peer's certificate against and send as SNI. `nil` uses the
    /// peer's host when it is a DNS name; for an IP address, the certificate must list that
    /// address.
    public var serverHostname: String?

    /// TLS with NIOSSL configurations of your own for each side (see the properties).
    public init(server: TLSConfiguration, client: TLSConfiguration, serverHostname: String? = nil) {
        self.server = server
        self.client = client
        self.serverHostname = serverHostname
    }

    /// Mutual TLS for a cluster from PEM files: every node presents `certificateChain`
    /// (signed by the cluster's CA, for both server and client authentication) and
    /// accepts only peers whose certificate chains to `trustRoots` — in both directions.
    ///
    /// - Parameters:
    ///   - certificateChain: this node's certificate (and intermediates), PEM.
    ///   - privateKey: its private key, PEM.
    ///   - trustRoots: the CA certificates peers' certificates must chain to, PEM.
    ///   - serverHostname: the name a peer's certificate must carry, when it is not the
    ///     peer's address.
    /// - Throws: `TransportError` (`invalidConfiguration`) naming the file that could not
    ///   be read or parsed.
    public static func mutual(
        certificateChain: String, privateKey: String, trustRoots: String, serverHostname: String? = nil
    ) throws(TransportError) -> TransportTLSConfiguration {
        func load<T>(_ path: String, _ what: String, _ parse: ([UInt8]) throws -> T) throws(TransportError) -> T {
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw TransportError(.invalidConfiguration, "cannot read the TLS \(what) at \(path)")
            }
            do { return try parse(Array(contents)) } catch {
                throw TransportError(.invalidConfiguration, "the TLS \(what) at \(path) is not valid PEM: \(error)")
            }
        }
        let chain = try load(certificateChain, "certificate chain") { try NIOSSLCertificate.fromPEMBytes($0) }
        let key = try load(privateKey, "private key") { try NIOSSLPrivateKey(bytes: $0, format: .pem) }
        let roots = try load(trustRoots, "trust roots") { try NIOSSLCertificate.fromPEMBytes($0) }
        guard !chain.isEmpty, !roots.isEmpty else {
            throw TransportError(.invalidConfiguration, "the TLS certificate chain and trust roots must each hold a certificate")
        }
        let sources = chain.map { NIOSSLCertificateSource.certificate($0) }
        var server = TLSConfiguration.makeServerConfiguration(certificateChain: sources, privateKey: .privateKey(key))
        server.trustRoots = .certificates(roots)
        server.certificateVerification = .fullVerification
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = sources
        client.privateKey = .privateKey(key)
        client.trustRoots = .certificates(roots)
        client.certificateVerification = .fullVerification
        return TransportTLSConfiguration(server: server, client: client, serverHostname: serverHostname)
    }
}

extension TransportTLSConfiguration {
    /// Makes the SSL contexts of both sides, once for all connections.
    ///
    /// - Throws: `TransportError` (`invalidConfiguration`) if NIOSSL refuses a configuration.
    public func prepareConnections() throws(TransportError) -> any ConnectionSecurity {
        try TransportTLSContexts(self)
    }
}

extension TransportSecurity where Self == TransportTLSConfiguration {
    /// Mutual TLS from PEM files; see ``TransportTLSConfiguration/mutual(certificateChain:privateKey:trustRoots:serverHostname:)``.
    public static func mutualTLS(
        certificateChain: String, privateKey: String, trustRoots: String, serverHostname: String? = nil
    ) throws(TransportError) -> TransportTLSConfiguration {
        try .mutual(certificateChain: certificateChain, privateKey: privateKey, trustRoots: trustRoots, serverHostname: serverHostname)
    }
}

/// The SSL contexts made once from ``TransportTLSConfiguration`` (making one is costly).
struct TransportTLSContexts: ConnectionSecurity {
    let server: NIOSSLContext
    let client: NIOSSLContext
    let serverHostname: String?

    init(_ configuration: TransportTLSConfiguration) throws(TransportError) {
        do {
            server = try NIOSSLContext(configuration: configuration.server)
            client = try NIOSSLContext(configuration: configuration.client)
        } catch {
            throw TransportError(.invalidConfiguration, "invalid TLS configuration: \(error)")
        }
        serverHostname = configuration.serverHostname
    }

    func addServerHandlers(to pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(NIOSSLServerHandler(context: server))
    }

    func addClientHandlers(to pipeline: ChannelPipeline.SynchronousOperations, peer: PeerAddress) throws {
        // SNI must not be an IP address; NIOSSL then checks the address against the certificate.
        let isIPAddress = (try? SocketAddress(ipAddress: peer.host, port: 0)) != nil
        try pipeline.addHandler(
            NIOSSLClientHandler(context: client, serverHostname: serverHostname ?? (isIPAddress ? nil : peer.host)))
    }
}
