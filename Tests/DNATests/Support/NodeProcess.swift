import DNA
import Foundation
import Synchronization

/// A `dna node` process of the package's own build, for tests that kill and pause nodes.
final class NodeProcess: @unchecked Sendable {
    // `process` is only touched by the test that owns this object.
    let process: Process
    let id: String
    let address: PeerAddress

    /// The `dna` executable next to the test bundle (`swift build` / `swift test` build it).
    static var executable: String { tool("dna") }

    /// One of the package's executables (`dna`, `dna-bench`, `dna-simulate`) next to the test bundle.
    static func tool(_ name: String) -> String {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundleDirectory, bundleDirectory.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return bundleDirectory.appendingPathComponent(name).path
    }

    /// Starts a node and waits until it prints that it listens.
    static func start(
        store: String, cluster: String = "test", heartbeatInterval: Double = 0.2, failureTimeout: Double = 1.5,
        arguments extra: [String] = []
    ) async throws -> NodeProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments =
            [
                "node", "--store", store, "--cluster", cluster, "--listen", "127.0.0.1:0",
                "--heartbeat-interval", "\(heartbeatInterval)", "--failure-timeout", "\(failureTimeout)", "--log-level",
                ProcessInfo.processInfo.environment["DNA_TEST_NODE_LOG_LEVEL"] ?? "warning",
            ] + extra
        var environment = ProcessInfo.processInfo.environment
        environment["DNA_CLUSTER_SECRET"] = String(decoding: TestCluster.secret, as: UTF8.self)
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        // The first line: "node <id> listening on <host:port>".
        let line: String = try await withCheckedThrowingContinuation { continuation in
            let handle = output.fileHandleForReading
            DispatchQueue.global().async {
                var data = Data()
                while !data.contains(UInt8(ascii: "\n")) {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    data.append(chunk)
                }
                guard let text = String(data: data, encoding: .utf8), text.hasPrefix("node ") else {
                    continuation.resume(throwing: TestFailure(reason: "dna node did not start: \(String(decoding: data, as: UTF8.self))"))
                    return
                }
                continuation.resume(returning: String(text.prefix(while: { $0 != "\n" })))
            }
        }
        let words = line.split(separator: " ")
        guard words.count == 5 else { throw TestFailure(reason: "unexpected first line: \(line)") }
        return NodeProcess(process: process, id: String(words[1]), address: try PeerAddress(parsing: String(words[4])))
    }

    private init(process: Process, id: String, address: PeerAddress) {
        self.process = process
        self.id = id
        self.address = address
    }

    func signal(_ signal: Int32) { Foundation.kill(process.processIdentifier, signal) }

    /// SIGSTOP, and waits until every thread of the process is stopped: the signal takes
    /// effect asynchronously, and a node still running for a moment may serve a request
    /// sent "after" the pause.
    func pause() async throws {
        signal(SIGSTOP)
        let tasks = "/proc/\(process.processIdentifier)/task"
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let threads = try FileManager.default.contentsOfDirectory(atPath: tasks)
            let stopped = threads.allSatisfy { thread in
                guard let stat = try? String(contentsOfFile: "\(tasks)/\(thread)/stat", encoding: .utf8),
                    let end = stat.lastIndex(of: ")")
                else { return true }  // the thread is gone
                // The state is the first field after the command name in parentheses.
                let state = stat[stat.index(after: end)...].drop { $0 == " " }.first
                return state == "T" || state == "t"
            }
            if stopped { return }
            guard ContinuousClock.now < deadline else { throw TestFailure(reason: "node did not stop after SIGSTOP") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// SIGKILL, and waits until the process is gone.
    func kill() {
        signal(SIGKILL)
        process.waitUntilExit()
    }

    /// Asks the node to shut down gracefully (SIGTERM) and waits.
    func stop() {
        guard process.isRunning else { return }
        signal(SIGCONT)
        signal(SIGTERM)
        process.waitUntilExit()
    }

    func client() throws -> ClusterClient {
        try ClusterClient(cluster: "test", secret: TestCluster.secret, node: address)
    }

    deinit {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Runs the package's `dna` with `arguments`; its exit status, standard output and error.
func runDNA(_ arguments: [String], tool: String = "dna") throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: NodeProcess.tool(tool))
    process.arguments = arguments
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outputData, as: UTF8.self), String(decoding: errorData, as: UTF8.self))
}
