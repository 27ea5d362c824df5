import ArgumentParser

@main
struct DNABenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dna-bench",
        abstract: "DNA's benchmarks, each against its raw engine in the same run, and the pipeline demo.",
        subcommands: [Bench.self, PipelineDemoCommand.self],
        defaultSubcommand: Bench.self
    )
}
