import NIOCore
import NIOSSL

/// TLS for node-to-node connections (optional; see ``TransportConfiguration/tls``).
///
/// The DNA handshake runs inside TLS: peers still prove knowledge of the cluster secret,
/// and TLS adds confidentiality and, with certificate verification, the server's (and,
/// if the server configuration asks for client certificates, the client's) identity.
public struct TransportTLSConfiguration: Sendable {
    /// Used for connections peers open to this node (needs a certificate chain and key).
    public var server: TLSConfiguration
    /// Used for connections this node opens to peers.
    public var client: TLSConfiguration
    /// The name to verify the peer's certificate against and send as SNI. `nil` uses the
    /// peer's host when it is a DNS name; for an IP address, the certificate must list that
    /// address.
    public var serverHostname: String?

    public init(server: TLSConfiguration, client: TLSConfiguration, serverHostname: String? = nil) {
        self.server = server
        self.client = client
        self.serverHostname = serverHostname
    }
}

/// The SSL contexts made once from ``TransportTLSConfiguration`` (making one is costly).
struct TransportTLSContexts: Sendable {
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

    func serverHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: server)
    }

    func clientHandler(for peer: PeerAddress) throws -> NIOSSLClientHandler {
        // SNI must not be an IP address; NIOSSL then checks the address against the certificate.
        let isIPAddress = (try? SocketAddress(ipAddress: peer.host, port: 0)) != nil
        return try NIOSSLClientHandler(context: client, serverHostname: serverHostname ?? (isIPAddress ? nil : peer.host))
    }
}
