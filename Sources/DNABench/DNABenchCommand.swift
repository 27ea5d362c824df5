import ArgumentParser
import DNACommandSupport

@main
struct DNABenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dna-bench",
        abstract: "DNA's benchmarks, each against its raw engine in the same run, and the pipeline demo.",
        subcommands: [Bench.self, PipelineDemoCommand.self, HiddenNodeCommand.self],
        defaultSubcommand: Bench.self
    )
}

/// `dna node`, for the nodes the cluster scenarios start as child processes of this
/// executable (not shown in the help: an operator runs `dna node`).
struct HiddenNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", shouldDisplay: false)

    @OptionGroup var node: NodeCommand

    func run() async throws { try await node.run() }
}
