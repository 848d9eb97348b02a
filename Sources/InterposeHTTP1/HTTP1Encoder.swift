import NIOCore
import NIOHTTP1

/// Writes HTTP/1.1 messages into a buffer the caller sends: a head, body parts framed as the head says
/// (chunked or as they are), the end. A connection's head, body and end usually go out in one write.
///
/// Framing: a head with `Transfer-Encoding: chunked` gets chunk framing. A response head with neither
/// Content-Length nor Transfer-Encoding whose response can have a body gets `transfer-encoding:
/// chunked` added when the client speaks HTTP/1.1 (as NIO's encoder does); an HTTP/1.0 client is
/// sent the body as it is and the connection closes after it.
public struct HTTP1Encoder {
    private var chunked = false

    public init() {}

    /// A head the proxy made or was handed whole (an h2c stream's request, a local reply): written as
    /// it is. Heads received from a peer are written from their bytes (the `RawRequestHead` and
    /// `RawResponseHead` forms), where hop-by-hop fields and route edits are applied.
    public mutating func requestHead(_ head: HTTPRequestHead, into out: inout ByteBuffer) {
        out.writeString(head.method.rawValue)
        out.writeInteger(UInt8(ascii: " "))
        out.writeString(head.uri)
        out.writeStaticString(" HTTP/1.1\r\n")
        chunked = Self.writeFields(head.headers, into: &out).chunked
        out.writeStaticString("\r\n")
    }

    /// `bodyless`: the response to a HEAD request, or a status without a body (1xx, 204, 304).
    public mutating func responseHead(_ head: HTTPResponseHead, bodyless: Bool, into out: inout ByteBuffer) {
        out.writeStaticString(head.version == .http1_0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        let code = Int(head.status.code)
        out.writeInteger(UInt8(48 + code / 100))
        out.writeInteger(UInt8(48 + code / 10 % 10))
        out.writeInteger(UInt8(48 + code % 10))
        out.writeInteger(UInt8(ascii: " "))
        out.writeString(head.status.reasonPhrase)
        out.writeStaticString("\r\n")
        let written = Self.writeFields(head.headers, into: &out)
        chunked = written.chunked
        if !bodyless && !written.chunked && !written.framed && head.version != .http1_0 {
            out.writeStaticString("transfer-encoding: chunked\r\n")
            chunked = true
        }
        if bodyless { chunked = false }
        out.writeStaticString("\r\n")
    }

    /// A response head from its received bytes: the status line for `version`, the fields copied as
    /// `edits` change them.
    public mutating func responseHead(_ raw: RawResponseHead, version: HTTPVersion, edits: HeaderEdits?, bodyless: Bool, into out: inout ByteBuffer) {
        out.writeStaticString(version == .http1_0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        // The status code and reason as received.
        raw.fields.bytes.withUnsafeReadableBytes { all in
            var end = 9
            while end < raw.fields.fieldsStart && all[end] != UInt8(ascii: "\r") && all[end] != UInt8(ascii: "\n") { end += 1 }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: all[9..<end]))
        }
        out.writeStaticString("\r\n")
        // An HTTP/1.0 client cannot read chunks: the body goes to it as it is, ended by the close.
        let written = raw.fields.write(edits: edits, dropTransferEncoding: version == .http1_0, into: &out)
        chunked = written.chunked
        if !bodyless && !written.chunked && !written.framed && version != .http1_0 {
            out.writeStaticString("transfer-encoding: chunked\r\n")
            chunked = true
        }
        if bodyless { chunked = false }
        // Neither a length nor chunks (no length, or a Transfer-Encoding not ending in chunked): the close ends it.
        endsWithClose = !bodyless && !chunked && !written.hasLength
        out.writeStaticString("\r\n")
    }

    /// The last response head written leaves its body to be ended by closing the connection (an
    /// HTTP/1.0 client and no Content-Length): the connection must close after it.
    public private(set) var endsWithClose = false

    /// A request head from its received bytes: the request line with `uri` (HTTP/1.1), the fields
    /// copied as `edits` change them.
    public mutating func requestHead(_ raw: RawRequestHead, uri: String, edits: HeaderEdits?, into out: inout ByteBuffer) {
        out.writeString(raw.method.rawValue)
        out.writeInteger(UInt8(ascii: " "))
        out.writeString(uri)
        out.writeStaticString(" HTTP/1.1\r\n")
        chunked = raw.fields.write(edits: edits, dropTransferEncoding: false, into: &out).chunked
        out.writeStaticString("\r\n")
    }

    public mutating func body(_ bytes: ByteBuffer, into out: inout ByteBuffer) {
        let n = bytes.readableBytes
        guard n > 0 else { return }
        if chunked {
            out.writeString(String(n, radix: 16))
            out.writeStaticString("\r\n")
            out.writeImmutableBuffer(bytes)
            out.writeStaticString("\r\n")
        } else {
            out.writeImmutableBuffer(bytes)
        }
    }

    public mutating func end(_ trailers: HTTPHeaders?, into out: inout ByteBuffer) {
        guard chunked else { return }
        out.writeStaticString("0\r\n")
        if let trailers { _ = Self.writeFields(trailers, into: &out) }
        out.writeStaticString("\r\n")
        chunked = false
    }

    /// Writes the fields; says whether they make the body chunked and whether they frame it at all
    /// (Content-Length or Transfer-Encoding).
    private static func writeFields(_ headers: HTTPHeaders, into out: inout ByteBuffer) -> (chunked: Bool, framed: Bool) {
        var chunked = false, framed = false
        for (name, value) in headers {
            write(name, value, into: &out)
            switch name.utf8.count {
            case 14 where HeaderName.is(name, "content-length"): framed = true
            case 17 where HeaderName.is(name, "transfer-encoding"):
                framed = true
                chunked = value.lowercased().split(separator: ",").last?.trimmingASCIISpaces() == "chunked"
            default: break
            }
        }
        return (chunked, framed)
    }

    /// `name: value\r\n` in one write (one capacity check instead of four).
    @inline(__always)
    static func write(_ name: String, _ value: String, into out: inout ByteBuffer) {
        var name = name, value = value
        let n = name.utf8.count, m = value.utf8.count
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: n + m + 4) { p in
            let base = p.baseAddress!
            if n > 0 { name.withUTF8 { base.copyMemory(from: $0.baseAddress!, byteCount: n) } }
            base.storeBytes(of: UInt8(ascii: ":"), toByteOffset: n, as: UInt8.self)
            base.storeBytes(of: UInt8(ascii: " "), toByteOffset: n + 1, as: UInt8.self)
            if m > 0 { value.withUTF8 { (base + n + 2).copyMemory(from: $0.baseAddress!, byteCount: m) } }
            base.storeBytes(of: UInt8(ascii: "\r"), toByteOffset: n + 2 + m, as: UInt8.self)
            base.storeBytes(of: UInt8(ascii: "\n"), toByteOffset: n + 3 + m, as: UInt8.self)
            return n + m + 4
        }
    }
}

/// Changes to a head's fields made while it is written: what goes (hop-by-hop fields, named ones)
/// and what is added. The received head itself is never copied or changed.
public struct HeaderEdits: Sendable {
    /// Drop Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade and the names Connection lists.
    public var removeHopByHop = true
    /// An upgrade goes through: Upgrade is kept and `connection: upgrade` written.
    public var keepUpgrade = false
    /// Received fields dropped, by name (any case).
    public private(set) var removed: [String] = []
    /// Fields written after the received ones, in order.
    public private(set) var added: [(String, String)] = []

    public init() {}

    /// Back to no edits, keeping the lists' storage (one HeaderEdits serves a connection's requests).
    public mutating func reset() {
        removeHopByHop = true
        keepUpgrade = false
        removed.removeAll(keepingCapacity: true)
        added.removeAll(keepingCapacity: true)
    }

    /// Replaces every value of the field (NIO's replaceOrAdd).
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        added.append((name, value))
    }

    public mutating func add(_ name: String, _ value: String) { added.append((name, value)) }

    public mutating func remove(_ name: String) {
        removed.append(name)
        if added.contains(where: { HeaderName.equal($0.0, name) }) { added.removeAll { HeaderName.equal($0.0, name) } }
    }

    /// The value the field will have once written: the last one added, else the received one unless dropped.
    public func value(_ name: String, in headers: HTTPHeaders) -> String? {
        value(name) { headers.first(name: $0) }
    }

    public func value(_ name: String, in fields: RawFields) -> String? {
        value(name) { fields.first($0) }
    }

    private func value(_ name: String, received: (String) -> String?) -> String? {
        if let a = added.last(where: { HeaderName.equal($0.0, name) }) { return a.1 }
        if removed.contains(where: { HeaderName.equal($0, name) }) { return nil }
        return received(name)
    }
}

/// Field names compared as HTTP compares them: ASCII, any case.
public enum HeaderName {
    @inline(__always)
    public static func equal(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        for (p, q) in zip(x, y) where p != q {
            guard p | 0x20 == q | 0x20, (p | 0x20) >= 0x61 && (p | 0x20) <= 0x7a else { return false }
        }
        return true
    }

    /// `name` equals `lower` (a lower-case name) in any case.
    @inline(__always)
    public static func `is`(_ name: String, _ lower: StaticString) -> Bool {
        let x = name.utf8
        guard x.count == lower.utf8CodeUnitCount else { return false }
        var i = 0
        let p = lower.utf8Start
        for b in x {
            if b != p[i] && !(p[i] >= 0x61 && p[i] <= 0x7a && b | 0x20 == p[i]) { return false }
            i += 1
        }
        return true
    }

    /// A received name's bytes against a String name, any case.
    @inline(__always)
    public static func equal(_ a: String, _ b: UnsafeRawBufferPointer) -> Bool {
        let x = a.utf8
        guard x.count == b.count else { return false }
        var i = 0
        for p in x {
            let q = b[i]
            if p != q {
                guard p | 0x20 == q | 0x20, (p | 0x20) >= 0x61 && (p | 0x20) <= 0x7a else { return false }
            }
            i += 1
        }
        return true
    }

    @inline(__always)
    public static func `is`(_ name: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        guard name.count == lower.utf8CodeUnitCount else { return false }
        let p = lower.utf8Start
        for i in 0..<name.count where name[i] != p[i] && !(p[i] >= 0x61 && p[i] <= 0x7a && name[i] | 0x20 == p[i]) { return false }
        return true
    }

    public static func isHopByHop(_ name: UnsafeRawBufferPointer) -> Bool {
        switch name.count {
        case 10: return `is`(name, "connection") || `is`(name, "keep-alive")
        case 16: return `is`(name, "proxy-connection")
        case 2: return `is`(name, "te")
        case 7: return `is`(name, "trailer") || `is`(name, "upgrade")
        default: return false
        }
    }

    /// Content-Length, Transfer-Encoding and Host: fields a Connection header may name but that are
    /// never dropped for it. Without its framing field a request would lose its body on the way and the
    /// body would be read upstream as another request (request smuggling).
    public static func framesMessage(_ name: UnsafeRawBufferPointer) -> Bool {
        `is`(name, "content-length") || `is`(name, "transfer-encoding") || `is`(name, "host")
    }

    /// RFC 9110 7.6.1 (plus Proxy-Connection).
    public static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 10: return `is`(name, "connection") || `is`(name, "keep-alive")
        case 16: return `is`(name, "proxy-connection")
        case 2: return `is`(name, "te")
        case 7: return `is`(name, "trailer") || `is`(name, "upgrade")
        default: return false
        }
    }
}
