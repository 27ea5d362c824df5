import Crypto
import Testing

@testable import DNATransport

@Suite("SHA-256 and HMAC-SHA256 of the handshake")
struct HMACSHA256Tests {
    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    @Test("FIPS 180-4 examples")
    func sha256Vectors() {
        #expect(SHA256.hash([]) == Self.hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
        #expect(SHA256.hash(Array("abc".utf8)) == Self.hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        #expect(
            SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == Self.hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"))
        var million = DNATransport.SHA256()
        for _ in 0..<1000 { million.update(Array(repeating: UInt8(ascii: "a"), count: 1000)) }
        #expect(million.finish() == Self.hex("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"))
    }

    @Test("RFC 4231 test cases")
    func hmacVectors() {
        let cases: [(key: [UInt8], data: [UInt8], mac: String)] = [
            (
                Array(repeating: 0x0b, count: 20), Array("Hi There".utf8),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
            ),
            (
                Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            ),
            (
                Array(repeating: 0xaa, count: 20), Array(repeating: 0xdd, count: 50),
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
            ),
            (
                Array(1...25), Array(repeating: 0xcd, count: 50),
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"
            ),
            (
                Array(repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
            ),
            (
                Array(repeating: 0xaa, count: 131),
                Array(
                    "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."
                        .utf8),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
            ),
        ]
        for testCase in cases {
            let mac = HMACSHA256.authenticationCode(for: testCase.data, key: testCase.key)
            #expect(mac == Self.hex(testCase.mac))
            #expect(HMACSHA256.isValid(mac, for: testCase.data, key: testCase.key))
            var wrong = mac
            wrong[31] ^= 1
            #expect(!HMACSHA256.isValid(wrong, for: testCase.data, key: testCase.key))
            #expect(!HMACSHA256.isValid(Array(mac.prefix(31)), for: testCase.data, key: testCase.key))
        }
    }

    @Test("the same codes as swift-crypto for random keys and messages of every length up to 300 bytes")
    func matchesSwiftCrypto() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...300 {
            let key = (0..<Int.random(in: 1...150, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let message = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let reference = Array(HMAC<Crypto.SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
            #expect(HMACSHA256.authenticationCode(for: message, key: key) == reference, "length \(length)")
            #expect(DNATransport.SHA256.hash(message) == Array(Crypto.SHA256.hash(data: message)), "length \(length)")
        }
    }
}
