import Crypto

/// A SHA-256 value linking log records into a tamper-evident chain (stored inline, no allocation).
public struct RecordHash: Sendable, Hashable, CustomStringConvertible {
    private var words: (UInt64, UInt64, UInt64, UInt64)

    /// The hash that precedes record 1.
    public static let genesis = RecordHash(words: (0, 0, 0, 0))

    private init(words: (UInt64, UInt64, UInt64, UInt64)) { self.words = words }

    init(_ digest: SHA256.Digest) {
        words = (0, 0, 0, 0)
        digest.withUnsafeBytes { source in
            withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: source) }
        }
    }

    init(_ raw: UnsafeRawBufferPointer) {
        words = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw.prefix(32))) }
    }

    /// The 32 bytes of the hash.
    public var bytes: [UInt8] { withUnsafeBytes(of: words) { Array($0) } }

    /// Calls `body` with the 32 bytes of the hash.
    func withBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try withUnsafeBytes(of: words, body)
    }

    public static func == (lhs: RecordHash, rhs: RecordHash) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2 && lhs.words.3 == rhs.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    public var description: String { bytes.map { hexDigits[Int($0)] }.joined() }
}

private let hexDigits = (0..<256).map { byte in
    let text = String(byte, radix: 16)
    return byte < 16 ? "0" + text : text
}

/// An event to append: which stream (transaction) it belongs to, what kind it is, and its bytes.
public struct NewEvent: Sendable, Equatable {
    /// The stream the event belongs to (for dtm: the gid). At most `LogRecord.maxStreamIDBytes` bytes of UTF-8.
    public var streamID: String
    /// The event's type name, stored beside the payload so tools can filter without decoding.
    public var type: String
    /// The event's encoded body.
    public var payload: [UInt8]

    public init(streamID: String, type: String, payload: [UInt8]) {
        self.streamID = streamID
        self.type = type
        self.payload = payload
    }
}

/// One committed record of the log.
public struct LogRecord: Sendable, Equatable {
    /// The record's position in the log: dense, from 1.
    public let seq: UInt64
    /// When the record was appended, in microseconds since 1970.
    public let timestamp: UInt64
    /// The stream the event belongs to.
    public let streamID: String
    /// The event's type name.
    public let type: String
    /// The event's encoded body.
    public let payload: [UInt8]
    /// The hash of the record before this one (`RecordHash.genesis` for seq 1).
    public let previousHash: RecordHash
    /// SHA-256 over the seq and every other field; the next record's `previousHash`.
    public let hash: RecordHash

    /// The longest stream id accepted, in UTF-8 bytes (LMDB keys of the stream index are limited).
    public static let maxStreamIDBytes = 255
    /// The longest event type name accepted, in UTF-8 bytes.
    public static let maxTypeBytes = 255
    /// The record layout written by this version.
    static let formatVersion: UInt8 = 1
}

/// What is wrong with a damaged log or an event that cannot be stored.
public enum EventLogError: Error, Equatable, CustomStringConvertible {
    /// A stored record does not match its checksum, has the wrong length or layout.
    case corruptRecord(seq: UInt64, reason: String)
    /// A record's `previousHash` is not the hash of the record before it.
    case brokenChain(seq: UInt64, expected: RecordHash, found: RecordHash)
    /// The keys of the log are not 1, 2, 3, … without gaps.
    case sequenceGap(after: UInt64, found: UInt64)
    /// An event was refused before it was written (stream id or type too long or empty).
    case invalidEvent(String)
    /// The log was opened read-only and cannot be appended to.
    case readOnly
    /// The log has been closed.
    case closed
    /// Another process (dtmd, or a repair) has the log open for writing.
    case lockedByAnotherWriter(String)

    public var description: String {
        switch self {
        case let .corruptRecord(seq, reason): return "record \(seq) is damaged: \(reason)"
        case let .brokenChain(seq, expected, found):
            return "record \(seq) breaks the hash chain: previous hash is \(found), expected \(expected)"
        case let .sequenceGap(after, found): return "sequence gap: record \(found) follows record \(after)"
        case let .invalidEvent(reason): return "invalid event: \(reason)"
        case .readOnly: return "the event log is open read-only"
        case .closed: return "the event log is closed"
        case let .lockedByAnotherWriter(path): return "another process (dtmd?) is writing the event log in \(path)"
        }
    }
}

/// The byte layout of a record value (the key is the 8-byte big-endian seq):
///
///     u8 format version | u64 timestamp µs | u16 stream id length | stream id
///     | u16 type length | type | u32 payload length | payload | 32 previous hash | 32 hash
///
/// All integers are big-endian. `hash` = SHA-256(seq as 8 bytes big-endian ‖ every byte before it).
enum RecordCodec {
    static let hashSize = 32
    static let fixedSize = 1 + 8 + 2 + 2 + 4 + 2 * hashSize

    static func validate(_ event: NewEvent) throws {
        let streamBytes = event.streamID.utf8.count
        guard streamBytes > 0, streamBytes <= LogRecord.maxStreamIDBytes else {
            throw EventLogError.invalidEvent("stream id must be 1...\(LogRecord.maxStreamIDBytes) bytes, got \(streamBytes)")
        }
        let typeBytes = event.type.utf8.count
        guard typeBytes > 0, typeBytes <= LogRecord.maxTypeBytes else {
            throw EventLogError.invalidEvent("event type must be 1...\(LogRecord.maxTypeBytes) bytes, got \(typeBytes)")
        }
        guard event.payload.count <= Int(UInt32.max) else {
            throw EventLogError.invalidEvent("payload of \(event.payload.count) bytes is too large")
        }
    }

    /// Encodes a validated event as record `seq`; returns the bytes and the record's hash.
    static func encode(
        _ event: NewEvent, seq: UInt64, timestamp: UInt64, previousHash: RecordHash
    ) -> (bytes: [UInt8], hash: RecordHash) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(fixedSize + event.streamID.utf8.count + event.type.utf8.count + event.payload.count)
        bytes.append(LogRecord.formatVersion)
        appendBigEndian(timestamp, to: &bytes)
        appendBigEndian(UInt16(event.streamID.utf8.count), to: &bytes)
        bytes.append(contentsOf: event.streamID.utf8)
        appendBigEndian(UInt16(event.type.utf8.count), to: &bytes)
        bytes.append(contentsOf: event.type.utf8)
        appendBigEndian(UInt32(event.payload.count), to: &bytes)
        bytes.append(contentsOf: event.payload)
        previousHash.withBytes { bytes.append(contentsOf: $0) }
        let hash = bytes.withUnsafeBytes { digest(seq: seq, body: $0) }
        hash.withBytes { bytes.append(contentsOf: $0) }
        return (bytes, hash)
    }

    /// Decodes and checks record `seq`; damage is reported with the seq, never returned as data.
    static func decode(seq: UInt64, from raw: UnsafeRawBufferPointer) throws -> LogRecord {
        var reader = ByteReader(raw, seq: seq)
        let version = try reader.readByte()
        guard version == LogRecord.formatVersion else {
            throw EventLogError.corruptRecord(seq: seq, reason: "unknown format version \(version)")
        }
        let timestamp = try reader.readBigEndian(UInt64.self)
        let streamLength = Int(try reader.readBigEndian(UInt16.self))
        let streamID = try reader.readString(count: streamLength)
        let typeLength = Int(try reader.readBigEndian(UInt16.self))
        let type = try reader.readString(count: typeLength)
        let payloadLength = Int(try reader.readBigEndian(UInt32.self))
        let payload = Array(try reader.read(count: payloadLength))
        let previousHash = RecordHash(try reader.read(count: hashSize))
        let bodyEnd = reader.offset
        let storedHash = try reader.read(count: hashSize)
        guard reader.offset == raw.count else {
            throw EventLogError.corruptRecord(seq: seq, reason: "\(raw.count - reader.offset) trailing bytes")
        }
        let computed = digest(seq: seq, body: UnsafeRawBufferPointer(rebasing: raw[0..<bodyEnd]))
        guard computed == RecordHash(storedHash) else {
            throw EventLogError.corruptRecord(seq: seq, reason: "checksum mismatch")
        }
        return LogRecord(
            seq: seq, timestamp: timestamp, streamID: streamID, type: type, payload: payload,
            previousHash: previousHash, hash: computed)
    }

    static func digest(seq: UInt64, body: UnsafeRawBufferPointer) -> RecordHash {
        var hasher = SHA256()
        withUnsafeBytes(of: seq.bigEndian) { hasher.update(bufferPointer: $0) }
        hasher.update(bufferPointer: body)
        return RecordHash(hasher.finalize())
    }
}

/// Big-endian key for a sequence number: keys sort in seq order.
public func sequenceKey(_ seq: UInt64) -> [UInt8] {
    var key = [UInt8]()
    key.reserveCapacity(8)
    appendBigEndian(seq, to: &key)
    return key
}

/// Key of the stream index: the stream's first seq, then the record's seq (both big-endian).
/// Streams that are active together were started recently, so their keys sit near the end of
/// the index and a commit touches few of its pages (a key per gid would touch one per event).
func streamIndexKey(head: UInt64, seq: UInt64) -> [UInt8] {
    var key = sequenceKey(head)
    key.reserveCapacity(16)
    appendBigEndian(seq, to: &key)
    return key
}

/// Reads a big-endian sequence number key; nil unless it has exactly 8 bytes.
public func sequence(fromKey key: UnsafeRawBufferPointer) -> UInt64? {
    guard key.count == 8 else { return nil }
    return key.reduce(0) { $0 << 8 | UInt64($1) }
}

/// Appends `value` to `bytes` in big-endian order.
public func appendBigEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
}

/// A bounds-checked reader over a stored record; running past the end is reported as damage.
struct ByteReader {
    let raw: UnsafeRawBufferPointer
    let seq: UInt64
    var offset = 0

    init(_ raw: UnsafeRawBufferPointer, seq: UInt64) {
        self.raw = raw
        self.seq = seq
    }

    mutating func read(count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, raw.count - offset >= count else {
            throw EventLogError.corruptRecord(seq: seq, reason: "truncated at byte \(offset) of \(raw.count)")
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: raw[offset..<offset + count])
    }

    mutating func readByte() throws -> UInt8 { try read(count: 1)[0] }

    mutating func readBigEndian<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try read(count: MemoryLayout<T>.size).reduce(T.zero) { $0 << 8 | T($1) }
    }

    mutating func readString(count: Int) throws -> String {
        let bytes = try read(count: count)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw EventLogError.corruptRecord(seq: seq, reason: "invalid UTF-8 at byte \(offset - count)")
        }
        return text
    }
}
