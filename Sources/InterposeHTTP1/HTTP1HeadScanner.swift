#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1

/// Reads one HTTP/1 head (start line and header fields) from bytes already known to hold all of it.
enum HTTP1HeadScanner {
    enum Framing: Equatable {
        case length(Int)
        case chunked
        case untilClose
    }

    private static let lf = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r"), sp = UInt8(ascii: " "), tab = UInt8(ascii: "\t")

    /// The length of the head including the empty line that ends it, or nil when it is not all there.
    static func headLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let n = bytes.count
        guard n >= 2, let base = bytes.baseAddress else { return nil }
        var i = 0
        while i < n {
            // memchr finds each line end; the head ends at the first empty line.
            guard let p = memchr(base + i, Int32(lf), n - i) else { return nil }
            let at = base.distance(to: UnsafeRawPointer(p))
            if at + 1 < n && bytes[at + 1] == lf { return at + 2 }
            if at + 2 < n && bytes[at + 1] == cr && bytes[at + 2] == lf { return at + 3 }
            if at + 2 >= n { return nil }
            i = at + 1
        }
        return nil
    }

    struct Request {
        var method: HTTPMethod
        var uri: String
        var version: HTTPVersion
        /// Empty when the fields were not kept.
        var fields: [(String, String)]
        var framing: Framing
        var facts: HeadFacts
        /// `Connection: upgrade` with an `Upgrade` header: the bytes after this request are not HTTP/1.
        var upgrade: Bool
        /// Where the request line ends.
        var fieldsStart: Int
        /// The head as NIO's type (allocates its storage: only when the fields were kept).
        var head: HTTPRequestHead { HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(fields)) }
    }

    struct Response {
        var status: HTTPResponseStatus
        var version: HTTPVersion
        /// Empty when the fields were not kept.
        var fields: [(String, String)]
        /// The head as NIO's type (allocates its storage: only when the fields were kept).
        var head: HTTPResponseHead { HTTPResponseHead(version: version, status: status, headers: HTTPHeaders(fields)) }
        var framing: Framing
        var facts: HeadFacts
        /// Where the status line ends (its line end and the fields follow).
        var fieldsStart: Int
    }

    /// The lines of a head: start line, then each field line, without their line ends (RawFields'
    /// line walk from the head's first byte).
    private static func lines(_ bytes: UnsafeRawBufferPointer, _ body: (Range<Int>) throws -> Void) rethrows {
        try RawFields.eachLine(bytes, 0) { line, _ in try body(line) }
    }

    /// `keepFields` false: the fields are checked and the ones that matter read, but no Strings are
    /// made for the others (the head is passed on from its bytes, see RawRequestHead).
    static func request(_ bytes: UnsafeRawBufferPointer, keepFields: Bool = true) throws -> Request {
        var method = ""
        var uri = ""
        var version = HTTPVersion.http1_1
        var headers: [(String, String)] = []
        if keepFields { headers.reserveCapacity(16) }
        var framing = FramingFields()
        var first = true
        var fieldsStart = 0
        try lines(bytes) { line in
            if first {
                first = false
                // method SP request-target SP HTTP-version
                guard let s1 = firstIndex(of: sp, in: bytes, line), let s2 = firstIndex(of: sp, in: bytes, (s1 + 1)..<line.upperBound) else {
                    throw HTTPParserError.invalidURL
                }
                guard s1 > line.lowerBound, (line.lowerBound..<s1).allSatisfy({ isTokenByte(bytes[$0]) }) else { throw HTTPParserError.invalidMethod }
                guard s2 > s1 + 1, ((s1 + 1)..<s2).allSatisfy({ bytes[$0] > sp && bytes[$0] != 0x7f }) else { throw HTTPParserError.invalidURL }
                version = try parseVersion(bytes, (s2 + 1)..<line.upperBound)
                method = string(bytes, line.lowerBound..<s1)
                uri = string(bytes, (s1 + 1)..<s2)
                fieldsStart = line.upperBound
                return
            }
            try field(bytes, line, into: &headers, framing: &framing, keep: keepFields)
        }
        if first { throw HTTPParserError.invalidURL }
        guard let chosen = try framing.framing(isRequest: true, version: version) else { throw HTTPParserError.invalidTransferEncoding }
        return Request(method: HTTPMethod(rawValue: method), uri: uri, version: version, fields: headers, framing: chosen,
                       facts: HeadFacts(keepAlive: framing.keepAlive(version), expectsContinue: framing.expectsContinue,
                                        upgrade: framing.hasUpgrade, expect: framing.hasExpect, forwardedProto: framing.hasForwardedProto, requestID: framing.hasRequestID),
                       upgrade: framing.connectionUpgrade && framing.hasUpgrade, fieldsStart: fieldsStart)
    }

    /// `keepFields` false: the fields are checked and the framing ones read, but no Strings are made
    /// (the head is passed on from its bytes, see RawResponseHead).
    static func response(_ bytes: UnsafeRawBufferPointer, keepFields: Bool = true) throws -> Response {
        var version = HTTPVersion.http1_1
        var status = HTTPResponseStatus.ok
        var headers: [(String, String)] = []
        if keepFields { headers.reserveCapacity(16) }
        var fieldsStart = 0
        var framing = FramingFields()
        var first = true
        try lines(bytes) { line in
            if first {
                first = false
                // HTTP-version SP status-code SP [reason-phrase]
                guard line.count >= 12 else { throw HTTPParserError.invalidStatus }
                let v = line.lowerBound..<(line.lowerBound + 8)
                version = try parseVersion(bytes, v)
                guard bytes[v.upperBound] == sp else { throw HTTPParserError.invalidStatus }
                var code = 0
                for i in (v.upperBound + 1)..<(v.upperBound + 4) {
                    let d = bytes[i]
                    guard d >= 48 && d <= 57 else { throw HTTPParserError.invalidStatus }
                    code = code * 10 + Int(d - 48)
                }
                let reasonStart = v.upperBound + 4
                if reasonStart < line.upperBound && bytes[reasonStart] != sp { throw HTTPParserError.invalidStatus }
                let reason = reasonStart + 1 < line.upperBound ? string(bytes, (reasonStart + 1)..<line.upperBound) : ""
                status = HTTPResponseStatus(statusCode: code, reasonPhrase: reason)
                fieldsStart = line.upperBound
                return
            }
            try field(bytes, line, into: &headers, framing: &framing, keep: keepFields)
        }
        if first { throw HTTPParserError.invalidStatus }
        guard let chosen = try framing.framing(isRequest: false, version: version) else { throw HTTPParserError.invalidTransferEncoding }
        return Response(status: status, version: version, fields: headers, framing: chosen,
                        facts: HeadFacts(keepAlive: framing.keepAlive(version), expectsContinue: false), fieldsStart: fieldsStart)
    }

    /// Field lines alone (a chunked body's trailer section).
    static func fields(_ bytes: UnsafeRawBufferPointer) throws -> HTTPHeaders {
        var headers: [(String, String)] = []
        var framing = FramingFields()
        try lines(bytes) { try field(bytes, $0, into: &headers, framing: &framing) }
        return HTTPHeaders(headers)
    }

    /// `name: value` with optional white space around the value; the framing fields are noted.
    private static func field(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>, into headers: inout [(String, String)], framing: inout FramingFields,
                              keep: Bool = true) throws {
        guard bytes[line.lowerBound] != sp && bytes[line.lowerBound] != tab else { throw HTTPParserError.invalidHeaderToken }  // obs-fold
        // The same split the raw heads use later; here the name must be a token and the value clean.
        let (nameRange, valueRange) = RawFields.split(bytes, line)
        guard nameRange.upperBound < line.upperBound, !nameRange.isEmpty else { throw HTTPParserError.invalidHeaderToken }
        for i in nameRange where !isTokenByte(bytes[i]) { throw HTTPParserError.invalidHeaderToken }
        for i in valueRange {
            let b = bytes[i]
            if b == 0 || b == cr || b == lf { throw HTTPParserError.invalidCharactersUsed }
        }
        try framing.note(bytes, nameRange, valueRange)
        if keep { headers.append((string(bytes, nameRange), string(bytes, valueRange))) }
    }

    private static func parseVersion(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>) throws -> HTTPVersion {
        // "HTTP/1.0" or "HTTP/1.1"
        guard r.count == 8, bytes[r.lowerBound] == UInt8(ascii: "H"), bytes[r.lowerBound + 1] == UInt8(ascii: "T"),
              bytes[r.lowerBound + 2] == UInt8(ascii: "T"), bytes[r.lowerBound + 3] == UInt8(ascii: "P"),
              bytes[r.lowerBound + 4] == UInt8(ascii: "/"), bytes[r.lowerBound + 5] == UInt8(ascii: "1"),
              bytes[r.lowerBound + 6] == UInt8(ascii: ".") else { throw HTTPParserError.invalidVersion }
        switch bytes[r.lowerBound + 7] {
        case UInt8(ascii: "1"): return .http1_1
        case UInt8(ascii: "0"): return .http1_0
        default: throw HTTPParserError.invalidVersion
        }
    }

    @inline(__always)
    static func string(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r]), as: UTF8.self)
    }

    @inline(__always)
    private static func firstIndex(of byte: UInt8, in bytes: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int? {
        var i = r.lowerBound
        while i < r.upperBound {
            if bytes[i] == byte { return i }
            i += 1
        }
        return nil
    }

    /// RFC 9110 tchar.
    @inline(__always)
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"),
             UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"),
             UInt8(ascii: "~"): return true
        default: return false
        }
    }
}

/// What the last decoded head says about its connection, worked out while it was read (so the
/// handler does not scan the fields again).
public struct HeadFacts: Sendable, Equatable {
    /// The connection persists after this message (version and Connection, RFC 9112 9.3).
    public var keepAlive: Bool
    /// `Expect: 100-continue` (requests).
    public var expectsContinue: Bool
    /// An `Upgrade` field is present.
    public var upgrade = false
    /// An `Expect` field is present (any expectation).
    public var expect = false
    /// `X-Forwarded-Proto` and `X-Request-Id` are present (requests).
    public var forwardedProto = false
    public var requestID = false
}

/// The header fields that decide a message's framing, noted while the head is read.
struct FramingFields {
    var contentLength: Int?
    var transferEncoding = false
    var chunkedLast = false
    var connectionUpgrade = false
    var connectionClose = false
    var connectionKeepAlive = false
    var hasUpgrade = false
    var expectsContinue = false
    var hasForwardedProto = false
    var hasExpect = false
    var hasRequestID = false

    /// RFC 9112 9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive`.
    func keepAlive(_ version: HTTPVersion) -> Bool {
        if connectionClose { return false }
        return version == .http1_1 || connectionKeepAlive
    }

    /// Compares a field name with a lower-case ASCII name, ignoring case.
    @inline(__always)
    static func nameIs(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>, _ lower: StaticString) -> Bool {
        HeaderName.is(UnsafeRawBufferPointer(rebasing: bytes[r]), lower)
    }

    /// Notes a field that bears on framing or the connection, reading its value's bytes in place.
    mutating func note(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>, _ valueRange: Range<Int>) throws {
        switch name.count {
        case 14 where Self.nameIs(bytes, name, "content-length"):
            guard !valueRange.isEmpty, valueRange.count <= 18 else { throw HTTPParserError.invalidContentLength }
            var n = 0
            for i in valueRange {
                let d = bytes[i]
                guard d >= 48 && d <= 57 else { throw HTTPParserError.invalidContentLength }
                n = n * 10 + Int(d - 48)
            }
            if let earlier = contentLength, earlier != n { throw HTTPParserError.invalidContentLength }
            contentLength = n
        case 17 where Self.nameIs(bytes, name, "transfer-encoding"):
            transferEncoding = true
            // The last coding listed decides (`gzip, chunked`); a later field line continues the list.
            var last: Range<Int> = valueRange.upperBound..<valueRange.upperBound
            Self.tokens(bytes, valueRange) { last = $0 }
            chunkedLast = Self.nameIs(bytes, last, "chunked")
        case 10 where Self.nameIs(bytes, name, "connection"):
            Self.tokens(bytes, valueRange) { t in
                switch t.count {
                case 7 where Self.nameIs(bytes, t, "upgrade"): connectionUpgrade = true
                case 5 where Self.nameIs(bytes, t, "close"): connectionClose = true
                case 10 where Self.nameIs(bytes, t, "keep-alive"): connectionKeepAlive = true
                default: break
                }
            }
        case 6 where Self.nameIs(bytes, name, "expect"):
            hasExpect = true
            if Self.nameIs(bytes, valueRange, "100-continue") { expectsContinue = true }
        case 7 where Self.nameIs(bytes, name, "upgrade"):
            hasUpgrade = true
        case 17 where Self.nameIs(bytes, name, "x-forwarded-proto"):
            hasForwardedProto = true
        case 12 where Self.nameIs(bytes, name, "x-request-id"):
            hasRequestID = true
        default:
            break
        }
    }

    /// The comma-separated elements of a value, without surrounding white space, empty ones skipped.
    @inline(__always)
    static func tokens(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = r.lowerBound
        var i = r.lowerBound
        while i <= r.upperBound {
            if i == r.upperBound || bytes[i] == UInt8(ascii: ",") {
                var a = start, b = i
                while a < b && (bytes[a] == 32 || bytes[a] == 9) { a += 1 }
                while b > a && (bytes[b - 1] == 32 || bytes[b - 1] == 9) { b -= 1 }
                if a < b { body(a..<b) }
                start = i + 1
            }
            i += 1
        }
    }

    /// Nil: a request with a Transfer-Encoding that does not end in chunked, or any in HTTP/1.0 (RFC 9112 6.1, 6.3: 400).
    func framing(isRequest: Bool, version: HTTPVersion) throws -> HTTP1HeadScanner.Framing? {
        if transferEncoding {
            // Both: refused rather than guessed (the request-smuggling ambiguity).
            if contentLength != nil { throw HTTPParserError.unexpectedContentLength }
            // HTTP/1.0 has no transfer codings: such framing is faulty (RFC 9112 6.1); a response runs until close.
            if version == .http1_0 { return isRequest ? nil : .untilClose }
            if chunkedLast { return .chunked }
            return isRequest ? nil : .untilClose
        }
        if let n = contentLength { return .length(n) }
        return isRequest ? .length(0) : .untilClose
    }
}

extension Substring {
    func trimmingASCIISpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}

extension HTTPParserError {
    /// A Transfer-Encoding a request cannot be framed by.
    static var invalidTransferEncoding: HTTPParserError { .invalidConstant }
}
