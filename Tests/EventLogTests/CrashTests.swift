import EventLog
import Foundation
import Testing

/// The built `CrashWriter` helper, next to the test bundle in the build folder.
func crashWriterExecutable() throws -> URL {
    let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var directory = testBinary.deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("CrashWriter")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw CrashTestError.helperMissing(testBinary.path)
}

enum CrashTestError: Error {
    case helperMissing(String)
    case childEnded
}

/// Reads "seq stream" lines from a child's stdout as they arrive.
final class AckCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = Data()
    private var acknowledged: [UInt64: String] = [:]

    func consume(_ chunk: Data) {
        lock.lock()
        defer { lock.unlock() }
        buffer.append(chunk)
        while let newline = buffer.firstIndex(of: 0x0A) {
            let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
            buffer.removeSubrange(buffer.startIndex...newline)
            let parts = line.split(separator: " ")
            if parts.count == 2, let seq = UInt64(parts[0]) { acknowledged[seq] = String(parts[1]) }
        }
    }

    var snapshot: [UInt64: String] {
        lock.lock()
        defer { lock.unlock() }
        return acknowledged
    }
}

@Suite struct CrashTests {
    @Test(arguments: [250, 900])
    func sigkillMidAppendKeepsEveryAcknowledgedRecord(acknowledgementsBeforeKill: Int) async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let child = Process()
        child.executableURL = try crashWriterExecutable()
        child.arguments = [path]
        let pipe = Pipe()
        child.standardOutput = pipe
        let collector = AckCollector()
        pipe.fileHandleForReading.readabilityHandler = { handle in collector.consume(handle.availableData) }
        try child.run()

        let deadline = ContinuousClock.now + .seconds(60)
        while collector.snapshot.count < acknowledgementsBeforeKill {
            guard child.isRunning, ContinuousClock.now < deadline else { throw CrashTestError.childEnded }
            try await Task.sleep(for: .milliseconds(5))
        }
        // A second process reads the log read-only while the writer is still appending.
        var readOnly = testConfiguration(path)
        readOnly.readOnly = true
        let reader = try await EventLog.open(readOnly)
        let seenWhileRunning = try reader.verify()
        #expect(seenWhileRunning >= UInt64(acknowledgementsBeforeKill))

        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        pipe.fileHandleForReading.readabilityHandler = nil
        collector.consume(pipe.fileHandleForReading.readDataToEndOfFile())
        let acknowledged = collector.snapshot
        #expect(child.terminationReason == .uncaughtSignal)

        let log = try await EventLog.open(EventLogConfiguration(path: path))
        let last = try log.verify()
        #expect(last >= acknowledged.keys.max() ?? 0)
        for (seq, stream) in acknowledged {
            #expect(try log.record(seq)?.streamID == stream, "acknowledged record \(seq) survives")
        }
        #expect(try await log.append([event("after-crash", "x")]) == [last + 1])
        #expect(try log.verify() == last + 1)
        try await log.close()
    }
}
