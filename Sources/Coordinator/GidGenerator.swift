import Foundation

/// Gids like dtm's: a random UUID written as 22 characters of the base-57 alphabet of
/// shortuuid (no 0, 1, I, O, l).
enum GidGenerator {
    static let alphabet = Array("23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")

    static func next() -> String {
        var value = withUnsafeBytes(of: UUID().uuid) { bytes in
            return (bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) },
                    bytes.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        }
        var digits = [Character]()
        digits.reserveCapacity(22)
        for _ in 0..<22 {
            // Divide the 128-bit value (high, low) by 57, keeping the remainder.
            let high = value.0.quotientAndRemainder(dividingBy: 57)
            let (low, remainder) = UInt64(57).dividingFullWidth((high.remainder, value.1))
            value = (high.quotient, low)
            digits.append(alphabet[Int(remainder)])
        }
        return String(digits.reversed())
    }
}
