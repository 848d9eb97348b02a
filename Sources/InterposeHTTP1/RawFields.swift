import NIOCore
import NIOHTTP1

/// A head's field lines kept as the bytes they came in. The proxy reads a few of them (Host, a header a
/// route matches on) and copies the rest to the other side line by line, so they are never all turned
/// into Strings and written out again.
public struct RawFields: Sendable {
    /// The whole head, start line to the empty line.
    let bytes: ByteBuffer
    /// Where the start line ends, relative to `bytes.readerIndex`.
    let fieldsStart: Int

    /// The first value of a field (any case), or nil.
    public func first(_ name: String) -> String? {
        var found: String?
        bytes.withUnsafeReadableBytes { all in
            Self.eachLine(all, fieldsStart) { line, _ in
                guard found == nil else { return }
                let (n, v) = Self.split(all, line)
                if HeaderName.equal(name, UnsafeRawBufferPointer(rebasing: all[n])) { found = HTTP1HeadScanner.string(all, v) }
            }
        }
        return found
    }

    /// Every value of a field (any case), in order.
    public func values(_ name: String) -> [String] {
        var found: [String] = []
        forEachField { n, v in
            if HeaderName.equal(name, n) { found.append(String(decoding: v, as: UTF8.self)) }
        }
        return found
    }

    public func contains(_ name: String) -> Bool {
        var found = false
        forEachField { n, _ in if !found && HeaderName.equal(name, n) { found = true } }
        return found
    }

    /// The fields as NIO headers (for readers that need them all: policy, the access log).
    public var headers: HTTPHeaders {
        var out: [(String, String)] = []
        forEachField { name, value in out.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))) }
        return HTTPHeaders(out)
    }

    /// Each field's name and value bytes (value without surrounding white space), in order.
    func forEachField(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        bytes.withUnsafeReadableBytes { all in
            Self.eachLine(all, fieldsStart) { line, _ in
                let (name, value) = Self.split(all, line)
                body(UnsafeRawBufferPointer(rebasing: all[name]), UnsafeRawBufferPointer(rebasing: all[value]))
            }
        }
    }

    /// The field lines of a head's bytes, from the end of the start line (`fieldsStart`): each line
    /// without its end, and with it.
    @inline(__always)
    static func eachLine(_ all: UnsafeRawBufferPointer, _ fieldsStart: Int, _ body: (Range<Int>, Range<Int>) throws -> Void) rethrows {
        let n = all.count
        var i = fieldsStart
        // The start line's end (from 0, the walk begins with the start line itself).
        if i > 0 && i < n && all[i] == UInt8(ascii: "\r") { i += 1 }
        if i > 0 && i < n && all[i] == UInt8(ascii: "\n") { i += 1 }
        while i < n {
            var end = i
            while end < n && all[end] != UInt8(ascii: "\n") { end += 1 }
            var lineEnd = end
            if lineEnd > i && all[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            if lineEnd == i { return }  // the empty line
            try body(i..<lineEnd, i..<min(end + 1, n))
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

    /// What writing the fields found out about the body's framing.
    struct Written {
        var chunked = false
        var framed = false
        var hasLength = false
    }

    /// Copies the field lines into `out` as `edits` change them (kept lines as they came, consecutive
    /// ones in one write; bare LF line ends made CRLF), then the added fields. `dropTransferEncoding`:
    /// an HTTP/1.0 client, which cannot read chunks.
    func write(edits: HeaderEdits?, dropTransferEncoding: Bool, into out: inout ByteBuffer) -> Written {
        var written = Written()
        bytes.withUnsafeReadableBytes { all in
            // Names a Connection field lists are hop-by-hop too; rare beyond keep-alive, close and upgrade.
            var listed: [String] = []
            if edits?.removeHopByHop == true {
                Self.eachLine(all, fieldsStart) { line, _ in
                    let (name, value) = Self.split(all, line)
                    guard name.count == 10, FramingFields.nameIs(all, name, "connection") else { return }
                    FramingFields.tokens(all, value) { t in
                        let token = UnsafeRawBufferPointer(rebasing: all[t])
                        if !HeaderName.is(token, "keep-alive") && !HeaderName.is(token, "close") && !HeaderName.is(token, "upgrade")
                            && !HeaderName.framesMessage(token) {
                            listed.append(HTTP1HeadScanner.string(all, t))
                        }
                    }
                }
            }
            var run: Range<Int>? = nil
            Self.eachLine(all, fieldsStart) { line, withEnd in
                let (nameRange, valueRange) = Self.split(all, line)
                let name = UnsafeRawBufferPointer(rebasing: all[nameRange])
                var keep = true
                if let edits {
                    if edits.removeHopByHop && HeaderName.isHopByHop(name) && !(edits.keepUpgrade && HeaderName.is(name, "upgrade")) { keep = false }
                    else if !edits.removed.isEmpty && edits.removed.contains(where: { HeaderName.equal($0, name) }) { keep = false }
                    else if !listed.isEmpty && listed.contains(where: { HeaderName.equal($0, name) }) { keep = false }
                }
                if keep && dropTransferEncoding && HeaderName.is(name, "transfer-encoding") { keep = false }
                if keep {
                    switch name.count {
                    case 14 where HeaderName.is(name, "content-length"): written.framed = true; written.hasLength = true
                    case 17 where HeaderName.is(name, "transfer-encoding"):
                        written.framed = true
                        var last: Range<Int> = valueRange.upperBound..<valueRange.upperBound
                        FramingFields.tokens(all, valueRange) { last = $0 }
                        written.chunked = FramingFields.nameIs(all, last, "chunked")
                    default: break
                    }
                }
                let bareLF = withEnd.count == line.count + 1 && all[line.upperBound] == UInt8(ascii: "\n")
                if keep && !bareLF {
                    run = run.map { $0.lowerBound..<withEnd.upperBound } ?? withEnd
                } else {
                    if let r = run { out.writeBytes(UnsafeRawBufferPointer(rebasing: all[r])); run = nil }
                    if keep {
                        out.writeBytes(UnsafeRawBufferPointer(rebasing: all[line]))
                        out.writeStaticString("\r\n")
                    }
                }
            }
            if let r = run { out.writeBytes(UnsafeRawBufferPointer(rebasing: all[r])) }
        }
        if let edits {
            for (name, value) in edits.added {
                HTTP1Encoder.write(name, value, into: &out)
                if HeaderName.is(name, "content-length") { written.framed = true; written.hasLength = true }
                if HeaderName.is(name, "transfer-encoding") { written.framed = true }
            }
            if edits.keepUpgrade { out.writeStaticString("connection: upgrade\r\n") }
        }
        return written
    }
}
