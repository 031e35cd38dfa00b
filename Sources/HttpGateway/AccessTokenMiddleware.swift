public import Coordinator
import Foundation
public import Hummingbird

/// Refuses every HTTP request without one of dtmd's tokens with 401, except `/api/ping`,
/// `/api/metrics` and the admin login page with its assets: an `Authorization: Bearer <token>`
/// header, or, for the admin pages, the cookie the login page sets.
public struct AccessTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokens: AccessTokens

    /// What needs no token.
    static var open: Set<String> { ["/api/ping", "/api/metrics", "/admin/login", "/admin/assets/admin.css", "/admin/assets/admin.js"] }

    public init(tokens: AccessTokens) {
        self.tokens = tokens
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if Self.open.contains(path) { return try await next(request, context) }
        if tokens.accepts(authorization: request.headers[.authorization]) { return try await next(request, context) }
        let isPage = path == "/" || path.hasPrefix("/admin")
        if isPage, let cookie = Self.cookieToken(request), tokens.accepts(token: cookie) { return try await next(request, context) }
        if isPage {
            // The pages: to the login form, which comes back here.
            return Response(status: .seeOther, headers: [.location: "/admin/login"])
        }
        let body = #"{"message":"a valid token is required: Authorization: Bearer <token>"}"#
        return Response(status: .unauthorized, headers: [.contentType: "application/json", .wwwAuthenticate: "Bearer"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// The token of the admin pages' cookie, percent-decoded.
    static func cookieToken(_ request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0] == AccessTokens.adminCookie { return String(parts[1]).removingPercentEncoding }
            }
        }
        return nil
    }
}
