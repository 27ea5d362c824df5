public import NIOCore

/// A layer under the DNA handshake on every node-to-node connection, such as TLS (the
/// `DNATLS` product provides ``TransportSecurity`` for mutual TLS). Without one,
/// connections are plain TCP, and the handshake still authenticates both sides with the
/// cluster secret.
public protocol TransportSecurity: Sendable {
    /// Checks the settings and prepares what every connection shares (for TLS, the
    /// contexts, which are costly to make). Called once, when the transport is made.
    ///
    /// - Throws: ``TransportError/Code/invalidConfiguration`` for unusable settings.
    func prepareConnections() throws(TransportError) -> any ConnectionSecurity
}

/// What ``TransportSecurity/prepareConnections()`` prepared: adds the layer's handlers to
/// each connection's pipeline, before the DNA handshake's. Called on the channel's event loop.
public protocol ConnectionSecurity: Sendable {
    /// For a connection a peer opened to this node.
    func addServerHandlers(to pipeline: ChannelPipeline.SynchronousOperations) throws
    /// For a connection this node opens to `peer`.
    func addClientHandlers(to pipeline: ChannelPipeline.SynchronousOperations, peer: PeerAddress) throws
}
