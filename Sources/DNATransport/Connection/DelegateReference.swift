import Synchronization

/// Holds the transport's delegate: strongly until shutdown (the transport "holds delegate
/// until shutdown()"), weakly after, so late sends can still hear `linkFailed(.shutDown)`
/// without the transport keeping its owner alive.
final class DelegateReference: Sendable {
    private struct Holder {
        var strong: (any ClusterTransportDelegate)?
        weak var weakReference: (any ClusterTransportDelegate)?
    }

    private let holder: Mutex<Holder>

    init(_ delegate: any ClusterTransportDelegate) {
        holder = Mutex(Holder(strong: delegate, weakReference: delegate))
    }

    var current: (any ClusterTransportDelegate)? {
        holder.withLock { $0.strong ?? $0.weakReference }
    }

    func release() {
        holder.withLock { $0.strong = nil }
    }
}
