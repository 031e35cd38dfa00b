/// dtmd's bearer tokens (`Auth.Tokens`): when there are any, every request must carry one of
/// them (`authorization: Bearer <token>`). Compared in constant time, never logged; no tokens
/// means no authentication (dtm's behaviour, for clients that cannot send one).
public struct AccessTokens: Sendable {
    private let tokens: [[UInt8]]

    /// The cookie in which the admin pages' login keeps the token (HttpOnly, SameSite=Strict).
    public static let adminCookie = "swiftdtm_token"

    public init(_ tokens: [String]) {
        self.tokens = tokens.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    /// Whether tokens are configured at all.
    public var required: Bool { !tokens.isEmpty }

    /// Whether `authorization` (an `Authorization` header or metadata value) is `Bearer` with
    /// one of the tokens; true when none are configured.
    public func accepts(authorization: String?) -> Bool {
        guard required else { return true }
        guard let authorization else { return false }
        let scheme = "bearer "
        guard authorization.utf8.count > scheme.utf8.count,
              authorization.prefix(scheme.count).lowercased() == scheme else { return false }
        return accepts(token: String(authorization.dropFirst(scheme.count)))
    }

    /// Whether `token` is one of the tokens. Every token is compared, every byte of each, so the
    /// time taken does not tell which bytes matched.
    public func accepts(token: String) -> Bool {
        let offered = Array(token.utf8)
        var matched = false
        for candidate in tokens {
            var difference = UInt8(truncatingIfNeeded: candidate.count ^ offered.count)
            for index in 0..<candidate.count {
                difference |= candidate[index] ^ (index < offered.count ? offered[index] : 0)
            }
            matched = matched || difference == 0
        }
        return matched
    }
}
