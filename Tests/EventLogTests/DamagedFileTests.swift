@testable import EventLog
import Foundation
import Testing

/// Damaged or foreign files are refused with a message, never a signal.
@Suite struct DamagedFileTests {
    /// A closed log of a few hundred KiB in a new directory.
    func writtenLog() async throws -> String {
        let path = temporaryDirectory("damaged")
        let log = try await EventLog.open(testConfiguration(path))
        for batch in 0..<40 {
            _ = try await log.append((0..<50).map { event("stream-\(batch)-\($0)", String(repeating: "x", count: 100)) })
        }
        try await log.close()
        return path
    }

    func truncate(_ path: String, to size: Int) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path + "/data.mdb"))
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
    }

    @Test(arguments: ["half", "8 KiB"])
    func aTruncatedDataFileIsRefusedBeforeAnythingIsRead(_ cut: String) async throws {
        let path = try await writtenLog()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let size = try #require(fileSize(path + "/data.mdb"))
        #expect(size > 64 << 10)
        try truncate(path, to: cut == "half" ? size / 2 : 8192)
        var readOnly = testConfiguration(path)
        readOnly.readOnly = true
        for configuration in [readOnly, testConfiguration(path)] {
            do {
                _ = try await EventLog.open(configuration)
                Issue.record("a truncated data file was opened")
            } catch let DataFileError.truncated(file, bytes, needed) {
                #expect(file == path + "/data.mdb")
                #expect(bytes < needed)
                #expect("\(DataFileError.truncated(path: file, bytes: bytes, needed: needed))".contains("shorter than"))
            }
        }
    }

    @Test func anEmptyDataFileIsDamageUnlessAcceptedExplicitly() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = FileManager.default.createFile(atPath: path + "/data.mdb", contents: Data())
        var readOnly = testConfiguration(path)
        readOnly.readOnly = true
        await #expect(throws: DataFileError.empty(path: path + "/data.mdb")) { try await EventLog.open(testConfiguration(path)) }
        await #expect(throws: DataFileError.empty(path: path + "/data.mdb")) { try await EventLog.open(readOnly) }
        var options = LMDBOptions()
        options.acceptEmptyDataFile = true
        let log = try await EventLog.open(testConfiguration(path), environment: try LMDBEnvironment(path: path, options: options))
        #expect(try log.lastSeq() == 0)
        try await log.close()
    }

    @Test func theWriterLockHoldsWhenEveryOtherFileIsDeleted() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try await EventLog.open(testConfiguration(path))
        for name in try FileManager.default.contentsOfDirectory(atPath: path) where name != "data.mdb" {
            try FileManager.default.removeItem(atPath: path + "/" + name)
        }
        await #expect(throws: EventLogError.lockedByAnotherWriter(path)) { try await EventLog.open(testConfiguration(path)) }
        try await first.close()
    }
}

/// The record decoder meets damaged bytes with an error, never a trap.
@Suite struct RecordDecoderPropertyTests {
    @Test func randomAndMutatedBytesNeverTrap() {
        var generator = SystemRandomNumberGenerator()
        let valid = RecordCodec.encode(
            NewEvent(streamID: "caf\u{E9}-gid", type: "created", payload: Array("payload".utf8)),
            seq: 7, timestamp: 1_700_000_000_000_000, previousHash: .genesis).bytes
        var decoded = 0
        for round in 0..<5000 {
            var bytes: [UInt8]
            switch round % 4 {
            case 0:  // random bytes of random length
                bytes = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            case 1:  // a valid record with some bytes flipped
                bytes = valid
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] ^= UInt8.random(in: 1...255, using: &generator)
                }
            case 2:  // a valid record cut short or extended
                bytes = Array(valid.prefix(Int.random(in: 0..<valid.count, using: &generator)))
                if round % 8 == 2 { bytes += (0..<Int.random(in: 1...8, using: &generator)).map { _ in 0xFF } }
            default:  // huge declared lengths
                bytes = valid
                bytes.replaceSubrange(9..<11, with: [0xFF, 0xFF])
                if bytes.count > 40 { bytes[Int.random(in: 11..<40, using: &generator)] = 0xFF }
            }
            let seq = UInt64.random(in: 0...UInt64.max, using: &generator)
            if (try? bytes.withUnsafeBytes { try RecordCodec.decode(seq: seq, from: $0) }) != nil { decoded += 1 }
        }
        #expect(decoded == 0, "no damaged record decodes as data")
        #expect((try? valid.withUnsafeBytes { try RecordCodec.decode(seq: 7, from: $0) })?.streamID == "caf\u{E9}-gid")
    }
}
