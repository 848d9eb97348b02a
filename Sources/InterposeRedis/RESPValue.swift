import NIOCore

/// One RESP2 value as Redis sends it. Bulk strings stay as ByteBuffer slices of the read buffer
/// (no copy); `nil` is RESP's null bulk string (`$-1`) or null array (`*-1`).
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    /// A RESP error reply (`-ERR ...`, `-NOSCRIPT ...`): an answer from Redis, not a transport failure.
    case error(String)
    case integer(Int)
    case bulkString(ByteBuffer?)
    case array([RESPValue]?)

    /// A bulk string holding `text`.
    public static func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }

    /// The text of a simple or bulk string; nil for anything else (and for null).
    public var string: String? {
        switch self {
        case .simpleString(let s): return s
        case .bulkString(let b?): return String(buffer: b)
        default: return nil
        }
    }

    /// The value of an integer reply.
    public var int: Int? {
        if case .integer(let i) = self { return i }
        return nil
    }

    /// The elements of a non-null array.
    public var elements: [RESPValue]? {
        if case .array(let a?) = self { return a }
        return nil
    }
}
