// A child process for the crash test: appends to the event log at the path given as its argument
// from several concurrent tasks, forever, printing "seq stream-id" for every acknowledged record so
// the parent knows what must survive a SIGKILL.
import EventLog
import Foundation

guard CommandLine.arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: CrashWriter <log directory>\n".utf8))
    exit(2)
}
let log = try await EventLog.open(EventLogConfiguration(path: CommandLine.arguments[1]))
await withThrowingTaskGroup(of: Void.self) { group in
    for appender in 0..<8 {
        group.addTask {
            var counter = 0
            while true {
                counter += 1
                let stream = "appender-\(appender)-\(counter % 5)"
                let payload = Array("payload \(appender) \(counter)".utf8)
                let seqs = try await log.append([NewEvent(streamID: stream, type: "test", payload: payload)])
                // One unbuffered write per line: lines from different tasks never interleave.
                FileHandle.standardOutput.write(Data("\(seqs[0]) \(stream)\n".utf8))
            }
        }
    }
}
