@testable import DNA
import Testing

@Suite("Storage modules (unit)")
struct StorageModuleTests {
    @Test func integerKeysListInNumericOrder() throws {
        let log = WriteLog()
        let kv = try KV<Int, String>(name: "n", rows: [], log: log)
        for key in [10, -5, 2, -100, 0, Int.max, Int.min] { try kv.write("\(key)", for: key) }
        log.endMessage()
        #expect(try kv.list(limit: 10).map(\.key) == [Int.min, -100, -5, 0, 2, 10, Int.max])
        #expect(try kv.list(after: 0, limit: 2).map(\.key) == [2, 10])
    }

    @Test func stringKeysListByUTF8WithPrefixAndPages() throws {
        let log = WriteLog()
        let kv = try KV<String, String>(name: "s", rows: [], log: log)
        for key in ["b", "a/2", "a/10", "a/1", "é", "A"] { try kv.write(key, for: key) }
        log.endMessage()
        #expect(try kv.list().map(\.key) == ["A", "a/1", "a/10", "a/2", "b", "é"])
        #expect(try kv.list(prefix: "a/", limit: 2).map(\.key) == ["a/1", "a/10"])
        #expect(try kv.list(prefix: "a/", after: "a/10").map(\.key) == ["a/2"])
        try kv.delete("a/10")
        try kv.write("a/0", for: "a/0")
        #expect(try kv.list(prefix: "a/").map(\.key) == ["a/0", "a/1", "a/2"])
    }

    @Test func rollingBackAMessageRestoresValuesAndTheListing() throws {
        let log = WriteLog()
        let kv = try KV<String, String>(name: "s", rows: [], log: log)
        try kv.write("1", for: "keep")
        try kv.write("1", for: "change")
        try kv.write("1", for: "remove")
        log.endMessage()
        #expect(try kv.list().count == 3)  // builds the index
        try kv.write("2", for: "change")
        try kv.delete("remove")
        try kv.write("new", for: "added")
        #expect(try kv.list().map(\.key) == ["added", "change", "keep"])
        log.rollbackMessage()
        #expect(kv.read("change") == "1")
        #expect(kv.read("remove") == "1")
        #expect(kv.read("added") == nil)
        #expect(try kv.list().map { "\($0.key)=\($0.value)" } == ["change=1", "keep=1", "remove=1"])
        // Only the first message's writes remain to commit.
        #expect(log.take().map { String(decoding: $0.key, as: UTF8.self) } == ["keep", "change", "remove"])
    }

    @Test func rollbackSpansModulesAndLeavesEarlierMessagesAlone() throws {
        let log = WriteLog()
        let kv = try KV<String, Int>(name: "kv", rows: [], log: log)
        let state = try Value<[String]>(name: "state", rows: [], default: [], log: log)
        try kv.write(1, for: "a")
        try state.set(["first"])
        log.endMessage()
        try kv.write(2, for: "a")
        try state.set(["second"])
        try state.update { $0.append("more") }
        log.rollbackMessage()
        #expect(kv.read("a") == 1)
        #expect(state.value == ["first"])
        #expect(log.take().count == 2)
    }

    @Test func storedRowsAreDecodedOnLoad() throws {
        let rows: [ModuleRow] = [
            ModuleRow(module: "kv", key: try StorageCoding.encode(7), value: try StorageCoding.encode(["x": 1])),
            ModuleRow(module: "kv", key: try StorageCoding.encode(-7), value: try StorageCoding.encode(["y": 2])),
        ]
        let kv = try KV<Int, [String: Int]>(name: "kv", rows: rows[...], log: WriteLog())
        #expect(kv.read(7) == ["x": 1])
        #expect(kv.read(-7) == ["y": 2])
    }

    @Test func undecodableStoredDataIsADecodingError() throws {
        let rows = [ModuleRow(module: "kv", key: Array("k".utf8), value: Array("not json".utf8))]
        let error = #expect(throws: DNAError.self) { _ = try KV<String, [Int]>(name: "kv", rows: rows[...], log: WriteLog()) }
        #expect(error?.code == .decodingFailed)
    }
}
