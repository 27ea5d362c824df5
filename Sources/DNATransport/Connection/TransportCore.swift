import Logging
import NIOCore
import NIOPosix
import Synchronization

/// What every connection of one transport shares: configuration, the proofs' key, the
/// delegate, and the registry of open channels (so shutdown can close and await them).
final class TransportCore: Sendable {
    let configuration: TransportConfiguration
    let proofs: HandshakeProofs
    let delegate: DelegateReference
    let logger: Logger
    /// NIO's process-wide group: the transport starts no threads of its own, and has none
    /// to shut down.
    let group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    /// Frames before authentication are small: an unauthenticated peer must not make us
    /// buffer up to `maxFrameSize`.
    let handshakeMaxFrameSize: Int
    /// `nil`: plain TCP.
    let tls: (any ConnectionSecurity)?
    let metrics = LinkMetrics()

    struct State {
        var isShutDown = false
        var serverChannel: (any Channel)?
        var channels: [ObjectIdentifier: any Channel] = [:]
    }

    let state = Mutex(State())
    /// Inbound connections that have not completed the handshake (see
    /// ``TransportConfiguration/maxUnauthenticatedConnections``).
    let unauthenticated = Atomic<Int>(0)
    /// The outgoing links, apart from `state` so that sends do not contend with channels
    /// opening and closing. `nil` once shut down.
    let links = Mutex<[PeerAddress: OutgoingLink]?>([:])

    init(configuration: TransportConfiguration, delegate: any ClusterTransportDelegate, tls: (any ConnectionSecurity)?) {
        self.tls = tls
        self.configuration = configuration
        self.proofs = HandshakeProofs(secret: configuration.secret)
        self.delegate = DelegateReference(delegate)
        self.logger = configuration.logger
        self.handshakeMaxFrameSize = min(configuration.maxFrameSize, 64 * 1024)
    }

    /// Records `channel` until it closes; refuses it once shutdown has begun.
    func register(_ channel: any Channel) throws(TransportError) {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { state -> Bool in
            guard !state.isShutDown else { return false }
            state.channels[id] = channel
            return true
        }
        guard accepted else { throw TransportError(.shutDown, "the transport is shut down") }
        channel.closeFuture.whenComplete { _ in
            _ = self.state.withLock { $0.channels.removeValue(forKey: id) }
        }
    }

    /// Runs `body` on an event loop: delegate callbacks are promised to come from one.
    func onEventLoop(_ body: @escaping @Sendable () -> Void) {
        group.next().execute(body)
    }
}

extension TimeAmount {
    package init(clamping duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if nanos.overflow {
            self = .nanoseconds(.max)
        } else {
            self = .nanoseconds(nanos.partialValue &+ attoseconds / 1_000_000_000)
        }
    }
}
