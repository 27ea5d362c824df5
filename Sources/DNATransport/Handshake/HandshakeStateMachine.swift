/// The server side of the handshake, free of I/O: feed it frames, do what it answers.
///
/// Hello → (checks magic, version, cluster) → Challenge with the server's proof →
/// Proof → (checks the client's proof in constant time) → Welcome. Anything else, in any
/// order, ends the handshake; after a failure every further frame is ignored.
struct ServerHandshakeStateMachine {
    enum Action: Equatable {
        /// Write this frame and wait for the next one.
        case send(Frame)
        /// The client is authenticated: write `welcome`, then requests may flow.
        case authenticated(peerNodeID: String, welcome: Frame)
        /// Write the refusal, then close; `reason` is for the log.
        case refuse(Frame, reason: String)
        /// Close without an answer (not a DNA peer, or a frame out of order).
        case close(reason: String)
        /// The handshake is already over; nothing to do.
        case ignore
    }

    private enum State {
        case awaitingHello
        case awaitingProof(clientNodeID: String, clientNonce: [UInt8])
        case authenticated(peerNodeID: String)
        case failed
    }

    private let cluster: String
    private let nodeID: String
    private let proofs: HandshakeProofs
    private let nonce: [UInt8]
    private var state = State.awaitingHello

    init(cluster: String, nodeID: String, proofs: HandshakeProofs, nonce: [UInt8] = HandshakeNonce.random()) {
        self.cluster = cluster
        self.nodeID = nodeID
        self.proofs = proofs
        self.nonce = nonce
    }

    /// The authenticated client's node id, once the handshake has succeeded.
    var peerNodeID: String? {
        if case .authenticated(let id) = state { id } else { nil }
    }

    mutating func receive(_ frame: Frame) -> Action {
        switch (state, frame) {
        case (.awaitingHello, .hello(let hello)):
            guard hello.magic == Hello.magic else {
                return fail(close: "bad magic: not a DNA peer")
            }
            guard hello.protocolVersion == Hello.currentProtocolVersion else {
                return fail(
                    refuse: "unsupported protocol version \(hello.protocolVersion); this node speaks \(Hello.currentProtocolVersion)")
            }
            guard hello.cluster == cluster else {
                return fail(refuse: "wrong cluster \"\(hello.cluster)\"; this node is in cluster \"\(cluster)\"")
            }
            guard hello.nonce.count == HandshakeNonce.size else {
                return fail(close: "bad nonce size")
            }
            state = .awaitingProof(clientNodeID: hello.nodeID, clientNonce: hello.nonce)
            let proof = proofs.proof(
                .server, clientNonce: hello.nonce, serverNonce: nonce, cluster: cluster, serverID: nodeID,
                clientID: hello.nodeID)
            return .send(.challenge(Challenge(nodeID: nodeID, nonce: nonce, serverProof: proof)))

        case (.awaitingProof(let clientNodeID, let clientNonce), .proof(let proof)):
            let valid = proofs.verify(
                proof.clientProof, .client, clientNonce: clientNonce, serverNonce: nonce, cluster: cluster,
                serverID: nodeID, clientID: clientNodeID)
            guard valid else { return fail(refuse: "authentication failed (wrong cluster secret)") }
            state = .authenticated(peerNodeID: clientNodeID)
            return .authenticated(peerNodeID: clientNodeID, welcome: .welcome)

        case (.failed, _), (.authenticated, _):
            return .ignore

        case (.awaitingHello, _), (.awaitingProof, _):
            return fail(close: "unexpected \(frame.type) frame during the handshake")
        }
    }

    private mutating func fail(refuse reason: String) -> Action {
        state = .failed
        return .refuse(.refuse(Refuse(reason: reason)), reason: reason)
    }

    private mutating func fail(close reason: String) -> Action {
        state = .failed
        return .close(reason: reason)
    }
}

/// The client side of the handshake, free of I/O.
///
/// `start()` gives the Hello; the Challenge's server proof is verified before the client
/// proves anything (so a server without the secret learns nothing and is detected); then
/// Proof, then Welcome.
struct ClientHandshakeStateMachine {
    enum Action: Equatable {
        case send(Frame)
        /// Welcome received: the server is authenticated as `peerNodeID`.
        case authenticated(peerNodeID: String)
        /// The handshake failed; close. `reason` is for the log and `linkFailed`.
        case fail(reason: String)
        /// The handshake is already over; nothing to do.
        case ignore
    }

    private enum State {
        case initial
        case awaitingChallenge
        case awaitingWelcome(serverNodeID: String)
        case authenticated(peerNodeID: String)
        case failed
    }

    private let cluster: String
    private let nodeID: String
    private let proofs: HandshakeProofs
    private let nonce: [UInt8]
    private let protocolVersion: UInt16
    private var state = State.initial

    /// `protocolVersion` is overridable for tests of the server's refusal.
    init(
        cluster: String, nodeID: String, proofs: HandshakeProofs, nonce: [UInt8] = HandshakeNonce.random(),
        protocolVersion: UInt16 = Hello.currentProtocolVersion
    ) {
        self.cluster = cluster
        self.nodeID = nodeID
        self.proofs = proofs
        self.nonce = nonce
        self.protocolVersion = protocolVersion
    }

    var peerNodeID: String? {
        if case .authenticated(let id) = state { id } else { nil }
    }

    /// The Hello to write when the connection is up.
    mutating func start() -> Frame {
        precondition(isInitial, "start() called twice")
        state = .awaitingChallenge
        return .hello(
            Hello(magic: Hello.magic, protocolVersion: protocolVersion, cluster: cluster, nodeID: nodeID, nonce: nonce))
    }

    private var isInitial: Bool {
        if case .initial = state { true } else { false }
    }

    mutating func receive(_ frame: Frame) -> Action {
        switch (state, frame) {
        case (.awaitingChallenge, .challenge(let challenge)):
            guard challenge.nonce.count == HandshakeNonce.size else { return fail("bad server nonce size") }
            let valid = proofs.verify(
                challenge.serverProof, .server, clientNonce: nonce, serverNonce: challenge.nonce, cluster: cluster,
                serverID: challenge.nodeID, clientID: nodeID)
            guard valid else {
                return fail("the server's proof is wrong: it does not know the cluster secret")
            }
            state = .awaitingWelcome(serverNodeID: challenge.nodeID)
            let proof = proofs.proof(
                .client, clientNonce: nonce, serverNonce: challenge.nonce, cluster: cluster,
                serverID: challenge.nodeID, clientID: nodeID)
            return .send(.proof(Proof(clientProof: proof)))

        case (.awaitingWelcome(let serverNodeID), .welcome):
            state = .authenticated(peerNodeID: serverNodeID)
            return .authenticated(peerNodeID: serverNodeID)

        case (.awaitingChallenge, .refuse(let refuse)), (.awaitingWelcome, .refuse(let refuse)):
            return fail("refused by the server: \(refuse.reason)")

        case (.failed, _), (.authenticated, _):
            return .ignore

        case (.initial, _), (.awaitingChallenge, _), (.awaitingWelcome, _):
            return fail("unexpected \(frame.type) frame during the handshake")
        }
    }

    private mutating func fail(_ reason: String) -> Action {
        state = .failed
        return .fail(reason: reason)
    }
}
