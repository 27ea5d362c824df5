import ArgumentParser
import DNACommandSupport

@main
struct DNACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dna",
        abstract: "DNA: durable named actors.",
        discussion: "Benchmarks are `dna-bench`; the cluster simulation is `dna-simulate`.",
        subcommands: [NodeCommand.self, StatusCommand.self, DrainCommand.self, RebalanceCommand.self, StreamCommand.self, KVCommand.self]
    )
}
