public import DTMWire
import Foundation
public import Projections

/// One subscriber of a topic: the URL a msg action `topic://<name>` is sent to (dtm's
/// `{"url","remark"}`).
public struct Subscriber: Sendable, Equatable {
    public var url: String
    public var remark: String

    public init(url: String, remark: String = "") {
        self.url = url
        self.remark = remark
    }
}

/// dtm's topics, in one place and pure: each topic is a KV record of category `topics` whose value
/// is its subscribers as dtm's JSON, in subscription order. Subscribe, unsubscribe and delete are
/// the `kv_changed` event each makes of the current record, or dtm's refusal.
public enum Topics {
    /// The KV category that holds topics.
    public static let cat = "topics"
    /// The URL scheme of a msg action sent to every subscriber of a topic.
    public static let scheme = msgTopicScheme
    /// The longest topic name accepted, in bytes (its log stream id must stay within the log's limit).
    public static let maximumNameBytes = 200

    /// The subscribers `record` holds, in subscription order; none when it is absent or deleted.
    public static func subscribers(_ record: KVState?) -> [Subscriber] {
        guard let record, !record.deleted,
              let list = (try? JSONSerialization.jsonObject(with: Data(record.value.utf8))) as? [[String: Any]]
        else { return [] }
        return list.map { Subscriber(url: $0["url"] as? String ?? "", remark: $0["remark"] as? String ?? "") }
    }

    /// dtm's Subscribe: adds `url` to `topic`, creating the topic when it has no record.
    public static func subscribe(_ record: KVState?, topic: String, url: String, remark: String) throws -> KVChanged {
        try checkName(topic)
        guard !url.isEmpty else { throw RequestError.refused("empty url") }
        try RequestValidation.url(url, field: "url")
        var list = subscribers(record)
        guard !list.contains(where: { $0.url.utf8.elementsEqual(url.utf8) }) else { throw RequestError.refused("this url exists") }
        list.append(Subscriber(url: url, remark: remark))
        return change(topic, list)
    }

    /// dtm's Unsubscribe: removes `url` from `topic`; the last one leaves an empty list.
    public static func unsubscribe(_ record: KVState?, topic: String, url: String) throws -> KVChanged {
        try checkName(topic)
        guard !url.isEmpty else { throw RequestError.refused("empty url") }
        guard let record, !record.deleted else { throw RequestError.refused("no such a topic") }
        var list = subscribers(record)
        guard !list.isEmpty else { throw RequestError.refused("this topic is empty") }
        guard let index = list.firstIndex(where: { $0.url.utf8.elementsEqual(url.utf8) }) else {
            throw RequestError.refused("no such an url ")  // dtm's text, trailing space included
        }
        list.remove(at: index)
        return change(topic, list)
    }

    /// dtm's DeleteTopic: removes the topic's record, subscribers and all.
    public static func delete(_ record: KVState?, topic: String) throws -> KVChanged {
        try checkName(topic)
        guard let record, !record.deleted else { throw RequestError.refused("storage: NotFound") }
        return KVChanged.with { $0.cat = cat; $0.key = topic; $0.deleted = true }
    }

    /// The topic a msg action URL names (`topic://<name>`); nil for any other URL.
    public static func topic(inActionURL url: String) -> String? {
        guard url.utf8.starts(with: scheme.utf8) else { return nil }
        return String(url.dropFirst(scheme.count))
    }

    private static func checkName(_ topic: String) throws {
        guard !topic.isEmpty else { throw RequestError.refused("empty topic") }
        guard topic.utf8.count <= maximumNameBytes else {
            throw RequestError.invalidArgument("topic is \(topic.utf8.count) bytes long; at most \(maximumNameBytes) are allowed")
        }
    }

    private static func change(_ topic: String, _ list: [Subscriber]) -> KVChanged {
        KVChanged.with {
            $0.cat = cat
            $0.key = topic
            $0.value = json(list)
        }
    }

    /// dtm's JSON of a subscriber list: `[{"url":…,"remark":…}]`, keys in that order.
    static func json(_ list: [Subscriber]) -> String {
        func quoted(_ text: String) -> String {
            let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
        return "[" + list.map { "{\"url\":\(quoted($0.url)),\"remark\":\(quoted($0.remark))}" }.joined(separator: ",") + "]"
    }
}
