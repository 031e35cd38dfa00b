public import Foundation
public import GRPCCore

/// The `dtm-*` metadata dtm sends with every gRPC branch call (and an application with a TCC Try
/// or an XA prepare): which transaction and branch the call belongs to.
public struct DtmMetadata: Sendable, Equatable {
    /// The metadata keys, as dtm's `dtmgimp` names them.
    public enum Key {
        public static let gid = "dtm-gid"
        public static let transType = "dtm-trans_type"
        public static let branchID = "dtm-branch_id"
        public static let op = "dtm-op"
        /// The dtm server's address, for a branch that starts sub-branches (nested TCC); dtmd
        /// sends it empty, the SDK sends the target it is connected to.
        public static let dtm = "dtm-dtm"
    }

    public var gid: String
    public var transType: String
    public var branchID: String
    public var op: String
    /// The dtm server the call came through (`dtm-dtm`); empty when not known.
    public var dtm: String

    public init(gid: String, transType: String, branchID: String, op: String, dtm: String = "") {
        self.gid = gid
        self.transType = transType
        self.branchID = branchID
        self.op = op
        self.dtm = dtm
    }

    /// Reads the `dtm-*` metadata of a call; nil when it has no `dtm-gid` (the call is not dtm's).
    public init?(_ metadata: Metadata) {
        func value(_ key: String) -> String? { metadata[stringValues: key].first(where: { _ in true }) }
        guard let gid = value(Key.gid) else { return nil }
        self.init(gid: gid, transType: value(Key.transType) ?? "", branchID: value(Key.branchID) ?? "", op: value(Key.op) ?? "",
                  dtm: value(Key.dtm) ?? "")
    }

    /// The metadata of a branch call: the `dtm-*` keys, then `headers` (lower-cased names, in name order).
    public func metadata(headers: [String: String] = [:]) -> Metadata {
        var metadata = Metadata()
        metadata.addString(gid, forKey: Key.gid)
        metadata.addString(transType, forKey: Key.transType)
        metadata.addString(branchID, forKey: Key.branchID)
        metadata.addString(op, forKey: Key.op)
        metadata.addString(dtm, forKey: Key.dtm)
        for (key, value) in headers.sorted(by: { $0.key < $1.key }) {
            metadata.addString(value, forKey: key.lowercased())
        }
        return metadata
    }

    /// An HTTP branch URL with dtm's query parameters added (gid, trans_type, branch_id, op, in
    /// that order, after the URL's own); nil when `url` is not a URL.
    public func httpBranchURL(_ url: String) -> String? {
        URLComponents(string: url).flatMap(httpBranchURL)
    }

    /// `httpBranchURL` of a URL already parsed.
    public func httpBranchURL(_ url: URLComponents) -> String? {
        var components = url
        components.queryItems = (components.queryItems ?? []) + [
            URLQueryItem(name: "gid", value: gid),
            URLQueryItem(name: "trans_type", value: transType),
            URLQueryItem(name: "branch_id", value: branchID),
            URLQueryItem(name: "op", value: op),
        ]
        return components.string
    }
}
