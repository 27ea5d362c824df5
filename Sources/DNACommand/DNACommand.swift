import ArgumentParser

@main
struct DNACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dna",
        abstract: "DNA: durable named actors.",
        subcommands: [Bench.self, NodeCommand.self, StatusCommand.self, DrainCommand.self, RebalanceCommand.self, StreamCommand.self, KVCommand.self, SimulateCommand.self, PipelineDemoCommand.self]
    )
}
