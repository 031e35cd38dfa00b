public import EventLog
public import Projections

extension RecordedEvent {
    /// Decodes a log record; a record that is not a transaction event is reported with its seq.
    public init(_ record: LogRecord) throws {
        let event: TransactionEvent
        do {
            event = try TransactionEvent(serializedBytes: record.payload)
        } catch {
            throw EventLogError.corruptRecord(seq: record.seq, reason: "payload is not a transaction event: \(error)")
        }
        guard event.kind != nil, event.typeName == record.type else {
            throw EventLogError.corruptRecord(
                seq: record.seq, reason: "record type '\(record.type)' does not match its payload '\(event.typeName)'")
        }
        self.init(seq: record.seq, time: Int64(clamping: record.timestamp), gid: record.streamID, event: event)
    }
}

extension TransactionEvent {
    /// The event as a log entry of transaction `gid`.
    public func logEntry(gid: String) throws -> NewEvent {
        NewEvent(streamID: gid, type: typeName, payload: try serializedBytes())
    }
}
