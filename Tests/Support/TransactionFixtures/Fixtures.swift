import Foundation
public import Projections

/// An event of transaction `gid` as the log would return it (time: seq ms unless given).
public func recorded(_ seq: UInt64, _ event: TransactionEvent, gid: String = "g1", time: Int64? = nil) -> RecordedEvent {
    RecordedEvent(seq: seq, time: time ?? Int64(seq) * 1000, gid: gid, event: event)
}

/// A one-step saga, submitted (or `status`), first due at `due` µs.
public func sagaCreated(status: TransactionStatus = .submitted, due: Int64 = 5_000) -> TransactionEvent {
    .created(.with {
        $0.transType = "saga"
        $0.status = status
        $0.protocol = "grpc"
        $0.nextDueUs = due
        $0.retryInterval = 10
        $0.options.branchHeaders = ["x-b": "2", "x-a": "1"]
        $0.branches = ["compensate", "action"].map { op in
            BranchSpec.with {
                $0.branchID = "01"
                $0.op = op
                $0.url = "localhost:8080/busi.Busi/\(op)"
                $0.payload = Data("{}".utf8)
            }
        }
    })
}
