import NIOCore

/// A malformed RESP stream: the connection cannot be trusted any more and is closed.
public struct RESPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { "RESP protocol error: \(message)" }
}

/// Parses one complete RESP2 value from the front of a buffer, or reports that more bytes are needed.
/// It never consumes a partial value: a frame split across reads is parsed again from its start once
/// the rest has arrived (Redis replies here are small, so re-reading is cheaper than keeping state).
public enum RESPParser {
    /// Arrays nested deeper than this are refused (Redis itself never nests this deep).
    static let maxDepth = 32
    /// Bulk strings longer than this are refused (Redis's own proto-max-bulk-len default is 512 MB).
    static let maxBulkLength = 64 << 20

    /// Parses a value starting at the reader index; on success moves the reader index past it.
    public static func parse(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        var index = buffer.readerIndex
        guard let value = try parse(buffer, at: &index, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: index)
        return value
    }

    private static func parse(_ buffer: ByteBuffer, at index: inout Int, depth: Int) throws -> RESPValue? {
        guard let type = buffer.getInteger(at: index, as: UInt8.self) else { return nil }
        var cursor = index + 1
        guard let lineEnd = try lineEnd(buffer, from: cursor) else { return nil }
        let value: RESPValue
        switch type {
        case UInt8(ascii: "+"):
            value = .simpleString(buffer.getString(at: cursor, length: lineEnd - cursor) ?? "")
            cursor = lineEnd + 2
        case UInt8(ascii: "-"):
            value = .error(buffer.getString(at: cursor, length: lineEnd - cursor) ?? "")
            cursor = lineEnd + 2
        case UInt8(ascii: ":"):
            value = .integer(try integer(buffer, from: cursor, to: lineEnd))
            cursor = lineEnd + 2
        case UInt8(ascii: "$"):
            let length = try integer(buffer, from: cursor, to: lineEnd)
            cursor = lineEnd + 2
            if length == -1 {
                value = .bulkString(nil)
            } else {
                guard length >= 0, length <= maxBulkLength else { throw RESPParseError(message: "bulk length \(length)") }
                guard buffer.writerIndex - cursor >= length + 2 else { return nil }
                guard buffer.getInteger(at: cursor + length, as: UInt16.self) == 0x0d0a else {
                    throw RESPParseError(message: "bulk string not terminated by CRLF")
                }
                value = .bulkString(buffer.getSlice(at: cursor, length: length))
                cursor += length + 2
            }
        case UInt8(ascii: "*"):
            let count = try integer(buffer, from: cursor, to: lineEnd)
            cursor = lineEnd + 2
            if count == -1 {
                value = .array(nil)
            } else {
                guard count >= 0 else { throw RESPParseError(message: "array length \(count)") }
                guard depth < maxDepth else { throw RESPParseError(message: "arrays nested too deep") }
                // Each element takes at least 3 bytes: a count beyond the buffered bytes means wait,
                // and this keeps a hostile count from reserving memory up front.
                guard count <= (buffer.writerIndex - cursor) / 3 else { return nil }
                var items: [RESPValue] = []
                items.reserveCapacity(count)
                for _ in 0..<count {
                    guard let item = try parse(buffer, at: &cursor, depth: depth + 1) else { return nil }
                    items.append(item)
                }
                value = .array(items)
            }
        default:
            throw RESPParseError(message: "unknown type byte \(type)")
        }
        index = cursor
        return value
    }

    /// Index of the `\r` of the next CRLF at or after `from`, nil if the line is not complete yet.
    private static func lineEnd(_ buffer: ByteBuffer, from: Int) throws -> Int? {
        guard from < buffer.writerIndex else { return nil }
        let found = buffer.withUnsafeReadableBytes { raw -> Int? in
            let base = buffer.readerIndex
            var i = from - base
            while i + 1 < raw.count {
                if raw[i] == 0x0d { return base + i }
                i += 1
            }
            return nil
        }
        // A bare CR inside a line is not RESP: waiting for more bytes would hang forever.
        if let found, buffer.getInteger(at: found + 1, as: UInt8.self) != 0x0a {
            throw RESPParseError(message: "CR without LF")
        }
        return found
    }

    private static func integer(_ buffer: ByteBuffer, from: Int, to end: Int) throws -> Int {
        guard end > from else { throw RESPParseError(message: "empty integer") }
        var negative = false
        var i = from
        if buffer.getInteger(at: i, as: UInt8.self) == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        guard i < end else { throw RESPParseError(message: "empty integer") }
        var value = 0
        while i < end {
            let byte = buffer.getInteger(at: i, as: UInt8.self)!
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                throw RESPParseError(message: "bad integer byte \(byte)")
            }
            // Negative numbers are accumulated downwards so that Int.min parses too.
            let digit = Int(byte - UInt8(ascii: "0"))
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(digit) : m.addingReportingOverflow(digit)
            guard !o1, !o2 else { throw RESPParseError(message: "integer overflow") }
            value = s
            i += 1
        }
        return value
    }
}

/// The inbound half of the codec: bytes in, one `RESPValue` per reply out.
public struct RESPDecoder: ByteToMessageDecoder {
    public typealias InboundOut = RESPValue

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let value = try RESPParser.parse(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(value))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A half reply at EOF is simply dropped: the command handler fails what is in flight.
        try decode(context: context, buffer: &buffer)
    }
}
