import ArgumentParser
import DNACommandSupport
import Foundation

@main
struct DNABenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dna-bench",
        abstract: "DNA's benchmarks, each against its raw engine in the same run, and the pipeline demo.",
        discussion: "`dna-bench` alone runs seed. Every scenario takes --repeat N and --json; `dna-bench SCENARIO --help` lists its own.",
        subcommands: [
            SeedScenario.self, ManyActorsScenario.self, CallLatencyScenario.self, ActivationScenario.self, MemoryScenario.self,
            RemoteCallsScenario.self, TransportScenario.self, FailoverScenario.self, DrainScenario.self, RebalanceScenario.self,
            AlarmsScenario.self, PipelineScenario.self, AllScenarios.self, PipelineDemoCommand.self, HiddenNodeCommand.self,
        ],
        defaultSubcommand: SeedScenario.self
    )

    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        do {
            if let rewritten = try LegacyBenchArguments.rewrite(arguments) {
                let message =
                    "dna-bench: --scenario is deprecated and goes in the next release; this is `dna-bench \(rewritten.joined(separator: " "))`\n"
                FileHandle.standardError.write(Data(message.utf8))
                arguments = rewritten
            }
        } catch {
            exit(withError: error)
        }
        await main(arguments)
    }
}

/// `dna node`, for the nodes the cluster scenarios start as child processes of this
/// executable (not shown in the help: an operator runs `dna node`).
struct HiddenNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", shouldDisplay: false)

    @OptionGroup var node: NodeCommand

    func run() async throws { try await node.run() }
}
