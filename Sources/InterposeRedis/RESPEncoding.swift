import NIOCore

// RESP2 encoding. A command is always an array of bulk strings, which is what Redis expects from a
// client; `writeRESPValue` encodes any value (a server's view) and exists for tests and tools.

private let crlf: StaticString = "\r\n"

extension ByteBuffer {
    /// Writes `*N\r\n` then `$len\r\narg\r\n` for each argument.
    @discardableResult
    public mutating func writeRESPCommand(_ args: [String]) -> Int {
        let start = writerIndex
        writeInteger(UInt8(ascii: "*"))
        writeDecimal(args.count)
        writeStaticString(crlf)
        for arg in args {
            writeInteger(UInt8(ascii: "$"))
            writeDecimal(arg.utf8.count)
            writeStaticString(crlf)
            writeString(arg)
            writeStaticString(crlf)
        }
        return writerIndex - start
    }

    /// Writes any RESP2 value.
    @discardableResult
    public mutating func writeRESPValue(_ value: RESPValue) -> Int {
        let start = writerIndex
        switch value {
        case .simpleString(let s):
            writeInteger(UInt8(ascii: "+")); writeString(s); writeStaticString(crlf)
        case .error(let s):
            writeInteger(UInt8(ascii: "-")); writeString(s); writeStaticString(crlf)
        case .integer(let i):
            writeInteger(UInt8(ascii: ":")); writeDecimal(i); writeStaticString(crlf)
        case .bulkString(nil):
            writeStaticString("$-1\r\n")
        case .bulkString(var b?):
            writeInteger(UInt8(ascii: "$")); writeDecimal(b.readableBytes); writeStaticString(crlf)
            writeBuffer(&b); writeStaticString(crlf)
        case .array(nil):
            writeStaticString("*-1\r\n")
        case .array(let items?):
            writeInteger(UInt8(ascii: "*")); writeDecimal(items.count); writeStaticString(crlf)
            for item in items { writeRESPValue(item) }
        }
        return writerIndex - start
    }

    /// ASCII decimal without going through String (this runs for every argument of every command).
    mutating func writeDecimal(_ value: Int) {
        if value < 0 {
            writeInteger(UInt8(ascii: "-"))
            // -(Int.min) overflows: go through the magnitude.
            writeDecimal(magnitude: value.magnitude)
        } else {
            writeDecimal(magnitude: UInt(value))
        }
    }

    private mutating func writeDecimal(magnitude: UInt) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = magnitude
        var count = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                raw[19 - count] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
                count += 1
            } while n > 0
            writeBytes(UnsafeRawBufferPointer(rebasing: raw[(20 - count)...]))
        }
    }
}
