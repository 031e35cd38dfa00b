import EventLog
import Foundation
import Testing

func temporaryDirectory(_ name: String = #function) -> String {
    let path = NSTemporaryDirectory() + "swiftdtm-test-\(name.filter(\.isLetter))-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func testConfiguration(_ path: String) -> EventLogConfiguration {
    var configuration = EventLogConfiguration(path: path)
    configuration.durability = .noSync
    return configuration
}

func event(_ stream: String, _ text: String, type: String = "test") -> NewEvent {
    NewEvent(streamID: stream, type: type, payload: Array(text.utf8))
}

@Suite struct EventLogTests {
    @Test func appendsReadBackAndSurviveReopen() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await EventLog.open(testConfiguration(path))
        #expect(try log.lastSeq() == 0)
        #expect(try await log.append([event("a", "one"), event("b", "two")]) == [1, 2])
        #expect(try await log.append([event("a", "three", type: "other")]) == [3])

        let records = try log.records(from: 1)
        #expect(records.map(\.seq) == [1, 2, 3])
        #expect(records.map(\.streamID) == ["a", "b", "a"])
        #expect(records.map { String(decoding: $0.payload, as: UTF8.self) } == ["one", "two", "three"])
        #expect(records[2].type == "other")
        #expect(records[0].previousHash == .genesis)
        #expect(records[1].previousHash == records[0].hash)
        #expect(records[2].previousHash == records[1].hash)
        #expect(records[0].timestamp <= records[2].timestamp)
        #expect(try log.records(ofStream: "a").map(\.seq) == [1, 3])
        #expect(try log.record(4) == nil)
        try await log.close()

        let reopened = try await EventLog.open(testConfiguration(path))
        #expect(try reopened.lastSeq() == 3)
        #expect(try reopened.records(from: 1) == records)
        #expect(try await reopened.append([event("b", "four")]) == [4])
        #expect(try reopened.record(4)?.previousHash == records[2].hash)
        #expect(try reopened.verify() == 4)
        #expect(try reopened.records(ofStream: "b").map(\.seq) == [2, 4])
        try await reopened.close()
    }

    @Test func concurrentAppendersGetDenseUniqueSeqsInCommitOrder() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await EventLog.open(testConfiguration(path))
        let appended = try await withThrowingTaskGroup(of: [(UInt64, NewEvent)].self) { group in
            for appender in 0..<64 {
                group.addTask {
                    var mine = [(UInt64, NewEvent)]()
                    for round in 0..<20 {
                        let batch = (0...(round % 3)).map { event("s\(appender)", "\(appender)-\(round)-\($0)") }
                        let seqs = try await log.append(batch)
                        #expect(seqs.count == batch.count)
                        #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $0 + 1 == $1 }, "a batch's seqs are consecutive")
                        mine += zip(seqs, batch).map { ($0, $1) }
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let total = UInt64(appended.count)
        #expect(appended.map(\.0).sorted() == Array(1...total))
        let bySeq = Dictionary(uniqueKeysWithValues: appended)
        let stored = try log.records(from: 1)
        #expect(stored.count == appended.count)
        for record in stored {
            #expect(bySeq[record.seq] == NewEvent(streamID: record.streamID, type: record.type, payload: record.payload))
        }
        #expect(try log.verify() == total)
        try await log.close()
    }

    @Test func invalidEventsAreRefusedAndNothingIsWritten() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await EventLog.open(testConfiguration(path))
        await #expect(throws: EventLogError.self) { try await log.append([event("", "x")]) }
        await #expect(throws: EventLogError.self) {
            try await log.append([event("ok", "x"), event(String(repeating: "g", count: 256), "x")])
        }
        await #expect(throws: EventLogError.self) { try await log.append([event("ok", "x", type: "")]) }
        #expect(try log.lastSeq() == 0)
        #expect(try await log.append([]) == [])
        try await log.close()
        await #expect(throws: EventLogError.closed) { try await log.append([event("a", "late")]) }
    }

    @Test func forEachRecordReadsAheadAcrossChunksAndStopsWhenAsked() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await EventLog.open(testConfiguration(path))
        for round in 0..<10 { _ = try await log.append((0..<10).map { event("c\($0)", "\(round)") }) }
        var seen = [UInt64]()
        try log.forEachRecord(chunkSize: 7) { record in
            seen.append(record.seq)
            return true
        }
        #expect(seen == Array(1...100))
        seen.removeAll()
        try log.forEachRecord(from: 20, through: 60, chunkSize: 7) { record in
            seen.append(record.seq)
            return record.seq < 45
        }
        #expect(seen == Array(20...45))
        try await log.close()
    }

    @Test func mapGrowsPastItsInitialSize() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var configuration = testConfiguration(path)
        configuration.initialMapSize = 256 << 10
        let log = try await EventLog.open(configuration)
        let initial = log.environment.mapSize
        let payload = String(repeating: "p", count: 10_000)
        for round in 0..<40 {
            _ = try await log.append((0..<10).map { event("grow-\($0)", "\(round)-\(payload)") })
        }
        #expect(log.environment.mapSize > initial)
        #expect(log.environment.mapSize >= 4_000_000)
        #expect(try log.verify() == 400)
        try await log.close()

        let reopened = try await EventLog.open(configuration)
        #expect(try reopened.records(from: 1).count == 400)
        _ = try await reopened.append([event("grow-0", payload)])
        #expect(try reopened.verify() == 401)
        try await reopened.close()
    }

    @Test func followYieldsExistingThenLiveRecords() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await EventLog.open(testConfiguration(path))
        _ = try await log.append((1...5).map { event("f", "\($0)") })
        let follower = Task {
            var seen = [UInt64]()
            for try await record in log.follow(after: 2) {
                seen.append(record.seq)
                if seen.count == 10 { break }
            }
            return seen
        }
        for round in 6...12 {
            _ = try await log.append([event("f", "\(round)")])
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(try await follower.value == Array(3...12))
        try await log.close()
    }

    @Test func flippedByteIsReportedWithItsSeq() async throws {
        let path = temporaryDirectory()
        let copy = temporaryDirectory("copy")
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: copy)
        }
        let log = try await EventLog.open(testConfiguration(path))
        for seq in 1...200 {
            _ = try await log.append([event("s\(seq % 7)", "MARKER-\(String(format: "%06d", seq))-END")])
        }
        try await log.close()

        var data = try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb"))
        let marker = Data("MARKER-000137-END".utf8)
        var flipped = 0
        var searchStart = data.startIndex
        // Copy-on-write may leave stale copies of a page: damage every copy of the record.
        while let range = data.range(of: marker, in: searchStart..<data.endIndex) {
            data[range.lowerBound + 9] ^= 0x01
            flipped += 1
            searchStart = range.upperBound
        }
        #expect(flipped >= 1)
        try data.write(to: URL(fileURLWithPath: copy + "/data.mdb"))

        var readOnly = testConfiguration(copy)
        readOnly.readOnly = true
        let damaged = try await EventLog.open(readOnly)
        #expect(throws: EventLogError.corruptRecord(seq: 137, reason: "checksum mismatch")) { try damaged.verify() }
        #expect(throws: EventLogError.corruptRecord(seq: 137, reason: "checksum mismatch")) { try damaged.record(137) }
        #expect(try damaged.record(136) != nil)
        let writable = try await EventLog.open(testConfiguration(copy))
        #expect(throws: EventLogError.corruptRecord(seq: 137, reason: "checksum mismatch")) {
            try writable.forEachRecord { _ in true }
        }
        // The same damage found by the prefetching reader in a later chunk.
        var seenBeforeDamage = [UInt64]()
        #expect(throws: EventLogError.corruptRecord(seq: 137, reason: "checksum mismatch")) {
            try writable.forEachRecord(chunkSize: 10) { record in
                seenBeforeDamage.append(record.seq)
                return true
            }
        }
        #expect(seenBeforeDamage == Array(1...130))
        try await writable.close()
    }

    @Test func aForeignDirectoryIsAClearError() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var readOnly = testConfiguration(path)
        readOnly.readOnly = true
        await #expect(throws: LMDBError.self) { try await EventLog.open(readOnly) }
        try Data("not an lmdb file, just text".utf8).write(to: URL(fileURLWithPath: path + "/data.mdb"))
        await #expect(throws: LMDBError.self) { try await EventLog.open(testConfiguration(path)) }
    }
}

@Suite struct WriterLockTests {
    @Test func oneProcessWritesAtATime() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try await EventLog.open(testConfiguration(path))
        await #expect(throws: EventLogError.lockedByAnotherWriter(path)) { try await EventLog.open(testConfiguration(path)) }
        var readOnly = testConfiguration(path)
        readOnly.readOnly = true
        _ = try await EventLog.open(readOnly)
        try await first.close()
        let second = try await EventLog.open(testConfiguration(path))
        try await second.close()
    }
}
