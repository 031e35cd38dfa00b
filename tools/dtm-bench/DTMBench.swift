import ArgumentParser

/// SwiftDTM's benchmark tool. Speed goals are checked here, never by timed assertions in tests.
@main
struct DTMBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dtm-bench",
        abstract: "Measure SwiftDTM's throughput and latency on this machine.",
        subcommands: [LogBenchmark.self, GrpcBenchmark.self, RestartBenchmark.self])
}
