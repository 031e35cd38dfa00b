import Foundation
import Projections
import TransactionStore

/// What the admin pages show, made from the store's states and events: pure functions that
/// give the templates their values (every value a string, a number, a Bool, or a list of those
/// dictionaries), so the pages are tested without a server.
enum AdminViews {
    /// The most transactions a status count reads; a count this high shows as "10000+".
    static let countLimit = 10_000
    /// The most payload bytes a page shows, as hex or text.
    static let payloadLimit = 4096

    /// The filters of the list page, as the query string carries them.
    struct ListQuery: Sendable, Equatable {
        var status = ""
        var transType = ""
        var gidPrefix = ""
        /// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (UTC), inclusive.
        var from = ""
        var to = ""
        var page = ""

        /// The store's filter; nil with the name of the parameter that is not valid.
        func filter() -> Result<TransactionFilter, AdminPageError> {
            var filter = TransactionFilter()
            if !status.isEmpty {
                guard let named = TransactionStatus(dtmName: status) else {
                    return .failure(.invalidParameter("status", "one of prepared, submitted, aborting, succeed, failed"))
                }
                filter.status = named
            }
            if !transType.isEmpty { filter.transType = transType }
            if !gidPrefix.isEmpty { filter.gidPrefix = Array(gidPrefix.utf8) }
            if !from.isEmpty {
                guard let time = AdminViews.microseconds(from, endOfDay: false) else {
                    return .failure(.invalidParameter("from", "a date, YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"))
                }
                filter.createdFrom = time
            }
            if !to.isEmpty {
                guard let time = AdminViews.microseconds(to, endOfDay: true) else {
                    return .failure(.invalidParameter("to", "a date, YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"))
                }
                filter.createdThrough = time
            }
            return .success(filter)
        }

        /// The query string of these filters with `page` replaced.
        func queryString(page: String) -> String {
            var components = URLComponents()
            components.queryItems = [("status", status), ("trans_type", transType), ("gid_prefix", gidPrefix), ("from", from), ("to", to), ("page", page)]
                .filter { !$0.1.isEmpty }.map { URLQueryItem(name: $0.0, value: $0.1) }
            return components.percentEncodedQuery ?? ""
        }
    }

    /// The list page: counts by status, the filter form, a page of transactions newest first.
    static func list(_ page: TransactionPage, counts: [TransactionStatus: Int], query: ListQuery, lastSeq: UInt64) -> [String: Any] {
        let statuses: [TransactionStatus] = [.prepared, .submitted, .aborting, .succeed, .failed]
        return [
            "title": "Transactions",
            "lastSeq": String(lastSeq),
            "watchGid": "",
            "counts": statuses.map { status -> [String: Any] in
                let count = counts[status] ?? 0
                return [
                    "status": status.dtmName,
                    "count": count >= countLimit ? "\(countLimit)+" : String(count),
                    "link": "/admin?" + ListQuery(status: status.dtmName).queryString(page: ""),
                    "selected": query.status == status.dtmName,
                ]
            },
            "statusOptions": ([""] + statuses.map(\.dtmName)).map { ["value": $0, "label": $0.isEmpty ? "any" : $0, "selected": $0 == query.status] },
            "transType": query.transType,
            "gidPrefix": query.gidPrefix,
            "from": query.from,
            "to": query.to,
            "rows": page.transactions.map(row),
            "empty": page.transactions.isEmpty,
            "next": page.next.map { "/admin?" + query.queryString(page: $0.text) } ?? "",
            "hasNext": page.next != nil,
        ]
    }

    static func row(_ state: TransactionState) -> [String: Any] {
        [
            "gid": state.gid,
            "link": detailPath(state.gid),
            "transType": state.transType,
            "status": state.status.dtmName,
            "created": time(state.createTimeUs),
            "updated": time(state.updateTimeUs),
            "reason": state.rollbackReason,
        ]
    }

    /// The detail page: the header, the branches, and the timeline of every event.
    static func detail(_ state: TransactionState, audited: AuditedHistory) -> [String: Any] {
        let history = audited.events
        let options = state.options
        var header: [[String: Any]] = [
            ["name": "status", "value": state.status.dtmName],
            ["name": "trans type", "value": state.transType],
            ["name": "protocol", "value": state.protocol],
            ["name": "created", "value": time(state.createTimeUs)],
            ["name": "updated", "value": time(state.updateTimeUs)],
        ]
        if state.finishTimeUs > 0 { header.append(["name": "finished", "value": time(state.finishTimeUs)]) }
        if !state.rollbackReason.isEmpty { header.append(["name": "rollback reason", "value": state.rollbackReason]) }
        if state.nextDueUs > 0 && !state.status.isTerminal {
            header.append(["name": "next look", "value": "\(time(state.nextDueUs)) (retry interval \(state.retryInterval) s)"])
        }
        header.append(["name": "options", "value": [
            "wait_result \(options.waitResult)", "timeout_to_fail \(options.timeoutToFail) s", "retry_interval \(options.retryInterval) s",
            "request_timeout \(options.requestTimeout) s", "retry_limit \(options.retryLimit)",
        ].joined(separator: ", ") + (options.concurrent ? ", concurrent" : "")])
        if !options.branchHeaders.isEmpty {
            header.append(["name": "branch headers", "value": options.branchHeaders.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")])
        }
        if !state.customData.isEmpty { header.append(["name": "custom data", "value": state.customData]) }
        if !state.queryPrepared.isEmpty { header.append(["name": "query prepared", "value": state.queryPrepared]) }
        return [
            "title": state.gid,
            "gid": state.gid,
            "gidPath": detailPath(state.gid),
            "lastSeq": String(history.last?.seq ?? state.lastSeq),
            "watchGid": state.gid,
            "status": state.status.dtmName,
            "header": header,
            "branches": state.branches.map { branch -> [String: Any] in
                shown([
                    "id": branch.branchID, "op": branch.op, "url": branch.url, "status": branch.status.dtmName,
                    "attempts": String(branch.attempts), "lastOutcome": outcomeName(branch.lastOutcome), "lastError": branch.lastError,
                    "payload": payload(branch.payload),
                ])
            },
            "timeline": zip(timeline(history), hashes(audited, count: history.count)).map { entry, hash in
                shown(entry.merging(["hash": hash]) { $1 })
            },
            "chainVerified": audited.problems.isEmpty,
            "chainText": audited.hashes.isEmpty ? audited.checked.capitalizedFirst
                : audited.problems.isEmpty ? "Hash chain verified for \(history.count) events: \(audited.checked)."
                : "Hash chain BROKEN: " + audited.problems.joined(separator: "; "),
            "finished": state.status.isTerminal,
        ]
    }

    /// Each event's stored hash as hex ("" where the store keeps none).
    static func hashes(_ audited: AuditedHistory, count: Int) -> [String] {
        (0..<count).map { index in
            index < audited.hashes.count ? audited.hashes[index].map { byte in byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }.joined() : ""
        }
    }

    /// Every event of the transaction, oldest first, as the timeline shows it.
    static func timeline(_ history: [RecordedEvent]) -> [[String: Any]] {
        history.map { recorded -> [String: Any] in
            var entry: [String: Any] = ["seq": String(recorded.seq), "time": time(recorded.time), "type": recorded.event.typeName]
            var detail = ""
            var kind = "info"
            var payloadShown: [String: Any] = [:]
            switch recorded.event.kind {
            case let .created(created):
                detail = "created \(created.transType), \(created.status.dtmName), \(created.branches.count) branch(es)"
                if created.nextDueUs > 0 { detail += ", first look at \(time(created.nextDueUs))" }
            case let .branchRegistered(registered):
                detail = "branch \(registered.branch.branchID) \(registered.branch.op) registered (\(registered.status.dtmName))"
                if !registered.branch.url.isEmpty { detail += " → \(registered.branch.url)" }
                payloadShown = payload(registered.branch.payload)
            case let .attemptStarted(started):
                detail = "call \(started.branchID) \(started.op), attempt \(started.attempt)"
                kind = "call"
            case let .attemptFinished(finished):
                let outcome = outcomeName(finished.outcome)
                detail = "\(finished.branchID) \(finished.op), attempt \(finished.attempt): \(outcome) in \(milliseconds(finished.durationUs))"
                kind = finished.outcome == .success ? "ok" : "bad"
                entry["error"] = finished.error
            case let .statusChanged(changed):
                detail = "\(changed.from.dtmName) → \(changed.to.dtmName)" + (changed.byClient ? " (client request)" : "")
                if !changed.reason.isEmpty { entry["error"] = changed.reason }
                kind = changed.to == .failed ? "bad" : changed.to == .succeed ? "ok" : "status"
            case let .retryScheduled(retry):
                detail = retry.dueUs > 0
                    ? "next look at \(time(retry.dueUs)) (after \(milliseconds(max(0, retry.dueUs - recorded.time))); interval \(retry.retryInterval) s)"
                    : "no further look scheduled"
                kind = "retry"
            case let .workflowResult(result):
                detail = "workflow result recorded"
                payloadShown = payload(result.result)
            case .kvChanged:
                detail = "KV record changed"
            case nil:
                detail = "empty event"
            }
            entry["detail"] = detail
            entry["kind"] = kind
            entry["payload"] = payloadShown
            return entry
        }
    }

    /// `values` without its empty strings and empty dictionaries: Mustache renders a section
    /// for any value present, so what is empty is left out.
    static func shown(_ values: [String: Any]) -> [String: Any] {
        values.filter { _, value in
            if let text = value as? String { return !text.isEmpty }
            if let nested = value as? [String: Any] { return !nested.isEmpty }
            return true
        }
    }

    /// A payload as hex and, when it is UTF-8, as text (pretty JSON when it parses as JSON).
    static func payload(_ bytes: Data) -> [String: Any] {
        guard !bytes.isEmpty else { return [:] }
        let visible = bytes.prefix(payloadLimit)
        let hex = visible.map { byte in byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }
            .joined(separator: " ") + (bytes.count > payloadLimit ? " …" : "")
        var text = ""
        if let utf8 = String(validating: visible, as: UTF8.self) {
            text = utf8
            if let object = try? JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed]),
               let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed]) {
                text = String(decoding: pretty, as: UTF8.self)
            }
        }
        return shown(["size": "\(bytes.count) bytes", "hex": hex, "text": text])
    }

    static func outcomeName(_ outcome: AttemptOutcome) -> String {
        switch outcome {
        case .success: return "SUCCESS"
        case .failure: return "FAILURE"
        case .ongoing: return "ONGOING"
        case .error: return "ERROR"
        default: return "-"
        }
    }

    /// `/admin/transactions/<gid>`, the gid percent-encoded as one path segment.
    static func detailPath(_ gid: String) -> String {
        "/admin/transactions/" + (gid.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/%?#"))) ?? gid)
    }

    /// `YYYY-MM-DD HH:MM:SS.mmmZ` (UTC), from whole microseconds (no floating-point rounding:
    /// the seconds are formatted, the milliseconds appended).
    static func time(_ microseconds: Int64) -> String {
        guard microseconds > 0 else { return "" }
        let (seconds, remainder) = microseconds.quotientAndRemainder(dividingBy: 1_000_000)
        let whole = Date(timeIntervalSince1970: TimeInterval(seconds)).formatted(secondsStyle)  // "… HH:MM:SSZ"
        let milliseconds = String(remainder / 1000)
        return whole.dropLast() + "." + String(repeating: "0", count: 3 - milliseconds.count) + milliseconds + "Z"
    }

    /// One format for every timestamp of every page (a value, made once).
    static let secondsStyle = Date.ISO8601FormatStyle(dateSeparator: .dash, dateTimeSeparator: .space, timeZone: .gmt)

    static func milliseconds(_ microseconds: Int64) -> String {
        microseconds >= 10_000 ? "\(microseconds / 1000) ms" : String(format: "%.1f ms", Double(microseconds) / 1000)
    }

    /// `YYYY-MM-DD` (the day's start, or with `endOfDay` its last microsecond) or
    /// `YYYY-MM-DDTHH:MM`, in UTC.
    static func microseconds(_ text: String, endOfDay: Bool) -> Int64? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        for (format, span) in [("yyyy-MM-dd'T'HH:mm", Int64(60_000_000)), ("yyyy-MM-dd", Int64(86_400_000_000))] {
            formatter.dateFormat = format
            if let date = formatter.date(from: text) {
                let start = Int64(date.timeIntervalSince1970 * 1_000_000)
                return endOfDay ? start + span - 1 : start
            }
        }
        return nil
    }
}

/// A request to an admin page that cannot be answered as asked.
enum AdminPageError: Error, Equatable {
    /// A query or form parameter, and what it must be.
    case invalidParameter(String, String)
    /// The transaction (or path) asked for.
    case notFound(String)
    /// An action the coordinator refused, with its reason.
    case refused(String)
}

extension String {
    /// The string with its first letter upper-cased.
    var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}
