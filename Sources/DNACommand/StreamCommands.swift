import DNACommandSupport
import ArgumentParser
import DNA
import Foundation

/// `dna stream …`: streams in the store, from the command line.
struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream", abstract: "Create, append to, read and inspect durable streams in the store.",
        subcommands: [
            Create.self, Append.self, Read.self, Status.self, Split.self, Merge.self, Trim.self, ForgetConsumer.self, Resume.self,
        ])

    /// The store and the stream's name, shared by the subcommands.
    struct Target: ParsableArguments {
        @OptionGroup var location: StoreLocation

        @Option(help: "The stream's namespace.")
        var namespace: String = "default"

        @Argument(help: "The stream's name.")
        var name: String

        var stream: StreamName { StreamName(namespace: namespace, name: name) }
        var store: String { location.store ?? "" }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a stream of P partitions.")

        @OptionGroup var target: Target

        @Option(help: "Partitions (1 to 1,024).")
        var partitions: Int

        @Option(help: "Keep records at most this many seconds (consumed ones; default: no limit).")
        var retentionSeconds: Double?

        @Option(help: "Keep at most this many bytes per partition (consumed ones; default: no limit).")
        var retentionBytes: Int64?

        func run() async throws {
            try bootstrapLogging("error")
            let retention = StreamRetention(
                maxAge: retentionSeconds.map { .milliseconds(Int64($0 * 1000)) }, maxBytesPerPartition: retentionBytes)
            let (stream, partitions) = (target.stream, partitions)
            try await withExistingStore(target.store, creating: true) { store in
                try await store.createStream(stream, partitions: partitions, retention: retention)
                print("created stream \(stream) with \(partitions) partition(s)")
            }
        }
    }

    struct Append: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append records (one per VALUE) atomically, to the partition of --key or to --partition.")

        @OptionGroup var target: Target

        @Option(help: "The records' key: it chooses the partition.")
        var key: String = ""

        @Option(help: "Append to this partition instead.")
        var partition: Int?

        @Option(help: "A producer id, for idempotent appends (with --sequence).")
        var producer: String?

        @Option(help: "The producer's number of the first record (1, 2, …); a retried append with the same numbers is stored once.")
        var sequence: Int64?

        @Argument(help: "The records' values.")
        var values: [String]

        func validate() throws {
            guard (producer == nil) == (sequence == nil) else { throw ValidationError("--producer and --sequence go together") }
            guard !values.isEmpty else { throw ValidationError("give at least one value") }
        }

        func run() async throws {
            try bootstrapLogging("error")
            let records = values.map { StreamAppendRecord(key: Array(key.utf8), value: Array($0.utf8), partition: partition) }
            let producer = producer.flatMap { id in sequence.map { StreamProducer(id: id, firstSequence: $0) } }
            let stream = target.stream
            try await withExistingStore(target.store) { store in
                for position in try await store.append(records, to: stream, producer: producer) {
                    print(
                        position.duplicate
                            ? "partition \(position.partition): already stored (a repeated append)"
                            : "partition \(position.partition) sequence \(position.sequence)")
                }
            }
        }
    }

    struct Read: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a partition's records from a sequence on.")

        @OptionGroup var target: Target

        @Option(help: "The partition.")
        var partition: Int

        @Option(help: "The first sequence to read (records are numbered from 1).")
        var from: Int64 = 1

        @Option(help: "The most records to print (1 to 10,000).")
        var limit: Int = 100

        func run() async throws {
            try bootstrapLogging("error")
            let (stream, partition, from, limit) = (target.stream, partition, from, limit)
            try await withExistingStore(target.store) { store in
                for record in try await store.readStream(stream, partition: partition, from: from, limit: limit) {
                    print(
                        "\(record.sequence)\t\(String(decoding: record.key, as: UTF8.self))\t\(String(decoding: record.value, as: UTF8.self))"
                    )
                }
            }
        }
    }

    struct Split: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Split an open partition into two halves of its key range; the partition closes where it stands.")

        @OptionGroup var target: Target

        @Option(help: "The partition to split.")
        var partition: Int

        func run() async throws {
            try bootstrapLogging("error")
            let (stream, partition) = (target.stream, partition)
            try await withExistingStore(target.store) { store in
                let children = try await store.reshard(stream, .split(partition))
                print("split partition \(partition) of \(stream) into \(children.map(String.init).joined(separator: " and "))")
            }
        }
    }

    struct Merge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge two open partitions with adjacent key ranges into one; both close where they stand.")

        @OptionGroup var target: Target

        @Argument(help: "The two partitions.")
        var partitions: [Int]

        func validate() throws {
            guard partitions.count == 2 else { throw ValidationError("name exactly two partitions to merge") }
        }

        func run() async throws {
            try bootstrapLogging("error")
            let (stream, partitions) = (target.stream, partitions)
            try await withExistingStore(target.store) { store in
                let children = try await store.reshard(stream, .merge(partitions[0], partitions[1]))
                print("merged partitions \(partitions[0]) and \(partitions[1]) of \(stream) into \(children[0])")
            }
        }
    }

    struct Trim: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete now, in every stream of the store, the records their retention lets go (nodes do it each minute).")

        @OptionGroup var location: StoreLocation

        func run() async throws {
            try bootstrapLogging("error")
            try await withExistingStore(location.store ?? "") { store in
                print("deleted \(try await store.trimStreams()) record(s)")
            }
        }
    }

    struct ForgetConsumer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "forget-consumer",
            abstract: "Forget a consumer gone for good: its checkpoints no longer hold records back from retention.")

        @OptionGroup var target: Target

        @Option(help: "The consumer.")
        var consumer: String

        func run() async throws {
            try bootstrapLogging("error")
            let (stream, consumer) = (target.stream, consumer)
            try await withExistingStore(target.store) { store in
                let partitions = try await store.forgetConsumer(consumer, of: stream)
                print("forgot consumer \(consumer) of \(stream) (checkpoints on \(partitions) partition(s))")
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let a consumer stage's parked partitions run again: it retries the records it parked on.")

        @OptionGroup var target: Target

        @Option(help: "The consumer (the stage's kind).")
        var consumer: String

        @Option(help: "Only this partition (default: every parked one).")
        var partition: Int?

        func run() async throws {
            try bootstrapLogging("error")
            let (stream, consumer, partition) = (target.stream, consumer, partition)
            try await withExistingStore(target.store) { store in
                let resumed = try await store.resumeConsumer(consumer, of: stream, partition: partition)
                print(
                    resumed == 0
                        ? "no parked partition of \(consumer) on \(stream)"
                        : "resumed \(resumed) parked partition(s) of \(consumer) on \(stream)")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Print each partition (state, key range, length, sequences, bytes) and each consumer's checkpoint, lag, records retention dropped before it read them, owner node and parked reason."
        )

        @OptionGroup var target: Target

        func run() async throws {
            try bootstrapLogging("error")
            let stream = target.stream
            try await withExistingStore(target.store) { store in
                let status = try await store.streamStatus(stream)
                print("stream \(stream): \(status.partitions.count) partition(s)")
                print(
                    pad("PARTITION", 11) + pad("STATE", 8) + pad("KEYS", 24) + pad("LENGTH", 10) + pad("FIRST", 10) + pad("NEXT", 10)
                        + pad("BYTES", 12) + "PARENTS")
                for partition in status.partitions {
                    print(
                        pad("\(partition.partition)", 11) + pad(partition.isOpen ? "open" : "closed", 8)
                            + pad("\(partition.keyLow)-\(partition.keyHigh)", 24) + pad("\(partition.length)", 10)
                            + pad("\(partition.firstSequence)", 10) + pad("\(partition.nextSequence)", 10) + pad("\(partition.bytes)", 12)
                            + (partition.parents.isEmpty ? "-" : partition.parents.map(String.init).joined(separator: ",")))
                }
                if !status.consumers.isEmpty {
                    print(
                        "\n" + pad("CONSUMER", 24) + pad("PARTITION", 11) + pad("CHECKPOINT", 12) + pad("LAG", 10) + pad("DROPPED", 10)
                            + pad("OWNER", 34) + "PARKED")
                    for consumer in status.consumers.keys.sorted() {
                        // A consumer stage's partition is the actor named by its number.
                        var owners: [String: String] = [:]
                        for record in try await store.registrations(kind: consumer, limit: 100_000)
                        where record.actor.namespace == stream.namespace {
                            owners[record.actor.key] = record.owner?.rawValue
                        }
                        for partition in status.partitions {
                            let checkpoint = status.consumers[consumer]?[partition.partition].map(String.init) ?? "-"
                            print(
                                pad(consumer, 24) + pad("\(partition.partition)", 11) + pad(checkpoint, 12)
                                    + pad("\(status.lag(of: consumer, partition: partition.partition) ?? 0)", 10)
                                    + pad("\(status.droppedUnread(by: consumer, partition: partition.partition))", 10)
                                    + pad(owners["\(partition.partition)"] ?? "-", 34)
                                    + (status.parked[consumer]?[partition.partition] ?? "-"))
                        }
                    }
                }
            }
        }
    }
}
