import DNA
import Foundation
import DNATestSupport
import Testing

/// `dna stream` as a user runs it.
@Suite("dna stream", .integration, .serialized)
struct StreamCommandTests {
    @Test func createAppendReadAndStatus() async throws {
        let directory = try TemporaryDirectory()
        let store = "sqlite:" + directory.databasePath
        let created = try runDNA(["stream", "create", "--store", store, "readings", "--partitions", "3"])
        #expect(created.status == 0, "\(created.error)")
        #expect(created.output.contains("created stream default/readings with 3 partition(s)"))
        let appended = try runDNA([
            "stream", "append", "--store", store, "readings", "--key", "dev-1", "--producer", "gw", "--sequence", "1", "10", "11",
        ])
        #expect(appended.status == 0, "\(appended.error)")
        let lines = appended.output.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].hasSuffix("sequence 1") && lines[1].hasSuffix("sequence 2"), "\(appended.output)")
        let partition = lines[0].split(separator: " ")[1]
        // The same append again: stored once.
        let again = try runDNA([
            "stream", "append", "--store", store, "readings", "--key", "dev-1", "--producer", "gw", "--sequence", "1", "10", "11",
        ])
        #expect(again.output.components(separatedBy: "already stored").count == 3, "\(again.output)")
        let read = try runDNA(["stream", "read", "--store", store, "readings", "--partition", String(partition)])
        #expect(read.status == 0, "\(read.error)")
        #expect(read.output == "1\tdev-1\t10\n2\tdev-1\t11\n")
        let status = try runDNA(["stream", "status", "--store", store, "readings"])
        #expect(status.output.split(separator: "\n").contains { $0.hasPrefix("\(partition) ") && $0.contains(" 2 ") }, "\(status.output)")
        // Bad input: a missing stream, past the end, a producer without its sequence.
        let missing = try runDNA(["stream", "append", "--store", store, "nothing", "v"])
        #expect(missing.status != 0 && missing.error.contains("no stream default/nothing"))
        let past = try runDNA(["stream", "read", "--store", store, "readings", "--partition", String(partition), "--from", "9"])
        #expect(past.status != 0 && past.error.contains("past its end"), "\(past.error)")
        let half = try runDNA(["stream", "append", "--store", store, "readings", "--producer", "gw", "v"])
        #expect(half.status != 0 && half.error.contains("--producer and --sequence go together"))
        let twice = try runDNA(["stream", "create", "--store", store, "readings", "--partitions", "3"])
        #expect(twice.status != 0 && twice.error.contains("exists already"))
        // Retention by size, applied now.
        _ = try runDNA(["stream", "create", "--store", store, "small", "--partitions", "1", "--retention-bytes", "5"])
        _ = try runDNA(["stream", "append", "--store", store, "small", "--key", "dev-1", "10", "11"])
        let trim = try runDNA(["stream", "trim", "--store", store])
        #expect(trim.status == 0 && trim.output.contains("deleted 2 record(s)"), "\(trim.output)\(trim.error)")
        // Split and merge back; a second split of the same partition is refused.
        let split = try runDNA(["stream", "split", "--store", store, "readings", "--partition", "1"])
        #expect(
            split.status == 0 && split.output.contains("split partition 1 of default/readings into 3 and 4"),
            "\(split.output)\(split.error)")
        let splitAgain = try runDNA(["stream", "split", "--store", store, "readings", "--partition", "1"])
        #expect(splitAgain.status != 0 && splitAgain.error.contains("closed already"))
        let merged = try runDNA(["stream", "merge", "--store", store, "readings", "3", "4"])
        #expect(merged.status == 0 && merged.output.contains("into 5"), "\(merged.output)\(merged.error)")
        let afterMerge = try runDNA(["stream", "status", "--store", store, "readings"])
        #expect(afterMerge.output.split(separator: "\n").contains { $0.hasPrefix("5 ") && $0.hasSuffix("3,4") }, "\(afterMerge.output)")
    }

    @Test func thePipelineDemoTotalsItsReadingsAndStatusShowsItsConsumers() async throws {
        let directory = try TemporaryDirectory()
        let store = "sqlite:" + directory.databasePath
        let demo = try runDNA(["pipeline-demo", "--store", store, "--readings", "3000", "--devices", "40"], tool: "dna-bench")
        #expect(demo.status == 0, "\(demo.error)")
        #expect(demo.output.contains("fed 3000 readings from 40 devices"), "\(demo.output)")
        #expect(demo.output.contains("totals match the readings fed: yes"), "\(demo.output)")
        let status = try runDNA(["stream", "status", "--store", store, "readings"])
        #expect(status.output.contains("OWNER") && status.output.contains("PARKED"), "\(status.output)")
        let rows = status.output.split(separator: "\n").filter { $0.hasPrefix("device-totals ") }
        #expect(rows.count == 8, "\(status.output)")
        #expect(rows.allSatisfy { $0.split(separator: " ", omittingEmptySubsequences: true)[3] == "0" }, "no lag: \(status.output)")
        let resume = try runDNA(["stream", "resume", "--store", store, "readings", "--consumer", "device-totals"])
        #expect(resume.status == 0 && resume.output.contains("no parked partition"), "\(resume.output)\(resume.error)")
        let bad = try runDNA(["pipeline-demo", "--store", store, "--readings", "0"], tool: "dna-bench")
        #expect(bad.status != 0 && bad.error.contains("--readings and --devices must be more than 0"), "\(bad.error)")
    }
}
