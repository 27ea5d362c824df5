// Fuzzes the handshake state machines with frames cut from arbitrary bytes, as a peer that
// does not know the cluster secret could send them.
//
// Input: byte 0 is a schedule; the rest is a byte stream cut into frames by
// `FrameAccumulator` (undecodable bytes end the stream, as they close a connection).
// 1. Every frame goes to a fresh server machine and, after `start()`, to a fresh client.
// 2. A real client and a real server talk; before each of the honest frames, the schedule
//    may slip in the next fuzzed frame, to either side.
// Checked, besides "never traps": once a machine has failed or authenticated it ignores
// everything; `peerNodeID` is set exactly when it authenticated; a machine authenticates only
// on the frame that the secret's holder would send; two honest peers with nothing slipped
// in authenticate each other.

@testable import DNATransport
import FuzzSupport
import NIOCore

private let cluster = "fuzz-cluster"
private let serverID = "server-1"
private let clientID = "client-1"
private let proofs = HandshakeProofs(secret: Array("the cluster secret".utf8))
private let clientNonce = [UInt8](repeating: 0xC1, count: HandshakeNonce.size)
private let serverNonce = [UInt8](repeating: 0x5E, count: HandshakeNonce.size)

private func frames(in bytes: ArraySlice<UInt8>) -> [Frame] {
    var accumulator = FrameAccumulator()
    accumulator.append(ByteBuffer(bytes: bytes))
    var frames: [Frame] = []
    while let frame = try? accumulator.next(maxFrameSize: 1 << 20) { frames.append(frame) }
    return frames
}

/// A server machine and what it has answered, checked after every frame.
private struct CheckedServer {
    var machine = ServerHandshakeStateMachine(cluster: cluster, nodeID: serverID, proofs: proofs, nonce: serverNonce)
    var over = false
    var authenticatedAs: String?
    var challengedClient: (id: String, nonce: [UInt8])?

    mutating func receive(_ frame: Frame) -> ServerHandshakeStateMachine.Action {
        let action = machine.receive(frame)
        if over {
            precondition(action == .ignore, "server answered \(action) to \(frame) after the handshake was over")
        }
        switch action {
        case .send(let answer):
            guard case .hello(let hello) = frame, case .challenge(let challenge) = answer else {
                preconditionFailure("server sent \(answer) for \(frame)")
            }
            precondition(hello.magic == Hello.magic && hello.protocolVersion == Hello.currentProtocolVersion)
            precondition(hello.cluster == cluster && hello.nonce.count == HandshakeNonce.size)
            precondition(challenge.nodeID == serverID && challenge.nonce == serverNonce)
            precondition(
                challenge.serverProof
                    == proofs.proof(
                        .server, clientNonce: hello.nonce, serverNonce: serverNonce, cluster: cluster,
                        serverID: serverID, clientID: hello.nodeID))
            challengedClient = (hello.nodeID, hello.nonce)
        case .authenticated(let peer, let welcome):
            precondition(welcome == .welcome)
            guard case .proof(let proof) = frame, let client = challengedClient else {
                preconditionFailure("server authenticated \(peer) on \(frame)")
            }
            precondition(peer == client.id, "server authenticated \(peer), challenged \(client.id)")
            let expected = proofs.proof(
                .client, clientNonce: client.nonce, serverNonce: serverNonce, cluster: cluster, serverID: serverID,
                clientID: client.id)
            precondition(proof.clientProof == expected, "server accepted a wrong proof")
            authenticatedAs = peer
            over = true
        case .refuse(let refusal, _):
            guard case .refuse = refusal else { preconditionFailure("server refused with \(refusal)") }
            over = true
        case .close:
            over = true
        case .ignore:
            precondition(over, "server ignored \(frame) during the handshake")
        }
        precondition(machine.peerNodeID == authenticatedAs)
        return action
    }
}

/// A client machine after `start()`, checked after every frame.
private struct CheckedClient {
    var machine = ClientHandshakeStateMachine(cluster: cluster, nodeID: clientID, proofs: proofs, nonce: clientNonce)
    let hello: Frame
    var over = false
    var authenticatedAs: String?
    var provedTo: String?

    init() {
        hello = machine.start()
        guard case .hello(let h) = hello else { preconditionFailure("start() gave \(hello)") }
        precondition(h.cluster == cluster && h.nodeID == clientID && h.nonce == clientNonce && h.magic == Hello.magic)
    }

    mutating func receive(_ frame: Frame) -> ClientHandshakeStateMachine.Action {
        let action = machine.receive(frame)
        if over {
            precondition(action == .ignore, "client answered \(action) to \(frame) after the handshake was over")
        }
        switch action {
        case .send(let answer):
            guard case .challenge(let challenge) = frame, case .proof(let proof) = answer, provedTo == nil else {
                preconditionFailure("client sent \(answer) for \(frame)")
            }
            // The client proves nothing to a server that did not prove it knows the secret.
            let expectedServerProof = proofs.proof(
                .server, clientNonce: clientNonce, serverNonce: challenge.nonce, cluster: cluster,
                serverID: challenge.nodeID, clientID: clientID)
            precondition(challenge.serverProof == expectedServerProof, "client accepted a wrong server proof")
            precondition(
                proof.clientProof
                    == proofs.proof(
                        .client, clientNonce: clientNonce, serverNonce: challenge.nonce, cluster: cluster,
                        serverID: challenge.nodeID, clientID: clientID))
            provedTo = challenge.nodeID
        case .authenticated(let peer):
            guard case .welcome = frame, let server = provedTo else {
                preconditionFailure("client authenticated \(peer) on \(frame)")
            }
            precondition(peer == server)
            authenticatedAs = peer
            over = true
        case .fail:
            over = true
        case .ignore:
            precondition(over, "client ignored \(frame) during the handshake")
        }
        precondition(machine.peerNodeID == authenticatedAs)
        return action
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandshake(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let schedule = input.first else { return 0 }
    let fuzzed = frames(in: input.dropFirst())

    // 1. Fuzzed frames only.
    var server = CheckedServer()
    var client = CheckedClient()
    for frame in fuzzed {
        _ = server.receive(frame)
        _ = client.receive(frame)
    }
    precondition(server.authenticatedAs == nil && client.authenticatedAs == nil, "authenticated by fuzzed frames alone")

    // 2. An honest exchange with fuzzed frames slipped in: bit 2i of the schedule slips the
    // next fuzzed frame in before honest step i, bit 2i+1 says to which side.
    var honestServer = CheckedServer()
    var honestClient = CheckedClient()
    var next = fuzzed.makeIterator()
    var slipped = false
    func slip(_ step: Int) {
        guard schedule & (1 << (2 * step)) != 0, let frame = next.next() else { return }
        slipped = true
        if schedule & (1 << (2 * step + 1)) != 0 {
            _ = honestServer.receive(frame)
        } else {
            _ = honestClient.receive(frame)
        }
    }
    slip(0)
    let challenge = honestServer.receive(honestClient.hello)
    slip(1)
    if case .send(let challengeFrame) = challenge {
        let proof = honestClient.receive(challengeFrame)
        slip(2)
        if case .send(let proofFrame) = proof {
            let welcome = honestServer.receive(proofFrame)
            slip(3)
            if case .authenticated(_, let welcomeFrame) = welcome {
                _ = honestClient.receive(welcomeFrame)
            }
        }
    }
    if !slipped {
        precondition(honestServer.authenticatedAs == clientID, "honest server: \(honestServer.machine)")
        precondition(honestClient.authenticatedAs == serverID, "honest client: \(honestClient.machine)")
    }
    // Whatever else arrives afterwards changes nothing.
    while let frame = next.next() {
        _ = honestServer.receive(frame)
        _ = honestClient.receive(frame)
    }
    return 0
}

// MARK: Seeds

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutableRawPointer) -> CInt {
    writeSeedsIfAsked {
        func encoded(_ frames: [Frame]) -> [UInt8] {
            var buffer = ByteBuffer()
            for frame in frames { FrameCodec.encode(frame, into: &buffer) }
            return Array(buffer.readableBytesView)
        }
        let hello = Frame.hello(
            Hello(
                magic: Hello.magic, protocolVersion: Hello.currentProtocolVersion, cluster: cluster, nodeID: "intruder",
                nonce: [UInt8](repeating: 9, count: HandshakeNonce.size)))
        let challenge = Frame.challenge(
            Challenge(nodeID: serverID, nonce: serverNonce, serverProof: [UInt8](repeating: 3, count: HMACSHA256.outputSize)))
        let proof = Frame.proof(Proof(clientProof: [UInt8](repeating: 4, count: HMACSHA256.outputSize)))
        let refuse = Frame.refuse(Refuse(reason: "no"))
        return [
            ("hello-proof", [0x00] + encoded([hello, proof])),
            ("challenge-welcome", [0x00] + encoded([challenge, .welcome])),
            ("slip-hello-to-server", [0x03] + encoded([hello, proof])),
            ("slip-welcome-to-client", [0x10] + encoded([.welcome, refuse])),
            ("slip-everywhere", [0xFF] + encoded([hello, challenge, proof, .welcome, refuse])),
        ]
    }
    return 0
}
