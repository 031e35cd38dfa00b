import ArgumentParser
import EventLog
import LMDBStore
import Foundation
import Modes
import Projections

/// dtmctl: audit, verify and repair SwiftDTM's store — an LMDB data directory, or the PostgreSQL
/// store dtmd's config file names. Read-only unless a command says otherwise, and safe while dtmd
/// runs (LMDB readers never block the writer; PostgreSQL reads take no locks).
///
/// Exit codes: 0 clean, 1 a check found a problem, 2 bad usage, 3 the data cannot be opened.
@main
struct DtmCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dtmctl",
        abstract: "Audit, verify and rebuild SwiftDTM's event log (LMDB or PostgreSQL).",
        subcommands: [History.self, Log.self, Verify.self, Rebuild.self, State.self, Export.self, Stats.self])

    /// `--data` before the subcommand (`dtmctl --data DIR verify`).
    @Option(name: .long, help: "The dtmd data directory (Store.Path); also accepted after the subcommand.")
    var data: String?

    /// `-c` before the subcommand (`dtmctl -c dtmd.yml verify`).
    @Option(name: [.customShort("c"), .customLong("config")], help: "dtmd's YAML config file; also accepted after the subcommand.")
    var config: String?

    /// Bad usage exits 2 (the README's code), not ArgumentParser's 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// The data directory is missing, foreign or damaged beyond opening: exit code 3.
struct CannotOpen: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "cannot open the SwiftDTM data in \(path): \(reason)" }
}

/// A check found a problem: the message is printed and the exit code is 1.
struct CheckFailed: Error, CustomStringConvertible {
    let description: String
}

extension AsyncParsableCommand {
    /// Runs `body`, turning failures into dtmctl's messages and exit codes.
    func reportingFailures(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as CannotOpen {
            printError("dtmctl: \(error)")
            throw ExitCode(3)
        } catch let error as CheckFailed {
            printError("dtmctl: \(error)")
            throw ExitCode(1)
        } catch let error as EventLogError {
            printError("dtmctl: \(error)")
            throw ExitCode(1)
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Shows how far a long pass is: a bar with rate and ETA on a terminal, a plain line per tenth
/// otherwise.
final class Progress: @unchecked Sendable {
    private let label: String
    private let start = ContinuousClock.now
    private let terminal = isatty(STDERR_FILENO) == 1
    private let lock = NSLock()
    private var lastTenth: UInt64 = 0

    init(_ label: String) { self.label = label }

    /// Safe to call from any thread (a rebuild reports from the log's writer thread).
    func update(done: UInt64, total: UInt64) {
        guard total > 0 else { return }
        lock.lock()
        defer { lock.unlock() }
        let elapsed = max(elapsedSeconds(ContinuousClock.now - start), 0.001)
        let rate = Double(done) / elapsed
        let remaining = rate > 0 ? Double(total - min(done, total)) / rate : 0
        if terminal {
            let filled = Int(30 * done / total)
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: 30 - filled)
            printRaw(String(format: "\r%@ [%@] %3d%% %d/%d  %.0f/s  ETA %.0fs", label, bar, Int(100 * done / total), done, total, rate, remaining))
        } else {
            let tenth = 10 * done / total
            guard tenth > lastTenth else { return }
            lastTenth = tenth
            printError(String(format: "%@: %d/%d (%d%%), %.0f/s", label, done, total, Int(100 * done / total), rate))
        }
    }

    func finish(done: UInt64) {
        let elapsed = max(elapsedSeconds(ContinuousClock.now - start), 0.001)
        if terminal { printRaw("\n") }
        printError(String(format: "%@: %d records in %.2f s (%.0f/s)", label, done, elapsed, Double(done) / elapsed))
    }

    private func printRaw(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}

func elapsedSeconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// `2026-11-25T14:07:06.123Z` for µs since 1970; `-` for 0.
func timeText(_ microseconds: Int64) -> String {
    guard microseconds > 0 else { return "-" }
    let date = Date(timeIntervalSince1970: Double(microseconds) / 1_000_000)
    return date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted))
}

/// Prints rows as left-aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in
        ([header] + rows).map { $0[column].count }.max() ?? 0
    }
    for row in [header] + rows {
        let cells = row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))
    }
}

/// `object` as one line of JSON with sorted keys.
func jsonLine(_ object: Any) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
}

/// Prints `object` as one line of JSON with sorted keys.
func printJSON(_ object: Any) throws {
    print(try jsonLine(object))
}
