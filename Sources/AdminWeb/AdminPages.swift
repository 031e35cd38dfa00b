public import Coordinator
import Foundation
public import Hummingbird
public import Logging
import Mustache
import NIOCore
import Projections
import DTMWire
import ServiceLifecycle
public import TransactionStore

/// The admin web pages on dtmd's HTTP port: `/admin`, the transaction list (filters, paging,
/// counts by status) and `/admin/transactions/<gid>`, a transaction's header, branches and
/// timeline of every event with its hash; both update live from `/admin/events` (server-sent
/// events on the log's tail). "retry now" and "force stop" go through the coordinator, so they
/// are recorded in the log as the API's resetNextCronTime and forceStop are.
public enum AdminPages {
    /// Adds the pages (and `/` redirecting to `/admin`) to `router`.
    public static func addRoutes(to router: Router<BasicRequestContext>, coordinator: Coordinator, store: any TransactionStore,
                                 tokens: AccessTokens = AccessTokens([]), logger: Logger = Logger(label: "swiftdtm.admin")) {
        let pages = Renderer()
        // With tokens configured, the pages need one (the router's token middleware sends them
        // here); the token is kept in a cookie only the pages get.
        router.get("/admin/login") { _, _ in pages.page("login", ["title": "Sign in", "lastSeq": "0", "watchGid": "", "failed": false]) }
        router.post("/admin/login") { request, _ in
            let form = String(buffer: try await request.body.collect(upTo: 4096))
            let token = form.split(separator: "&").compactMap { pair -> String? in
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, parts[0] == "token" else { return nil }
                return String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }.first ?? ""
            guard tokens.required, tokens.accepts(token: token) else {
                return pages.page("login", ["title": "Sign in", "lastSeq": "0", "watchGid": "", "failed": true], status: .unauthorized)
            }
            let value = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            return Response(status: .seeOther, headers: [
                .location: "/admin",
                .setCookie: "\(AccessTokens.adminCookie)=\(value); Path=/; HttpOnly; SameSite=Strict",
            ])
        }
        router.get("/") { _, _ in Response(status: .found, headers: [.location: "/admin"]) }
        router.get("/admin/assets/admin.css") { _, _ in asset(AdminTemplates.css, type: "text/css; charset=utf-8") }
        router.get("/admin/assets/admin.js") { _, _ in asset(AdminTemplates.script, type: "text/javascript; charset=utf-8") }
        router.get("/admin") { request, _ in
            let parameters = request.uri.queryParameters
            func value(_ name: String) -> String { parameters.get(name) ?? "" }
            let query = AdminViews.ListQuery(
                status: value("status"), transType: value("trans_type"), gidPrefix: value("gid_prefix"),
                from: value("from"), to: value("to"), page: value("page"))
            let filter: TransactionFilter
            switch query.filter() {
            case let .success(valid): filter = valid
            case let .failure(error): return pages.error(error)
            }
            var token: PageToken?
            if !query.page.isEmpty {
                guard let page = PageToken(text: query.page) else {
                    return pages.error(.invalidParameter("page", "a page link from this list"))
                }
                token = page
            }
            let found = try await store.transactions(matching: filter, page: token, limit: pageSize)
            let counts = try await store.countsByStatus(upTo: AdminViews.countLimit)
            return pages.page("list", AdminViews.list(found, counts: counts, query: query, lastSeq: try await store.lastSeq()))
        }
        router.get("/admin/transactions/**") { request, _ in
            guard let (gid, action) = transactionPath(request.uri.path), action == nil else {
                return pages.error(.notFound(request.uri.path))
            }
            guard let state = try await store.transaction(gid) else { return pages.error(.notFound(gid)) }
            return pages.page("detail", AdminViews.detail(state, audited: try await store.auditedHistory(of: gid)))
        }
        router.post("/admin/transactions/**") { request, _ in
            guard let (gid, action) = transactionPath(request.uri.path), let action else {
                return pages.error(.notFound(request.uri.path))
            }
            let form = String(buffer: try await request.body.collect(upTo: 4096))
            guard form.split(separator: "&").contains("confirm=yes") else {
                return pages.error(.invalidParameter("confirm", "yes (the page asks before it sends)"))
            }
            do {
                switch action {
                case "retry": try await coordinator.resetNextCronTime(gid)
                case "force-stop": try await coordinator.forceStop(gid)
                default: return pages.error(.notFound(request.uri.path))
                }
                logger.info("admin page: \(action)", metadata: ["gid": "\(gid)"])
            } catch {
                return pages.error(.refused("\(action) of \(gid): \(RequestError(error))"))
            }
            return Response(status: .seeOther, headers: [.location: AdminViews.detailPath(gid)])
        }
        router.get("/admin/events") { request, _ in
            let parameters = request.uri.queryParameters
            let start = parameters.get("after").flatMap(UInt64.init)
            let after = if let start { start } else { try await store.lastSeq() }
            let gid = parameters.get("gid") ?? ""
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    // Ends with the client, or when dtmd shuts down (a stream never ends by itself).
                    try await writer.write(ByteBuffer(string: ": following the log after \(after)\n\n"))
                    for try await event in LogTail(store: store, after: after).cancelOnGracefulShutdown() {
                        if !gid.isEmpty && !event.gid.utf8.elementsEqual(gid.utf8) { continue }
                        try await writer.write(ByteBuffer(string: serverSentEvent(event)))
                    }
                    try await writer.finish(nil)
                })
        }
    }

    /// Transactions per list page.
    static let pageSize = 50

    /// The gid (percent-decoded, one path segment) and the action after it, of
    /// `/admin/transactions/<gid>[/<action>]`.
    static func transactionPath(_ path: String) -> (gid: String, action: String?)? {
        let prefix = "/admin/transactions/"
        guard path.hasPrefix(prefix) else { return nil }
        let rest = path.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(rest.count), !rest[0].isEmpty, let gid = String(rest[0]).removingPercentEncoding else { return nil }
        return (gid, rest.count == 2 ? String(rest[1]) : nil)
    }

    /// One log event as a server-sent event: `id` the seq, `data` a small JSON object.
    static func serverSentEvent(_ event: RecordedEvent) -> String {
        let object: [String: Any] = ["seq": event.seq, "gid": event.gid, "type": event.event.typeName]
        let json = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return "id: \(event.seq)\ndata: \(json)\n\n"
    }

    static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// The templates, parsed once.
    struct Renderer: Sendable {
        let library: MustacheLibrary

        init() {
            var library = MustacheLibrary()
            for (name, template) in [("head", AdminTemplates.head), ("foot", AdminTemplates.foot), ("list", AdminTemplates.list),
                                     ("detail", AdminTemplates.detail), ("message", AdminTemplates.message), ("login", AdminTemplates.login)] {
                // The templates are constants of this module: a parse error is a bug caught by the tests.
                try? library.register(template, named: name)
            }
            self.library = library
        }

        func page(_ name: String, _ context: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
            let html = library.render(context, withTemplate: name) ?? "template \(name) is missing"
            return Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
        }

        func error(_ error: AdminPageError) -> Response {
            switch error {
            case let .invalidParameter(name, expected):
                return page("message", ["title": "Bad request", "message": "\(name) must be \(expected).", "lastSeq": "0", "watchGid": ""], status: .badRequest)
            case let .notFound(what):
                return page("message", ["title": "Not found", "message": "No transaction \(what).", "lastSeq": "0", "watchGid": ""], status: .notFound)
            case let .refused(message):
                return page("message", ["title": "Refused", "message": message, "lastSeq": "0", "watchGid": ""], status: .conflict)
            }
        }
    }
}

/// The store's tail after `after`, as a concrete sequence that ServiceLifecycle can end on
/// graceful shutdown.
struct LogTail: AsyncSequence, Sendable {
    typealias Element = RecordedEvent
    let store: any TransactionStore
    let after: UInt64

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: any AsyncIteratorProtocol<RecordedEvent, any Error>
        mutating func next() async throws -> RecordedEvent? { try await base.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: store.follow(after: after).makeAsyncIterator()) }
}
