import DNA
import Foundation
import DNATesting
import DNATestSupport
import Testing

final class NotRegistered: DurableActor {
    static let kind: ActorKind = "not-registered"
    init(context: ActorContext) async throws {}
    static func handlers(_ handlers: inout Handlers<NotRegistered>) {}
}

@Suite("Bad input gets a clear error", .integration, .serialized)
struct BadInputTests {
    @Test(arguments: ["", String(repeating: "k", count: ActorID.maxKeyBytes + 1), "tab\there"])
    func invalidActorKeysAreRefused(key: String) async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let error = #expect(throws: DNAError.self) { _ = try node.ref(Recorder.self, key: key) }
        #expect(error?.code == .invalidName)
        await node.shutdown()
    }

    @Test func invalidNamespaceIsRefused() async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let error = #expect(throws: DNAError.self) { _ = try node.ref(Recorder.self, key: "k", namespace: "no spaces") }
        #expect(error?.code == .invalidName)
        await node.shutdown()
    }

    @Test func unknownActorKindIsRefused() async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let error = #expect(throws: DNAError.self) { _ = try node.ref(NotRegistered.self, key: "k") }
        #expect(error?.code == .unknownActorKind)
        await node.shutdown()
    }

    @Test func unhandledRequestTypeIsATypedErrorForCallAndCast() async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let ref = try node.ref(Recorder.self, key: "k")
        let callError = await #expect(throws: DNAError.self) { try await ref.call(Recorder.Unhandled()) }
        #expect(callError?.code == .unhandledRequest)
        let castError = #expect(throws: DNAError.self) { try ref.cast(Recorder.Unhandled()) }
        #expect(castError?.code == .unhandledRequest)
        #expect(node.activationCount == 0)
        await node.shutdown()
    }

    @Test func aValueThatFailsToEncodeIsAnErrorAtTheCallSite() async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let ref = try node.ref(Recorder.self, key: "encode")
        let error = await #expect(throws: DNAError.self) { try await ref.call(Recorder.PutUnencodable()) }
        #expect(error?.code == .encodingFailed)
        try await ref.call(Recorder.Put(key: "still", value: "working"))
        #expect(try await ref.call(Recorder.Get(key: "still")) == "working")
        await node.shutdown()
    }

    @Test(arguments: [0, -1, 1001])
    func listLimitOutOfRangeIsRefused(limit: Int) async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let ref = try node.ref(Recorder.self, key: "lister")
        let error = await #expect(throws: DNAError.self) { try await ref.call(Recorder.List(limit: limit)) }
        #expect(error?.code == .invalidArgument)
        #expect(try await ref.call(Recorder.List(limit: 1000)) == [])
        await node.shutdown()
    }

    @Test func aDatabaseThatIsNotOursIsRefusedAtStart() async throws {
        let directory = try TemporaryDirectory()
        try Data(repeating: 0x5A, count: 4096).write(to: URL(fileURLWithPath: directory.databasePath))
        let error = await #expect(throws: StoreError.self) { _ = try await makeNode(.sqlite(path: directory.databasePath)) }
        #expect(error?.code == .notADNADatabase)
    }

    @Test func aSecondNodeOnTheSameEmbeddedFileIsRefused() async throws {
        let directory = try TemporaryDirectory()
        let first = try await makeNode(.sqlite(path: directory.databasePath))
        let error = await #expect(throws: StoreError.self) { _ = try await makeNode(.sqlite(path: directory.databasePath)) }
        #expect(error?.code == .inUse)
        await first.shutdown()
    }

    @Test func sendsAfterShutdownAreRefused() async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let ref = try node.ref(Recorder.self, key: "late")
        try await ref.call(Recorder.Put(key: "k", value: "v"))
        await node.shutdown()
        let error = await #expect(throws: DNAError.self) { try await ref.call(Recorder.Get(key: "k")) }
        #expect(error?.code == .nodeStopped)
    }

    @Test func invalidConfigurationIsRefused() async throws {
        var configuration = Node.Configuration(store: .custom(InMemoryStore()))
        configuration.maxBatch = 0
        let error = #expect(throws: DNAError.self) { _ = try Node(configuration: configuration, actors: [Recorder.self]) }
        #expect(error?.code == .invalidArgument)
    }
}
