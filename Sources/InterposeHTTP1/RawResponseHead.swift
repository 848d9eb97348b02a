import NIOCore
import NIOHTTP1

/// A response head kept as the bytes it came in: the proxy needs only its status and what frames
/// its body, so its fields are copied to the client line by line (with the route's edits applied)
/// instead of being turned into Strings and written out again.
public struct RawResponseHead: Sendable {
    public let status: HTTPResponseStatus
    public let version: HTTPVersion
    /// The whole head, status line to the empty line.
    let bytes: ByteBuffer
    /// Where the status line ends, relative to `bytes.readerIndex`.
    let fieldsStart: Int

    /// The fields as NIO headers (for the rare reader that needs them; the proxy does not).
    public var headers: HTTPHeaders {
        var out: [(String, String)] = []
        forEachField { name, value in
            out.append((HTTP1HeadScanner.string(name, 0..<name.count), HTTP1HeadScanner.string(value, 0..<value.count)))
        }
        return HTTPHeaders(out)
    }

    /// The head as a NIO response head.
    public var head: HTTPResponseHead { HTTPResponseHead(version: version, status: status, headers: headers) }

    /// Each field's name and value bytes (value without surrounding white space), in order.
    func forEachField(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        forEachLine { all, line, _ in
            let (name, value) = Self.split(all, line)
            body(UnsafeRawBufferPointer(rebasing: all[name]), UnsafeRawBufferPointer(rebasing: all[value]))
        }
    }

    /// Each field line: the head's bytes, the line without its end, and the line with its end.
    @inline(__always)
    func forEachLine(_ body: (UnsafeRawBufferPointer, Range<Int>, Range<Int>) -> Void) {
        bytes.withUnsafeReadableBytes { all in Self.eachLine(all, fieldsStart) { body(all, $0, $1) } }
    }

    /// The field lines of a head's bytes, from the end of the status line (`fieldsStart`).
    @inline(__always)
    static func eachLine(_ all: UnsafeRawBufferPointer, _ fieldsStart: Int, _ body: (Range<Int>, Range<Int>) -> Void) {
        let n = all.count
        var i = fieldsStart
        if i < n && all[i] == UInt8(ascii: "\r") { i += 1 }
        if i < n && all[i] == UInt8(ascii: "\n") { i += 1 }
        while i < n {
            var end = i
            while end < n && all[end] != UInt8(ascii: "\n") { end += 1 }
            var lineEnd = end
            if lineEnd > i && all[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            if lineEnd == i { return }  // the empty line
            body(i..<lineEnd, i..<min(end + 1, n))
            i = end + 1
        }
    }

    /// A field line's name and value (without surrounding white space).
    @inline(__always)
    static func split(_ all: UnsafeRawBufferPointer, _ line: Range<Int>) -> (name: Range<Int>, value: Range<Int>) {
        var colon = line.lowerBound
        while colon < line.upperBound && all[colon] != UInt8(ascii: ":") { colon += 1 }
        var vs = colon + 1, ve = line.upperBound
        while vs < ve && (all[vs] == UInt8(ascii: " ") || all[vs] == UInt8(ascii: "\t")) { vs += 1 }
        while ve > vs && (all[ve - 1] == UInt8(ascii: " ") || all[ve - 1] == UInt8(ascii: "\t")) { ve -= 1 }
        return (line.lowerBound..<colon, vs..<max(vs, ve))
    }
}
