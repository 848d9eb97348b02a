import NIOCore
import NIOHTTP1
import Testing

@testable import InterposeHTTP1

// Request heads kept as their received bytes (`HTTP1Decoder(kind: .request, rawHeads: true)`): their
// fields, what they say about the connection (`facts`), framing in raw mode, writing them upstream with
// `HTTP1Encoder.requestHead(_ raw:uri:edits:into:)`, `HeaderEdits.value(_:in: RawFields)`, round trips.
//
// Helpers reused from DecoderTests.swift: feedAll, decode, summary, body, endCount, requestHead, headerList.

// MARK: - Helpers

private let rawRequestSplits: [Int?] = [nil, 1, 3]

/// Decodes `text` with a raw-head request decoder.
private func decodeRawRequests(_ text: String, splitEvery: Int? = nil) throws -> [HTTP1Part] {
    var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
    return try feedAll(Array(text.utf8), into: &decoder, splitEvery: splitEvery)
}

private func rawRequestHead(_ part: HTTP1Part?) -> RawRequestHead? {
    if case .rawRequestHead(let head)? = part { return head }
    return nil
}

/// The raw head of the first request in `text`.
private func rawRequest(of text: String, splitEvery: Int? = nil) throws -> RawRequestHead {
    let parts = try decodeRawRequests(text, splitEvery: splitEvery)
    return try #require(rawRequestHead(parts.first), "no raw request head decoded from \(text.debugDescription)")
}


/// Encodes the raw head decoded from `request` with `uri` and `edits`; the bytes written and the encoder (for the body).
private func encodeRawRequest(_ request: String, uri: String = "/x", edits: HeaderEdits?) throws -> (String, HTTP1Encoder) {
    let raw = try rawRequest(of: request)
    var encoder = HTTP1Encoder()
    var out = ByteBuffer()
    encoder.requestHead(raw, uri: uri, edits: edits, into: &out)
    return (bytesText(out), encoder)
}


private func trailersOf(_ parts: [HTTP1Part]) -> HTTPHeaders? {
    for case .end(let trailers) in parts { return trailers }
    return nil
}

// MARK: - Decoder with raw request heads

@Suite("HTTP1Decoder: raw request heads")
struct RawRequestDecoderTests {
    static let request = "POST /submit?a=1&b=2 HTTP/1.1\r\n"
        + "Host: example.com\r\n"
        + "Cookie: a=1\r\n"
        + "X-Trim: \t spaced  value \t\r\n"
        + "Accept:*/*\r\n"
        + "cookie:b=2\r\n"
        + "Empty:\r\n"
        + "COOKIE:   c=3  \r\n"
        + "Content-Length: 5\r\n"
        + "\r\n"
        + "hello"

    static let expectedHeaders = [
        "Host=example.com", "Cookie=a=1", "X-Trim=spaced  value", "Accept=*/*", "cookie=b=2", "Empty=", "COOKIE=c=3", "Content-Length=5",
    ]

    @Test("a request gives .rawRequestHead: method, uri, version, fields read by name in any case", arguments: rawRequestSplits)
    func rawHeadFields(split: Int?) throws {
        let parts = try decodeRawRequests(Self.request, splitEvery: split)
        #expect(summary(parts) == ["POST /submit?a=1&b=2 HTTP/1.1", "body:hello", "end"])
        let raw = try #require(rawRequestHead(parts.first), "first part is \(String(describing: parts.first))")
        #expect(raw.method == .POST)
        #expect(raw.uri == "/submit?a=1&b=2")
        #expect(raw.version == .http1_1)

        for name in ["host", "HOST", "Host", "hOsT"] {
            #expect(raw.fields.first(name) == "example.com", "first(\(name))")
            #expect(raw.fields.contains(name), "contains(\(name))")
        }
        #expect(raw.fields.first("x-missing") == nil)
        #expect(raw.fields.first("hos") == nil)
        #expect(raw.fields.first("hostx") == nil)
        #expect(raw.fields.first("") == nil)
        #expect(!raw.fields.contains("x-missing"))
        #expect(!raw.fields.contains("hos"))

        // Every Cookie line's value, in order, whatever the case of the name.
        #expect(raw.fields.values("cookie") == ["a=1", "b=2", "c=3"])
        #expect(raw.fields.values("COOKIE") == ["a=1", "b=2", "c=3"])
        #expect(raw.fields.first("Cookie") == "a=1")
        #expect(raw.fields.values("x-missing") == [])
        #expect(raw.fields.values("host") == ["example.com"])

        // Values trimmed of spaces and tabs around them (not inside).
        #expect(raw.fields.first("x-trim") == "spaced  value")
        #expect(raw.fields.values("X-TRIM") == ["spaced  value"])
        #expect(raw.fields.first("accept") == "*/*")
        #expect(raw.fields.first("empty") == "")
        #expect(raw.fields.contains("Empty"))
        #expect(raw.fields.first("content-length") == "5")

        #expect(headerList(raw.fields.headers) == Self.expectedHeaders)
        #expect(raw.fields.headers["cookie"] == ["a=1", "b=2", "c=3"])
    }

    @Test("raw.head equals the non-raw decoder's head for the same bytes", arguments: rawRequestSplits)
    func headMatchesNonRaw(split: Int?) throws {
        let rawParts = try decodeRawRequests(Self.request, splitEvery: split)
        let plainParts = try decode(Self.request, splitEvery: split)
        #expect(summary(rawParts) == summary(plainParts))
        #expect(body(rawParts) == body(plainParts))
        let raw = try #require(rawRequestHead(rawParts.first))
        let plain = try #require(requestHead(plainParts.first))
        let head = raw.head
        #expect(head.method == plain.method)
        #expect(head.uri == plain.uri)
        #expect(head.version == plain.version)
        #expect(headerList(head.headers) == headerList(plain.headers))
        #expect(headerList(head.headers) == Self.expectedHeaders)
        #expect(head == plain)
    }

    @Test("raw.head matches the non-raw head for other request shapes", arguments: [
        "GET / HTTP/1.1\r\n\r\n",
        "GET /a HTTP/1.0\r\nHost: h\r\n\r\n",
        "\r\n\r\nGET /after-empty-lines HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /lf HTTP/1.1\nHost: h\nX-A:  1 \r\nX-B:2\n\n",
        "PURGE /cache HTTP/1.1\r\nHost: h\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        "GET http://example.com/abs?x=%20 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    ], rawRequestSplits)
    func otherShapes(text: String, split: Int?) throws {
        let rawParts = try decodeRawRequests(text, splitEvery: split)
        let plainParts = try decode(text, splitEvery: split)
        #expect(summary(rawParts) == summary(plainParts))
        let raw = try #require(rawRequestHead(rawParts.first))
        let plain = try #require(requestHead(plainParts.first))
        #expect(raw.method == plain.method)
        #expect(raw.uri == plain.uri)
        #expect(raw.version == plain.version)
        #expect(headerList(raw.fields.headers) == headerList(plain.headers))
        #expect(raw.head == plain)
    }

    @Test("no .requestHead parts come from a raw-head decoder")
    func onlyRawHeads() throws {
        let parts = try decodeRawRequests("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(parts.count == 2)
        #expect(rawRequestHead(parts.first) != nil)
        #expect(requestHead(parts.first) == nil)
    }

    @Test("HTTP/1.0 request line, a head without fields, bare LF line ends", arguments: rawRequestSplits)
    func shapes(split: Int?) throws {
        let ten = try rawRequest(of: "DELETE /d HTTP/1.0\r\nHost: a\r\n\r\n", splitEvery: split)
        #expect(ten.method == .DELETE)
        #expect(ten.uri == "/d")
        #expect(ten.version == .http1_0)
        #expect(ten.fields.first("host") == "a")

        let none = try rawRequest(of: "GET / HTTP/1.1\r\n\r\n", splitEvery: split)
        #expect(none.fields.headers.count == 0)
        #expect(none.fields.first("host") == nil)
        #expect(none.fields.values("host") == [])
        #expect(!none.fields.contains("host"))

        let lf = try rawRequest(of: "GET /lf HTTP/1.1\nHost: a\nX-A:\t1\t\r\nX-B: 2\n\n", splitEvery: split)
        #expect(lf.uri == "/lf")
        #expect(headerList(lf.fields.headers) == ["Host=a", "X-A=1", "X-B=2"])
        #expect(lf.fields.first("x-b") == "2")
    }

    @Test("empty lines before the request line are skipped: the raw head starts at the request line", arguments: rawRequestSplits)
    func leadingEmptyLines(split: Int?) throws {
        let parts = try decodeRawRequests("\r\n\n\r\nGET /p HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n", splitEvery: split)
        #expect(summary(parts) == ["GET /p HTTP/1.1", "end"])
        let raw = try #require(rawRequestHead(parts.first))
        #expect(headerList(raw.fields.headers) == ["Host=a", "X-A=1"])
        #expect(raw.fields.first("x-a") == "1")
    }
}

// MARK: - Facts

@Suite("HTTP1Decoder: raw request head facts")
struct RawRequestFactsTests {
    private static func expected(
        keepAlive: Bool = true, expectsContinue: Bool = false, upgrade: Bool = false, expect: Bool = false,
        forwardedProto: Bool = false, requestID: Bool = false
    ) -> HeadFacts {
        HeadFacts(keepAlive: keepAlive, expectsContinue: expectsContinue, upgrade: upgrade, expect: expect,
                  forwardedProto: forwardedProto, requestID: requestID)
    }

    static let cases: [(String, String, HeadFacts)] = [
        ("1.1 default", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", expected()),
        ("1.1 Connection: close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", expected(keepAlive: false)),
        ("1.1 connection: CLOSE", "GET / HTTP/1.1\r\nconnection: CLOSE\r\n\r\n", expected(keepAlive: false)),
        ("1.1 Connection: keep-alive, close", "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", expected(keepAlive: false)),
        ("1.1 Connection: closed (not close)", "GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", expected()),
        ("1.0 default", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", expected(keepAlive: false)),
        ("1.0 Connection: keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", expected()),
        ("1.0 Connection: Keep-Alive, Upgrade", "GET / HTTP/1.0\r\nConnection: Keep-Alive, Upgrade\r\n\r\n", expected()),
        ("1.1 Connection: Keep-Alive, Upgrade", "GET / HTTP/1.1\r\nConnection: Keep-Alive, Upgrade\r\n\r\n", expected()),
        ("1.0 keep-alive in a second Connection line", "GET / HTTP/1.0\r\nConnection: x-a\r\nConnection: keep-alive\r\n\r\n", expected()),
        ("Expect: 100-continue", "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", expected(expectsContinue: true, expect: true)),
        ("EXPECT: 100-Continue", "POST / HTTP/1.1\r\nEXPECT: 100-Continue\r\nContent-Length: 0\r\n\r\n", expected(expectsContinue: true, expect: true)),
        ("expect:  100-CONTINUE  ", "POST / HTTP/1.1\r\nexpect:  100-CONTINUE  \r\nContent-Length: 0\r\n\r\n", expected(expectsContinue: true, expect: true)),
        ("Expect: foo", "POST / HTTP/1.1\r\nExpect: foo\r\nContent-Length: 0\r\n\r\n", expected(expect: true)),
        ("Expect: empty", "POST / HTTP/1.1\r\nExpect:\r\nContent-Length: 0\r\n\r\n", expected(expect: true)),
        ("Upgrade alone", "GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", expected(upgrade: true)),
        ("upgrade lower case", "GET / HTTP/1.1\r\nupgrade: websocket\r\nConnection: upgrade\r\n\r\n", expected(upgrade: true)),
        ("X-Forwarded-Proto", "GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n", expected(forwardedProto: true)),
        ("x-forwarded-proto lower case", "GET / HTTP/1.1\r\nx-forwarded-proto: http\r\n\r\n", expected(forwardedProto: true)),
        ("X-Request-Id", "GET / HTTP/1.1\r\nX-Request-Id: abc\r\n\r\n", expected(requestID: true)),
        ("X-REQUEST-ID upper case", "GET / HTTP/1.1\r\nX-REQUEST-ID: abc\r\n\r\n", expected(requestID: true)),
        ("look-alike names", "GET / HTTP/1.1\r\nX-Forwarded-Protocol: x\r\nX-Request-Ids: y\r\nExpects: z\r\nUpgrades: w\r\n\r\n", expected()),
        ("everything", "POST / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nUpgrade: h2c\r\nX-Forwarded-Proto: https\r\nX-Request-Id: r\r\nContent-Length: 0\r\n\r\n",
         expected(expectsContinue: true, upgrade: true, expect: true, forwardedProto: true, requestID: true)),
    ]

    @Test("raw.facts: keepAlive, expectsContinue, expect, upgrade, forwardedProto, requestID", arguments: cases, [nil, 1] as [Int?])
    func facts(_ testCase: (String, String, HeadFacts), split: Int?) throws {
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        let parts = try feedAll(Array(testCase.1.utf8), into: &decoder, splitEvery: split)
        let raw = try #require(rawRequestHead(parts.first), "\(testCase.0)")
        #expect(raw.facts == testCase.2, "\(testCase.0)")
        #expect(decoder.lastHead == testCase.2, "\(testCase.0): lastHead")
    }

    @Test("each pipelined head has its own facts")
    func pipelinedFacts() throws {
        let parts = try decodeRawRequests(
            "GET /1 HTTP/1.1\r\nExpect: 100-continue\r\n\r\nGET /2 HTTP/1.1\r\nConnection: close\r\nX-Request-Id: 2\r\n\r\n")
        let heads = parts.compactMap { rawRequestHead($0) }
        try #require(heads.count == 2)
        #expect(heads[0].facts == Self.expected(expectsContinue: true, expect: true))
        #expect(heads[1].facts == Self.expected(keepAlive: false, requestID: true))
    }
}

// MARK: - Framing in raw mode

@Suite("HTTP1Decoder: raw request framing")
struct RawRequestFramingTests {
    @Test("Content-Length body", arguments: rawRequestSplits)
    func contentLength(split: Int?) throws {
        let payload = String(repeating: "0123456789", count: 30)
        let text = "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: \(payload.utf8.count)\r\n\r\n" + payload
        let parts = try decodeRawRequests(text, splitEvery: split)
        #expect(summary(parts) == ["PUT /up HTTP/1.1", "body:" + payload, "end"])
        #expect(endCount(parts) == 1)
        let raw = try #require(rawRequestHead(parts.first))
        #expect(raw.fields.first("content-length") == "300")
    }

    @Test("chunked body with extensions and trailers", arguments: rawRequestSplits)
    func chunked(split: Int?) throws {
        let text = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n"
            + "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\nX-U:  two \r\n\r\n"
        let parts = try decodeRawRequests(text, splitEvery: split)
        #expect(summary(parts) == ["POST /c HTTP/1.1", "body:hello world", "end:x-t=1,X-U=two"])
        let raw = try #require(rawRequestHead(parts.first))
        #expect(headerList(raw.fields.headers) == ["Host=a", "Transfer-Encoding=chunked", "Trailer=x-t"])
    }

    @Test("a request without a length or chunks has no body; the next one follows", arguments: rawRequestSplits)
    func noBody(split: Int?) throws {
        let parts = try decodeRawRequests("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n", splitEvery: split)
        #expect(summary(parts) == ["GET /1 HTTP/1.1", "end", "GET /2 HTTP/1.1", "end"])
    }

    static let first = "POST /1 HTTP/1.1\r\nHost: one\r\nX-N: 1\r\nContent-Length: 4\r\n\r\nabcd"
    static let second = "POST /2 HTTP/1.1\r\nHost: two\r\nX-N: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
    static let third = "GET /3 HTTP/1.1\r\nHost: three\r\nX-N: 3\r\n\r\n"

    @Test("pipelined requests: each raw head keeps its own fields after later heads and more feeds", arguments: rawRequestSplits)
    func pipelined(split: Int?) throws {
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        // Two requests and the start of a third in one buffer: the decoder keeps bytes that share storage with the heads.
        let cut = 20
        let firstBuffer = Self.first + Self.second + String(Self.third.prefix(cut))
        var parts = try feedAll(Array(firstBuffer.utf8), into: &decoder, splitEvery: split)
        #expect(summary(parts) == ["POST /1 HTTP/1.1", "body:abcd", "end", "POST /2 HTTP/1.1", "body:xyz", "end"])
        let early = parts.compactMap { rawRequestHead($0) }
        try #require(early.count == 2)
        #expect(headerList(early[0].fields.headers) == ["Host=one", "X-N=1", "Content-Length=4"])
        #expect(headerList(early[1].fields.headers) == ["Host=two", "X-N=2", "Transfer-Encoding=chunked"])

        // More bytes: the rest of the third request and a fourth that overwrites nothing the heads hold.
        let more = String(Self.third.dropFirst(cut)) + "GET /4 HTTP/1.1\r\nHost: four\r\nX-N: 4\r\n\r\n"
        parts += try feedAll(Array(more.utf8), into: &decoder, splitEvery: split)
        #expect(summary(parts) == [
            "POST /1 HTTP/1.1", "body:abcd", "end", "POST /2 HTTP/1.1", "body:xyz", "end", "GET /3 HTTP/1.1", "end", "GET /4 HTTP/1.1", "end",
        ])
        let heads = parts.compactMap { rawRequestHead($0) }
        try #require(heads.count == 4)
        #expect(heads.map(\.uri) == ["/1", "/2", "/3", "/4"])
        #expect(heads.map { $0.fields.first("host") } == ["one", "two", "three", "four"])
        #expect(heads.map { $0.fields.values("x-n") } == [["1"], ["2"], ["3"], ["4"]])
        #expect(headerList(heads[0].fields.headers) == ["Host=one", "X-N=1", "Content-Length=4"])
        #expect(headerList(heads[1].fields.headers) == ["Host=two", "X-N=2", "Transfer-Encoding=chunked"])
        #expect(headerList(heads[2].fields.headers) == ["Host=three", "X-N=3"])
        // The early copies still read the same.
        #expect(early[0].fields.first("x-n") == "1")
        #expect(early[1].fields.first("x-n") == "2")
        #expect(decoder.bufferedBytes == 0)
    }

    @Test("pipelined heads in one buffer stay right after the next buffer is fed into the same decoder")
    func pipelinedOneBuffer() throws {
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        decoder.feed(ByteBuffer(string: Self.first + Self.second))
        var parts: [HTTP1Part] = []
        while let part = try decoder.next() { parts.append(part) }
        let heads = parts.compactMap { rawRequestHead($0) }
        try #require(heads.count == 2)
        decoder.feed(ByteBuffer(string: Self.third))
        #expect(requestSummary(try decoder.next()) == "GET /3 HTTP/1.1")
        #expect(headerList(heads[0].fields.headers) == ["Host=one", "X-N=1", "Content-Length=4"])
        #expect(headerList(heads[1].fields.headers) == ["Host=two", "X-N=2", "Transfer-Encoding=chunked"])
        #expect(heads[1].fields.first("HOST") == "two")
    }

    private func requestSummary(_ part: HTTP1Part?) -> String? {
        guard let raw = rawRequestHead(part) else { return nil }
        return "\(raw.method.rawValue) \(raw.uri) \(raw.version)"
    }

    @Test("an upgrade request stops decoding; the bytes after it are handed over", arguments: rawRequestSplits)
    func upgradeStops(split: Int?) throws {
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        let text = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n\u{0}\u{1}RAW GET / HTTP/1.1\r\n\r\n"
        let parts = try feedAll(Array(text.utf8), into: &decoder, splitEvery: split)
        #expect(summary(parts) == ["GET /chat HTTP/1.1", "end"])
        #expect(decoder.isStopped)
        #expect(try decoder.next().isNone)
        let raw = try #require(rawRequestHead(parts.first))
        #expect(raw.facts.upgrade)
        #expect(raw.facts.keepAlive)
        #expect(raw.fields.first("upgrade") == "websocket")
        let taken = decoder.takeRemainingBytes()
        let rest = try #require(taken)
        #expect(bytesText(rest) == "\u{0}\u{1}RAW GET / HTTP/1.1\r\n\r\n")
    }

    @Test("resume after a refused upgrade decodes the next request")
    func upgradeResume() throws {
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        let text = "GET /chat HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\nGET /next HTTP/1.1\r\nHost: n\r\n\r\n"
        var parts = try feedAll(Array(text.utf8), into: &decoder)
        #expect(summary(parts) == ["GET /chat HTTP/1.1", "end"])
        #expect(decoder.isStopped)
        decoder.resume()
        while let part = try decoder.next() { parts.append(part) }
        #expect(summary(parts) == ["GET /chat HTTP/1.1", "end", "GET /next HTTP/1.1", "end"])
        #expect(rawRequestHead(parts[2])?.fields.first("host") == "n")
    }

    @Test("Upgrade without Connection: upgrade does not stop decoding")
    func upgradeWithoutConnection() throws {
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        let parts = try feedAll(Array("GET /a HTTP/1.1\r\nUpgrade: h2c\r\n\r\nGET /b HTTP/1.1\r\n\r\n".utf8), into: &decoder)
        #expect(summary(parts) == ["GET /a HTTP/1.1", "end", "GET /b HTTP/1.1", "end"])
        #expect(!decoder.isStopped)
    }

    static let malformed: [(String, String)] = [
        ("Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"),
        ("Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("obs-fold (space)", "GET / HTTP/1.1\r\nX-A: b\r\n continued\r\n\r\n"),
        ("obs-fold (tab)", "GET / HTTP/1.1\r\nX-A: b\r\n\tcontinued\r\n\r\n"),
        ("Content-Length not a number", "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\nx"),
        ("negative Content-Length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
        ("empty Content-Length", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"),
        ("Content-Length list", "POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx"),
        ("two different Content-Lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"),
        ("Transfer-Encoding not ending in chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        ("bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        ("bad field name", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
        ("space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
        ("bad version", "GET / HTTP/2.0\r\n\r\n"),
        ("no request target", "GET HTTP/1.1\r\n\r\n"),
    ]

    @Test("malformed requests still throw in raw mode", arguments: malformed, [nil, 1] as [Int?])
    func errors(_ testCase: (String, String), split: Int?) {
        #expect(throws: HTTPParserError.self, "\(testCase.0)") {
            try decodeRawRequests(testCase.1, splitEvery: split)
        }
    }

    @Test("the errors are the non-raw decoder's")
    func errorKinds() {
        #expect(throws: HTTPParserError.unexpectedContentLength) {
            try decodeRawRequests("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
        }
        #expect(throws: HTTPParserError.invalidHeaderToken) {
            try decodeRawRequests("GET / HTTP/1.1\r\nX-A: b\r\n continued\r\n\r\n")
        }
        #expect(throws: HTTPParserError.invalidContentLength) {
            try decodeRawRequests("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n")
        }
        #expect(throws: HTTPParserError.invalidContentLength) {
            try decodeRawRequests("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        }
    }

    @Test("after an error the decoder yields nothing more")
    func failedStays() throws {
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        decoder.feed(ByteBuffer(string: "GET / HTTP/1.1\r\nX-A: b\r\n continued\r\n\r\nGET / HTTP/1.1\r\n\r\n"))
        #expect(throws: HTTPParserError.self) { try decoder.next() }
        #expect(try decoder.next().isNone)
    }
}

// MARK: - Encoder writing raw request heads

@Suite("HTTP1Encoder: raw request heads")
struct RawRequestEncoderTests {
    static let plain = "GET /orig?q=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-A:  0 \t\r\ncookie: c=1\r\nTE: trailers\r\nCookie: c=2\r\n\r\n"

    @Test("no edits: the request line with the given uri, then every field line exactly as received")
    func noEdits() throws {
        var (head, encoder) = try encodeRawRequest(Self.plain, uri: "/x", edits: nil)
        #expect(head == "GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-A:  0 \t\r\ncookie: c=1\r\nTE: trailers\r\nCookie: c=2\r\n\r\n")
        #expect(encodeRest(&encoder, []) == "")
    }

    @Test("the uri argument is written, not raw.uri; the method as received")
    func uriArgument() throws {
        let (head, _) = try encodeRawRequest("POST /orig HTTP/1.1\r\nContent-Length: 0\r\n\r\n", uri: "/rewritten/path?x=1", edits: nil)
        #expect(head == "POST /rewritten/path?x=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        let (purge, _) = try encodeRawRequest("PURGE /c HTTP/1.1\r\nHost: h\r\n\r\n", uri: "/c", edits: nil)
        #expect(purge == "PURGE /c HTTP/1.1\r\nHost: h\r\n\r\n")
    }

    @Test("an HTTP/1.0 request goes upstream as HTTP/1.1")
    func alwaysHTTP11() throws {
        let (head, _) = try encodeRawRequest("GET /old HTTP/1.0\r\nHost: a\r\n\r\n", uri: "/x", edits: nil)
        #expect(head == "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        let (edited, _) = try encodeRawRequest("GET /old HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", uri: "/x", edits: HeaderEdits())
        #expect(edited == "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    }

    @Test("a head without fields: the request line and the empty line")
    func noFields() throws {
        let (head, _) = try encodeRawRequest("GET / HTTP/1.1\r\n\r\n", edits: nil)
        #expect(head == "GET /x HTTP/1.1\r\n\r\n")
        let (edited, _) = try encodeRawRequest("GET / HTTP/1.1\n\n", edits: HeaderEdits())
        #expect(edited == "GET /x HTTP/1.1\r\n\r\n")
    }

    static let hopByHop = "GET /h HTTP/1.1\r\n"
        + "Host: a\r\n"
        + "Connection: keep-alive, X-Secret\r\n"
        + "Keep-Alive: timeout=5\r\n"
        + "X-Secret: 1\r\n"
        + "Proxy-Connection: keep-alive\r\n"
        + "te: trailers\r\n"
        + "TRAILER: X-T\r\n"
        + "upgrade: h2c\r\n"
        + "x-secret: 2\r\n"
        + "X-Secretive: kept\r\n"
        + "Accept: */*\r\n"
        + "X-SECRET: 3\r\n"
        + "user-AGENT:  curl \r\n"
        + "cOnNeCtIoN: close\r\n"
        + "\r\n"

    @Test("default edits: hop-by-hop lines and the names Connection lists dropped; the rest keep spelling and order")
    func hopByHopRemoved() throws {
        let (head, _) = try encodeRawRequest(Self.hopByHop, edits: HeaderEdits())
        #expect(head == "GET /x HTTP/1.1\r\nHost: a\r\nX-Secretive: kept\r\nAccept: */*\r\nuser-AGENT:  curl \r\n\r\n")
    }

    @Test("removeHopByHop = false keeps every line")
    func hopByHopKept() throws {
        var edits = HeaderEdits()
        edits.removeHopByHop = false
        let (head, _) = try encodeRawRequest(Self.hopByHop, uri: "/h", edits: edits)
        #expect(head == Self.hopByHop)
    }

    static let request = "POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nX-B: b\r\nContent-Length: 2\r\n\r\n"

    @Test("add appends after the received lines")
    func add() throws {
        var edits = HeaderEdits()
        edits.add("x-forwarded-proto", "http")
        let (head, _) = try encodeRawRequest(Self.request, edits: edits)
        #expect(head == "POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nX-B: b\r\nContent-Length: 2\r\nx-forwarded-proto: http\r\n\r\n")
    }

    @Test("remove drops the received line, any case", arguments: ["expect", "EXPECT", "Expect"])
    func remove(name: String) throws {
        var edits = HeaderEdits()
        edits.remove(name)
        let (head, _) = try encodeRawRequest(Self.request, edits: edits)
        #expect(head == "POST /x HTTP/1.1\r\nHost: a\r\nX-B: b\r\nContent-Length: 2\r\n\r\n")
    }

    @Test("set replaces the received line (the new one written after the received lines)")
    func set() throws {
        var edits = HeaderEdits()
        edits.set("host", "b")
        let (head, _) = try encodeRawRequest(Self.request, edits: edits)
        #expect(head == "POST /x HTTP/1.1\r\nExpect: 100-continue\r\nX-B: b\r\nContent-Length: 2\r\nhost: b\r\n\r\n")
    }

    @Test("set replaces every received line of the name")
    func setReplacesAll() throws {
        var edits = HeaderEdits()
        edits.set("cookie", "z")
        let (head, _) = try encodeRawRequest(Self.plain, edits: edits)
        #expect(head == "GET /x HTTP/1.1\r\nHost: a\r\nX-A:  0 \t\r\ncookie: z\r\n\r\n")
    }

    @Test("several edits together")
    func combined() throws {
        var edits = HeaderEdits()
        edits.set("host", "b")
        edits.remove("expect")
        edits.add("x-forwarded-proto", "http")
        edits.add("x-request-id", "r1")
        let (head, _) = try encodeRawRequest(Self.request, edits: edits)
        #expect(head == "POST /x HTTP/1.1\r\nX-B: b\r\nContent-Length: 2\r\nhost: b\r\nx-forwarded-proto: http\r\nx-request-id: r1\r\n\r\n")
    }

    static let upgrade = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n"

    @Test("keepUpgrade: Upgrade kept, connection: upgrade written")
    func keepUpgrade() throws {
        var edits = HeaderEdits()
        edits.keepUpgrade = true
        let (head, _) = try encodeRawRequest(Self.upgrade, uri: "/chat", edits: edits)
        #expect(head == "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nconnection: upgrade\r\n\r\n")
    }

    @Test("without keepUpgrade an upgrade request loses Upgrade and Connection")
    func dropUpgrade() throws {
        let (head, _) = try encodeRawRequest(Self.upgrade, uri: "/chat", edits: HeaderEdits())
        #expect(head == "GET /chat HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\n\r\n")
    }

    @Test("a kept Transfer-Encoding: chunked makes the body chunk-framed and end writes the last chunk", arguments: [
        "Transfer-Encoding: chunked", "transfer-encoding: gzip, CHUNKED", "TRANSFER-ENCODING:  chunked \t",
    ])
    func chunked(line: String) throws {
        for edits in [nil, HeaderEdits()] as [HeaderEdits?] {
            let request = "POST /c HTTP/1.1\r\nHost: a\r\n\(line)\r\n\r\n"
            var (head, encoder) = try encodeRawRequest(request, uri: "/c", edits: edits)
            #expect(head == request)
            #expect(encodeRest(&encoder, ["hello", "", "abcdefghijklmnopqrstuvwxyz"]) == "5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n")
        }
    }

    @Test("chunked end with trailers: the trailers before the final CRLF")
    func chunkedTrailers() throws {
        var (_, encoder) = try encodeRawRequest("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", edits: nil)
        #expect(encodeRest(&encoder, ["hi"], trailers: ["x-t": "1"]) == "2\r\nhi\r\n0\r\nx-t: 1\r\n\r\n")
    }

    @Test("with Content-Length the body is written as it is and end writes nothing")
    func contentLength() throws {
        for edits in [nil, HeaderEdits()] as [HeaderEdits?] {
            var (head, encoder) = try encodeRawRequest("POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\n", uri: "/p", edits: edits)
            #expect(head == "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
            #expect(encodeRest(&encoder, ["hel", "lo"]) == "hello")
        }
    }

    @Test("one encoder: a Content-Length request after a chunked one is not chunk-framed")
    func encoderReuse() throws {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.requestHead(try rawRequest(of: "POST /1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), uri: "/1", edits: nil, into: &out)
        encoder.body(ByteBuffer(string: "ab"), into: &out)
        encoder.end(nil, into: &out)
        encoder.requestHead(try rawRequest(of: "POST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\n"), uri: "/2", edits: nil, into: &out)
        encoder.body(ByteBuffer(string: "cd"), into: &out)
        encoder.end(nil, into: &out)
        #expect(bytesText(out) == "POST /1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\ncd")
    }

    // RFC 9110 7.6.1 has a proxy drop the fields Connection names, but what it sends must still be framed
    // (RFC 9112 6.3: a request without Content-Length or Transfer-Encoding has no body). A client naming
    // Content-Length or Transfer-Encoding in Connection must not make the proxy send the body's bytes
    // unframed, where the upstream reads them as a request of their own (request smuggling). Either the
    // request is refused when decoded or what goes upstream is this one request with its body.
    static let framingInConnectionCases: [(String, String, String)] = [
        ("Connection: Content-Length",
         "POST /p HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 32\r\n\r\n",
         "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("Connection: keep-alive, Transfer-Encoding",
         "POST /p HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
         "20\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n"),
    ]

    @Test("default edits: a framing field named in Connection does not leave the body unframed upstream", arguments: framingInConnectionCases)
    func framingListedInConnection(_ testCase: (String, String, String)) throws {
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        let parts: [HTTP1Part]
        do { parts = try feedAll(Array((testCase.1 + testCase.2).utf8), into: &decoder) } catch { return }  // refused: fine
        let raw = try #require(rawRequestHead(parts.first))
        let sent = body(parts)
        #expect(String(decoding: sent, as: UTF8.self) == "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", "\(testCase.0)")

        var encoder = HTTP1Encoder()
        var wire = ByteBuffer()
        encoder.requestHead(raw, uri: raw.uri, edits: HeaderEdits(), into: &wire)
        for case .body(let b) in parts { encoder.body(b, into: &wire) }
        encoder.end(trailersOf(parts), into: &wire)

        let upstream = try decode(bytesText(wire))
        #expect(summary(upstream) == ["POST /p HTTP/1.1", "body:GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", "end"],
                "\(testCase.0): upstream received \(bytesText(wire).debugDescription)")
    }

    static let bareLF = "GET /lf HTTP/1.1\nHost: a\nX-A: 1\r\nConnection: close\nX-B:  2 \n\n"

    @Test("bare LF line ends are written as CRLF")
    func bareLF() throws {
        let (plain, _) = try encodeRawRequest(Self.bareLF, edits: nil)
        #expect(plain == "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nConnection: close\r\nX-B:  2 \r\n\r\n")
        let (edited, _) = try encodeRawRequest(Self.bareLF, edits: HeaderEdits())
        #expect(edited == "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B:  2 \r\n\r\n")
        var edits = HeaderEdits()
        edits.remove("x-a")
        edits.add("x-n", "n")
        let (more, _) = try encodeRawRequest(Self.bareLF, edits: edits)
        #expect(more == "GET /x HTTP/1.1\r\nHost: a\r\nX-B:  2 \r\nx-n: n\r\n\r\n")
    }

    @Test("every line end in the written head is CRLF", arguments: [
        "GET / HTTP/1.1\nA: 1\nB: 2\n\n", "GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\n", "GET / HTTP/1.1\nA: 1\r\nB: 2\n\r\n",
    ])
    func onlyCRLF(text: String) throws {
        for edits in [nil, HeaderEdits()] as [HeaderEdits?] {
            let (head, _) = try encodeRawRequest(text, edits: edits)
            #expect(head == "GET /x HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n")
        }
    }
}

// MARK: - HeaderEdits.value over RawFields

@Suite("HeaderEdits.value over raw fields")
struct RawRequestEditsValueTests {
    @Test("value: the added value, nil when removed, the received value otherwise")
    func value() throws {
        let raw = try rawRequest(of: "GET / HTTP/1.1\r\nHost: a\r\nX-A:  0 \r\nx-a: 00\r\nX-B: b\r\n\r\n")
        let fields = raw.fields
        var edits = HeaderEdits()
        #expect(edits.value("host", in: fields) == "a")
        #expect(edits.value("HOST", in: fields) == "a")
        #expect(edits.value("x-a", in: fields) == "0")
        #expect(edits.value("x-missing", in: fields) == nil)

        edits.set("x-a", "1")
        #expect(edits.value("X-A", in: fields) == "1")
        edits.add("x-a", "2")
        #expect(edits.value("x-a", in: fields) == "2")

        edits.remove("host")
        #expect(edits.value("Host", in: fields) == nil)

        edits.add("x-new", "n")
        #expect(edits.value("X-New", in: fields) == "n")
        edits.remove("X-NEW")
        #expect(edits.value("x-new", in: fields) == nil)

        edits.add("x-b", "added")
        #expect(edits.value("x-b", in: fields) == "added")

        edits.remove("x-c")
        edits.add("x-c", "back")
        #expect(edits.value("x-c", in: fields) == "back")

        // The same answers as over the fields as NIO headers.
        for name in ["host", "x-a", "x-b", "x-c", "x-new", "x-missing"] {
            #expect(edits.value(name, in: fields) == edits.value(name, in: fields.headers), "\(name)")
        }
    }
}

// MARK: - Round trip

@Suite("Raw request round trip")
struct RawRequestRoundTripTests {
    static let requests: [String] = [
        "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
        "POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
        "PUT /chunks HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\nx-t: done\r\n\r\n",
        "GET /lf HTTP/1.1\nHost: h\nX-A:  spaced \n\n",
        "DELETE /old HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
        "\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    ]

    @Test("decode raw, encode with no edits and its own uri, decode again: same method, uri, headers, body", arguments: requests, rawRequestSplits)
    func roundTrip(text: String, split: Int?) throws {
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        let parts = try feedAll(Array(text.utf8), into: &decoder, splitEvery: split)
        let raw = try #require(rawRequestHead(parts.first))
        #expect(endCount(parts) == 1)

        var encoder = HTTP1Encoder()
        var wire = ByteBuffer()
        encoder.requestHead(raw, uri: raw.uri, edits: nil, into: &wire)
        for case .body(let b) in parts { encoder.body(b, into: &wire) }
        encoder.end(trailersOf(parts), into: &wire)

        var upstream = HTTP1Decoder(kind: .request)
        let again = try feedAll(Array(wire.readableBytesView), into: &upstream, splitEvery: split)
        let head = try #require(requestHead(again.first), "re-decoded \(bytesText(wire).debugDescription)")
        #expect(head.method == raw.method)
        #expect(head.uri == raw.uri)
        #expect(head.version == .http1_1)
        #expect(headerList(head.headers) == headerList(raw.fields.headers))
        #expect(body(again) == body(parts))
        #expect(endCount(again) == 1)
        #expect(trailersOf(again).map(headerList) == trailersOf(parts).map(headerList))
        #expect(upstream.bufferedBytes == 0)
    }

    @Test("pipelined requests re-encoded one after another decode to the same requests", arguments: rawRequestSplits)
    func pipelinedRoundTrip(split: Int?) throws {
        let text = Self.requests[0] + Self.requests[1] + Self.requests[2] + Self.requests[3]
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        let parts = try feedAll(Array(text.utf8), into: &decoder, splitEvery: split)

        var encoder = HTTP1Encoder()
        var wire = ByteBuffer()
        for part in parts {
            switch part {
            case .rawRequestHead(let raw): encoder.requestHead(raw, uri: raw.uri, edits: nil, into: &wire)
            case .body(let b): encoder.body(b, into: &wire)
            case .end(let trailers): encoder.end(trailers, into: &wire)
            default: Issue.record("unexpected part \(part)")
            }
        }
        let again = try decode(bytesText(wire), splitEvery: split)
        #expect(summary(again) == summary(parts))
        let rawHeads = parts.compactMap { rawRequestHead($0) }
        let heads = again.compactMap { requestHead($0) }
        #expect(heads.map { headerList($0.headers) } == rawHeads.map { headerList($0.fields.headers) })
    }
}

/// RFC 9112 6.1: HTTP/1.0 has no transfer codings; a 1.0 request that claims one is refused (its
/// framing cannot be trusted), a 1.0 response with one runs until the connection closes.
@Suite("HTTP/1.0 with Transfer-Encoding")
struct HTTP10TransferEncodingTests {
    @Test func requestIsRefused() {
        var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
        decoder.feed(ByteBuffer(string: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
        #expect(throws: HTTPParserError.self) { _ = try decoder.next() }
    }

    @Test func responseRunsUntilClose() throws {
        var decoder = HTTP1Decoder(kind: .response, rawHeads: true)
        decoder.feed(ByteBuffer(string: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello"))
        guard case .rawResponseHead? = try decoder.next() else { Issue.record("no head"); return }
        guard case .body(let body)? = try decoder.next() else { Issue.record("no body"); return }
        #expect(String(buffer: body) == "5\r\nhello")
        guard case .end? = try decoder.finishAtEOF() else { Issue.record("no end at close"); return }
    }
}
