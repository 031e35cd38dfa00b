/// A string whose identity is its exact UTF-8 bytes.
///
/// Swift's `String` compares, hashes and orders by Unicode canonical equivalence: `"café"`
/// (U+00E9) equals `"cafe\u{301}"`. Identifiers that other systems compare byte for byte — a
/// log's stream ids, dtm's gids, branch ids, ops — must never be merged that way, so every
/// dictionary, set, lock table and comparison keyed by one uses this type (or `hasSameBytes`).
public struct ExactString: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The string itself, unchanged.
    public let string: String

    public init(_ string: String) { self.string = string }

    /// The string's UTF-8 bytes.
    public var bytes: [UInt8] { Array(string.utf8) }

    public static func == (lhs: ExactString, rhs: ExactString) -> Bool {
        lhs.string.hasSameBytes(as: rhs.string)
    }

    public func hash(into hasher: inout Hasher) {
        let hashed: Void? = string.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil {
            for byte in string.utf8 { hasher.combine(byte) }
        }
        hasher.combine(string.utf8.count)
    }

    /// Byte order (memcmp order, as LMDB sorts keys), not Unicode order.
    public static func < (lhs: ExactString, rhs: ExactString) -> Bool {
        lhs.string.utf8.lexicographicallyPrecedes(rhs.string.utf8)
    }

    public var description: String { string }
}

extension String {
    /// The string with byte identity (see `ExactString`).
    public var exact: ExactString { ExactString(self) }

    /// Whether both strings have exactly the same UTF-8 bytes (`==` is Unicode equivalence).
    public func hasSameBytes(as other: String) -> Bool {
        utf8.elementsEqual(other.utf8)
    }
}
