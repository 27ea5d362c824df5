import DNAStore
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A private PostgreSQL server in a temporary directory on a free port, for tests and
/// benchmarks (`initdb` + `pg_ctl` from `/usr/lib/postgresql/<v>/bin`; as root, run as the
/// `postgres` user). Or, when `DNA_POSTGRES_URL` is set, that server instead.
///
/// Each server lives in a directory of its own under ``temporaryRoot`` that records the
/// process that started it; ``start(settings:)`` first removes the servers of processes
/// that are gone (a test run that crashed or was killed), so servers do not pile up.
public final class LocalPostgresServer: Sendable {
    /// What went wrong starting or driving the server, with the command's output.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong, with the command's output if any.
        public var description: String
    }

    /// The environment variable that names an existing server to use instead.
    public static let urlVariable = "DNA_POSTGRES_URL"

    /// Where local servers keep their directories.
    public static var temporaryRoot: String {
        (NSTemporaryDirectory() as NSString).appendingPathComponent("dna-postgres")
    }

    private enum Kind: Sendable {
        case external
        case local(Instance)
    }

    /// A server this object started: its directory, port and binaries.
    private struct Instance: Sendable {
        var directory: String
        var port: Int
        var binaries: String
        var settings: [String]
        var dataDirectory: String { directory + "/data" }
    }

    private let kind: Kind
    private let baseURL: String

    /// `postgres://…` of the server (its `postgres` database).
    public var url: String { baseURL }

    private init(kind: Kind, url: String) {
        self.kind = kind
        self.baseURL = url
    }

    /// Whether PostgreSQL binaries exist here, or `DNA_POSTGRES_URL` is set (else tests skip loudly).
    public static var isAvailable: Bool {
        ProcessInfo.processInfo.environment[urlVariable] != nil || binaryDirectory() != nil
    }

    /// Starts a fresh server (or uses `DNA_POSTGRES_URL`), with PostgreSQL's durable
    /// defaults (`fsync` on): benchmarks against it are honest.
    public static func start() async throws -> LocalPostgresServer {
        try await start(settings: [])
    }

    /// Starts a fresh server with extra settings, each `name=value` without spaces (for
    /// tests: `fsync=off`, `synchronous_commit=off`). Ignored with `DNA_POSTGRES_URL`.
    public static func start(settings: [String]) async throws -> LocalPostgresServer {
        if let url = ProcessInfo.processInfo.environment[urlVariable], !url.isEmpty {
            return LocalPostgresServer(kind: .external, url: url)
        }
        guard let binaries = binaryDirectory() else {
            throw Failure(description: "no PostgreSQL binaries found (/usr/lib/postgresql/*/bin or pg_config --bindir)")
        }
        removeLeftovers()
        let root = temporaryRoot
        let directory = root + "/" + UUID().uuidString.lowercased()
        let files = FileManager.default
        try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try String(getpid()).write(toFile: directory + "/owner.pid", atomically: true, encoding: .utf8)
        if geteuid() == 0 {
            // initdb refuses to run as root: the cluster belongs to the `postgres` user.
            guard let user = getpwnam("postgres") else {
                throw Failure(description: "running as root, but there is no `postgres` user to run the server as")
            }
            let (uid, gid) = (user.pointee.pw_uid, user.pointee.pw_gid)
            for path in [root, directory] { chown(path, uid, gid) }
        }
        let instance = Instance(directory: directory, port: try freePort(), binaries: binaries, settings: settings)
        do {
            try await run(
                instance.binaries + "/initdb",
                ["-D", instance.dataDirectory, "-A", "trust", "-U", "dna", "--no-sync", "-E", "UTF8", "--locale=C"],
                log: directory + "/initdb.log")
            let server = LocalPostgresServer(kind: .local(instance), url: "postgres://dna@127.0.0.1:\(instance.port)/postgres")
            try await server.startLocal(instance)
            return server
        } catch {
            try? files.removeItem(atPath: directory)
            throw error
        }
    }

    /// A new empty database on this server; returns its URL. An existing database of
    /// that name is dropped first. Names are `[a-z0-9_]`.
    public func createDatabase(named name: String) async throws -> String {
        guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F })
        else { throw Failure(description: "database name '\(name)' must be [a-z0-9_]") }
        try await Self.psql(baseURL, "DROP DATABASE IF EXISTS \"\(name)\"")
        try await Self.psql(baseURL, "CREATE DATABASE \"\(name)\"")
        guard var components = URLComponents(string: baseURL) else { throw Failure(description: "bad server URL") }
        components.path = "/" + name
        guard let url = components.string else { throw Failure(description: "bad server URL") }
        return url
    }

    /// Runs one SQL statement on the database at `url`, on a connection of its own (for
    /// tests that prepare a database by hand).
    public static func execute(_ sql: String, on url: String) async throws {
        try await psql(url, sql)
    }

    /// Runs `sql` with `psql` (PostgreSQL's own client, beside the server binaries or on
    /// the path), so that the test server needs no PostgreSQL driver.
    private static func psql(_ url: String, _ sql: String) async throws {
        let candidates = [binaryDirectory().map { $0 + "/psql" }, "/usr/bin/psql"].compactMap { $0 }
        guard let psql = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Failure(description: "psql is not installed (it comes with PostgreSQL's client package)")
        }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("dna-psql-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        do {
            try await run(psql, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], log: log)
        } catch {
            throw Failure(description: "\(sql): \(error)")
        }
    }

    /// Stops the server (fast shutdown) without deleting its data; ``resume()`` starts it again.
    public func pause() async throws {
        let instance = try local("pause")
        try await Self.run(
            instance.binaries + "/pg_ctl", ["-D", instance.dataDirectory, "-w", "-m", "fast", "stop"],
            log: instance.directory + "/pg_ctl.log")
    }

    /// Starts a paused server again, on the same port.
    public func resume() async throws {
        try await startLocal(try local("resume"))
    }

    /// Stops the server and removes its directory.
    public func stop() async {
        guard case .local(let instance) = kind else { return }
        _ = try? await Self.run(
            instance.binaries + "/pg_ctl", ["-D", instance.dataDirectory, "-w", "-m", "immediate", "stop"],
            log: instance.directory + "/pg_ctl.log")
        Self.destroy(directory: instance.directory)
    }

    /// Stops the server at once, without waiting for anything asynchronous, and removes
    /// its directory: for an `atexit` handler at the end of a test process.
    public func terminate() {
        guard case .local(let instance) = kind else { return }
        Self.destroy(directory: instance.directory)
    }

    /// Removes the servers under ``temporaryRoot`` whose starting process is gone.
    public static func removeLeftovers() {
        let root = temporaryRoot
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: root) else { return }
        for entry in entries {
            let directory = root + "/" + entry
            guard let text = try? String(contentsOfFile: directory + "/owner.pid", encoding: .utf8),
                let owner = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else { continue }
            if owner != getpid() && !isAlive(owner) { destroy(directory: directory) }
        }
    }

    // MARK: Implementation

    private func local(_ what: String) throws -> Instance {
        guard case .local(let instance) = kind else {
            throw Failure(description: "\(what) is not supported with \(Self.urlVariable)")
        }
        return instance
    }

    private func startLocal(_ instance: Instance) async throws {
        var options = [
            "-p \(instance.port)", "-k \(instance.directory)", "-c listen_addresses=127.0.0.1", "-c max_connections=200",
        ]
        options += instance.settings.map { "-c \($0)" }
        try await Self.run(
            instance.binaries + "/pg_ctl",
            [
                "-D", instance.dataDirectory, "-w", "-t", "60", "-o", options.joined(separator: " "), "-l",
                instance.directory + "/server.log", "start",
            ],
            log: instance.directory + "/pg_ctl.log")
    }

    /// Kills the postmaster recorded in `directory` (SIGQUIT: immediate shutdown), waits
    /// up to 5 s for it to go, and removes the directory.
    private static func destroy(directory: String) {
        if let text = try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8),
            let line = text.split(separator: "\n").first, let pid = pid_t(line), isPostgres(pid)
        {
            _ = kill(pid, SIGQUIT)
            for _ in 0..<500 where isAlive(pid) { usleep(10_000) }
            if isAlive(pid) { _ = kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func isAlive(_ pid: pid_t) -> Bool {
        if kill(pid, 0) == 0 { return true }
        return errno == EPERM
    }

    /// Whether `pid` is a PostgreSQL process (and not an unrelated one that got its number).
    private static func isPostgres(_ pid: pid_t) -> Bool {
        guard let name = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) else { return isAlive(pid) }
        return name.hasPrefix("postgres")
    }

    static func binaryDirectory() -> String? {
        let files = FileManager.default
        if let versions = try? files.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            let best = versions.compactMap { Int($0) }.sorted(by: >).first { version in
                files.isExecutableFile(atPath: "/usr/lib/postgresql/\(version)/bin/initdb")
            }
            if let best { return "/usr/lib/postgresql/\(best)/bin" }
        }
        for candidate in ["/usr/bin/pg_config", "/usr/local/bin/pg_config"] where files.isExecutableFile(atPath: candidate) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: candidate)
            process.arguments = ["--bindir"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { continue }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let directory = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if process.terminationStatus == 0, files.isExecutableFile(atPath: directory + "/initdb"),
                files.isExecutableFile(atPath: directory + "/pg_ctl")
            {
                return directory
            }
        }
        return nil
    }

    /// A TCP port that was free a moment ago (bound to port 0, then closed).
    private static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket() failed (errno \(errno))") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(descriptor, socketAddress, length) == 0 && getsockname(descriptor, socketAddress, &length) == 0
            }
        }
        guard bound else { throw Failure(description: "cannot bind a free port (errno \(errno))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs a PostgreSQL command (as the `postgres` user when we are root), its output
    /// going to `log`; throws with that output if it fails.
    ///
    /// `posix_spawn` and `waitpid` rather than Foundation's `Process`: `pg_ctl start`
    /// leaves the postmaster running with whatever descriptors it inherited, and `Process`
    /// would not report the end of `pg_ctl` until the server itself is gone.
    @discardableResult
    private static func run(_ executable: String, _ arguments: [String], log: String) async throws -> String {
        var command = [executable] + arguments
        if geteuid() == 0 {
            let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first {
                FileManager.default.isExecutableFile(atPath: $0)
            }
            guard let runuser else { throw Failure(description: "running as root, but runuser is missing") }
            command = [runuser, "-u", "postgres", "--"] + command
        }
        let pid = try spawn(command, log: log)
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { break }
            if result < 0 && errno != EINTR { throw Failure(description: "waitpid failed (errno \(errno))") }
            // Polling a child process that takes seconds: a few wake-ups are cheap.
            try? await Task.sleep(for: .milliseconds(20))
        }
        let exitCode = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : -1
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard exitCode == 0 else {
            let name = (executable as NSString).lastPathComponent
            throw Failure(description: "\(name) \(arguments.joined(separator: " ")) failed (exit \(exitCode)):\n\(text)")
        }
        return text
    }

    /// Starts `command` with standard input from /dev/null and its output to `log`.
    private static func spawn(_ command: [String], log: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, command[0], &actions, nil, argv, environ)
        guard result == 0 else { throw Failure(description: "cannot start \(command[0]) (errno \(result))") }
        return pid
    }
}
