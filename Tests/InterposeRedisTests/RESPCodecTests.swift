import NIOCore
import Testing

@testable import InterposeRedis

@Suite struct RESPCodecTests {
    private func parseAll(_ text: String) throws -> [RESPValue] {
        var buffer = ByteBuffer(string: text)
        var out: [RESPValue] = []
        while let value = try RESPParser.parse(&buffer) { out.append(value) }
        #expect(buffer.readableBytes == 0, "left over: \(String(buffer: buffer))")
        return out
    }

    @Test func commandIsAnArrayOfBulkStrings() {
        var buffer = ByteBuffer()
        buffer.writeRESPCommand(["SET", "k{x}", "héllo", ""])
        #expect(String(buffer: buffer) == "*4\r\n$3\r\nSET\r\n$4\r\nk{x}\r\n$6\r\nhéllo\r\n$0\r\n\r\n")
    }

    @Test func scalarTypes() throws {
        #expect(try parseAll("+OK\r\n") == [.simpleString("OK")])
        #expect(try parseAll("-NOSCRIPT No matching script\r\n") == [.error("NOSCRIPT No matching script")])
        #expect(try parseAll(":0\r\n:-42\r\n:9223372036854775807\r\n") == [.integer(0), .integer(-42), .integer(Int.max)])
        #expect(try parseAll("$5\r\nhello\r\n") == [.bulk("hello")])
        #expect(try parseAll("$0\r\n\r\n") == [.bulk("")])
        #expect(try parseAll("$-1\r\n") == [.bulkString(nil)])
        #expect(try parseAll("*-1\r\n") == [.array(nil)])
        #expect(try parseAll("*0\r\n") == [.array([])])
    }

    @Test func bulkStringMayHoldCRLF() throws {
        #expect(try parseAll("$4\r\na\r\nb\r\n") == [.bulk("a\r\nb")])
    }

    @Test func nestedArrays() throws {
        let text = "*3\r\n:1\r\n*2\r\n$1\r\na\r\n*1\r\n$-1\r\n-ERR x\r\n"
        #expect(try parseAll(text) == [.array([.integer(1), .array([.bulk("a"), .array([.bulkString(nil)])]), .error("ERR x")])])
    }

    /// Every prefix of a frame is "need more data" and leaves the buffer untouched; the whole frame parses.
    @Test func partialFramesWaitForTheRest() throws {
        let frames = ["+PONG\r\n", ":123\r\n", "$5\r\nhello\r\n", "$-1\r\n", "*2\r\n*1\r\n:1\r\n$3\r\nabc\r\n", "-ERR wrong\r\n"]
        for frame in frames {
            let bytes = Array(frame.utf8)
            for cut in 0..<bytes.count {
                var buffer = ByteBuffer(bytes: bytes[0..<cut])
                let value = try RESPParser.parse(&buffer)
                #expect(value == nil, "prefix \(cut) of \(frame.debugDescription)")
                #expect(buffer.readableBytes == cut)
            }
            var whole = ByteBuffer(bytes: bytes)
            let value = try RESPParser.parse(&whole)
            #expect(value != nil)
            #expect(whole.readableBytes == 0)
        }
    }

    /// Bytes arriving one at a time, as the decoder would see them: each value comes out exactly once, in order.
    @Test func byteByByteStream() throws {
        let text = "+OK\r\n*2\r\n$3\r\nfoo\r\n:7\r\n$-1\r\n"
        var buffer = ByteBuffer()
        var out: [RESPValue] = []
        for byte in text.utf8 {
            buffer.writeInteger(byte)
            while let value = try RESPParser.parse(&buffer) { out.append(value) }
            buffer.discardReadBytes()
        }
        #expect(out == [.simpleString("OK"), .array([.bulk("foo"), .integer(7)]), .bulkString(nil)])
    }

    @Test func malformedInputIsAnError() {
        for bad in ["?x\r\n", ":12a\r\n", ":\r\n", "$3\r\nabcd\r\n", "*-2\r\n", "$-5\r\n", "+a\rb\r\n", ":99999999999999999999\r\n"] {
            var buffer = ByteBuffer(string: bad)
            #expect(throws: RESPParseError.self, "\(bad.debugDescription)") { try RESPParser.parse(&buffer) }
        }
    }

    @Test func valuesRoundTrip() throws {
        let values: [RESPValue] = [
            .simpleString("OK"), .error("ERR no"), .integer(Int.min), .integer(-1), .bulk("x\r\ny"), .bulkString(nil),
            .array(nil), .array([.array([.integer(1), .bulk("")]), .simpleString("s")]),
        ]
        var buffer = ByteBuffer()
        for value in values { buffer.writeRESPValue(value) }
        var out: [RESPValue] = []
        while let value = try RESPParser.parse(&buffer) { out.append(value) }
        #expect(out == values)
    }
}
