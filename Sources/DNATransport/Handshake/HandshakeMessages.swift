/// The client's opening frame.
struct Hello: Sendable, Equatable {
    /// `"DNA\u{1}"`: tells a DNA peer from anything else that connects.
    static let magic: [UInt8] = Array("DNA\u{1}".utf8)
    /// The protocol version this build speaks.
    static let currentProtocolVersion: UInt16 = 3

    var magic: [UInt8]
    var protocolVersion: UInt16
    var cluster: String
    var nodeID: String
    var nonce: [UInt8]
}

/// The server's answer to a good Hello: who it is, its nonce, and its proof of the secret.
struct Challenge: Sendable, Equatable {
    var nodeID: String
    var nonce: [UInt8]
    var serverProof: [UInt8]
}

/// The client's proof of the secret.
struct Proof: Sendable, Equatable {
    var clientProof: [UInt8]
}

/// Either side's refusal; the connection closes after it.
struct Refuse: Sendable, Equatable {
    var reason: String
}

/// 32 random bytes, fresh for every handshake, so a recorded proof is useless later.
enum HandshakeNonce {
    static let size = 32

    static func random() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()  // getrandom(2) / arc4random: cryptographic
        return (0..<size).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}

/// The HMAC-SHA256 proofs of the shared secret.
///
/// Each proof covers a role label ("dna-server" / "dna-client", so one side's proof can not
/// be reflected as the other's), both nonces, the cluster and both node ids. The variable-
/// length fields are length-prefixed in the MAC input so that no two different field
/// combinations produce the same bytes.
struct HandshakeProofs: Sendable {
    private let secret: [UInt8]

    init(secret: [UInt8]) {
        self.secret = secret
    }

    enum Role: String {
        case server = "dna-server"
        case client = "dna-client"
    }

    func proof(
        _ role: Role, clientNonce: [UInt8], serverNonce: [UInt8], cluster: String, serverID: String, clientID: String
    ) -> [UInt8] {
        let input = Self.input(role, clientNonce, serverNonce, cluster, serverID, clientID)
        return HMACSHA256.authenticationCode(for: input, key: secret)
    }

    /// Checks `proof` in constant time.
    func verify(
        _ proof: [UInt8], _ role: Role, clientNonce: [UInt8], serverNonce: [UInt8], cluster: String, serverID: String,
        clientID: String
    ) -> Bool {
        let input = Self.input(role, clientNonce, serverNonce, cluster, serverID, clientID)
        return HMACSHA256.isValid(proof, for: input, key: secret)
    }

    private static func input(
        _ role: Role, _ clientNonce: [UInt8], _ serverNonce: [UInt8], _ cluster: String, _ serverID: String,
        _ clientID: String
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128)
        func field(_ value: some Collection<UInt8>) {
            let count = UInt32(value.count)
            bytes.append(contentsOf: [UInt8(count >> 24), UInt8(count >> 16 & 0xff), UInt8(count >> 8 & 0xff), UInt8(count & 0xff)])
            bytes.append(contentsOf: value)
        }
        field(Array(role.rawValue.utf8))
        field(clientNonce)
        field(serverNonce)
        field(Array(cluster.utf8))
        field(Array(serverID.utf8))
        field(Array(clientID.utf8))
        return bytes
    }
}
