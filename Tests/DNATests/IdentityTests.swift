@testable import DNA
import DNAPostgres
import DNATesting
import Foundation
import DNATestSupport
import Testing

/// Keys and names are identified by their encoded bytes everywhere (defect a): canonically
/// equivalent spellings, `0.0` and `-0.0`, and values whose `==` is looser than their
/// encoding stay apart in memory as they do in the store, before and after a restart.
@Suite("Identity of keys and names", .integration, .serialized)
struct IdentityTests {
    static let composed = "caf\u{E9}"  // é as one code point (NFC)
    static let decomposed = "cafe\u{301}"  // e + combining acute accent (NFD)

    @Test("the two spellings are == in Swift but not the same bytes")
    func spellings() {
        #expect(Self.composed == Self.decomposed)
        #expect(Array(Self.composed.utf8) != Array(Self.decomposed.utf8))
    }

    /// The engines a node can run on here: a fresh store each call to `open`, which returns
    /// the store choice for one node and is called again for the restarted node.
    enum Backend: String, CaseIterable, CustomTestStringConvertible {
        case sqlite, inMemory, postgres
        var testDescription: String { rawValue }

        static var available: [Backend] {
            LocalPostgresServer.isAvailable || ProcessInfo.processInfo.environment["DNA_POSTGRES_URL"] != nil
                ? [.sqlite, .inMemory, .postgres] : [.sqlite, .inMemory]
        }
    }

    @Test("keys and actor names spelled both ways are two, before and after a restart", arguments: Backend.available)
    func equivalentSpellingsStayApart(backend: Backend) async throws {
        let directory = try TemporaryDirectory()
        let memory = InMemoryStore()
        var postgresURL = ""
        if backend == .postgres { postgresURL = try #require(try await TestPostgres.freshDatabase()) }
        func choice() -> Node.StoreChoice {
            switch backend {
            case .sqlite: .sqlite(path: directory.databasePath)
            case .inMemory: .custom(memory)
            case .postgres: .postgres(url: postgresURL)
            }
        }
        func check(_ node: Node) async throws {
            let nfc = try node.ref(Recorder.self, key: Self.composed)
            let nfd = try node.ref(Recorder.self, key: Self.decomposed)
            #expect(try await nfc.call(Recorder.Get(key: Self.composed)) == "v1")
            #expect(try await nfc.call(Recorder.Get(key: Self.decomposed)) == "v2")
            #expect(try await nfc.call(Recorder.Count()) == 2)
            #expect(try await nfd.call(Recorder.Get(key: Self.composed)) == "other actor")
            #expect(try await nfd.call(Recorder.Count()) == 1)
        }
        let first = try await makeNode(choice())
        let nfc = try first.ref(Recorder.self, key: Self.composed)
        try await nfc.call(Recorder.Put(key: Self.composed, value: "v1"))
        try await nfc.call(Recorder.Put(key: Self.decomposed, value: "v2"))
        try await first.ref(Recorder.self, key: Self.decomposed).call(Recorder.Put(key: Self.composed, value: "other actor"))
        try await check(first)
        #expect(first.activationCount == 2, "two names, two activations")
        await first.shutdown()
        let second = try await makeNode(choice())
        try await check(second)
        await second.shutdown()
    }

    @Test("keys whose == is looser than their encoding are told apart by their bytes")
    func looseEqualityKeys() throws {
        let log = WriteLog()
        let doubles = try KV<Double, String>(name: "d", rows: [], log: log)
        #expect(0.0 == -0.0)
        try doubles.write("plus", for: 0.0)
        try doubles.write("minus", for: -0.0)
        #expect(doubles.read(0.0) == "plus")
        #expect(doubles.read(-0.0) == "minus")
        #expect(doubles.count == 2)
        let loose = try KV<CaseInsensitive, Int>(name: "c", rows: [], log: log)
        try loose.write(1, for: CaseInsensitive(text: "Key"))
        try loose.write(2, for: CaseInsensitive(text: "KEY"))
        #expect(loose.read(CaseInsensitive(text: "Key")) == 1)
        #expect(loose.read(CaseInsensitive(text: "KEY")) == 2)
        #expect(try loose.list().map(\.value) == [2, 1], "listed in the order of their encoded bytes")
        let operations = log.take()
        #expect(Set(operations.map(\.key)).count == 4, "four distinct keys reach the store")
        // Loaded back from the rows the store would hold, they are still four.
        let rows = operations.map { ModuleRow(module: $0.module, key: $0.key, value: $0.value!) }
        #expect(try KV<Double, String>(name: "d", rows: rows.filter { $0.module == "d" }[...], log: WriteLog()).count == 2)
        #expect(try KV<CaseInsensitive, Int>(name: "c", rows: rows.filter { $0.module == "c" }[...], log: WriteLog()).count == 2)
    }

    @Test("the node's directory and names compare bytes")
    func actorIDsCompareBytes() {
        let a = ActorID(namespace: "n", kind: "k", key: Self.composed)
        let b = ActorID(namespace: "n", kind: "k", key: Self.decomposed)
        #expect(a != b)
        #expect(Set([a, b]).count == 2)
        #expect(a == ActorID(namespace: "n", kind: "k", key: "caf\u{E9}"))
    }
}

/// A key type whose `==` ignores case: its encoding does not.
struct CaseInsensitive: Codable, Hashable, Sendable {
    var text: String
    static func == (lhs: Self, rhs: Self) -> Bool { lhs.text.lowercased() == rhs.text.lowercased() }
    func hash(into hasher: inout Hasher) { hasher.combine(text.lowercased()) }
}
