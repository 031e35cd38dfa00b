/// Where dtm keeps a msg's own local transaction: QueryPrepared is called (and recorded) as
/// branch `00` with op `msg`, and dtm's barrier records the local transaction under the same
/// two values, so that QueryPrepared can answer from the barrier table.
public enum MsgLocalTransaction {
    public static let branchID = "00"
    public static let op = "msg"
}

/// The URL scheme of a msg action that dtm sends to every subscriber of a topic
/// (`topic://<name>`, dtm's `MsgTopicPrefix`).
public let msgTopicScheme = "topic://"
