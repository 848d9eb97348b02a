import NIOCore
import NIOHTTP1
import Testing

@testable import InterposeHTTP1

// Response heads kept as their received bytes (`HTTP1Decoder(kind: .response, rawHeads: true)`),
// written to the client with `HTTP1Encoder.responseHead(_ raw:version:edits:bodyless:into:)`, plus
// `HeaderEdits` and `HeaderName`.
//
// Helpers reused from DecoderTests.swift: feedAll, summary, body, endCount, headerList.

// MARK: - Helpers

/// Decodes `text` with a raw-head response decoder; `expecting` are the methods of the requests answered.
private func decodeRaw(_ text: String, splitEvery: Int? = nil, expecting methods: [HTTPMethod] = [.GET]) throws -> [HTTP1Part] {
    var decoder = HTTP1Decoder(kind: .response, rawHeads: true)
    for method in methods { decoder.expectResponse(to: method) }
    return try feedAll(Array(text.utf8), into: &decoder, splitEvery: splitEvery)
}

private func rawHead(_ part: HTTP1Part?) -> RawResponseHead? {
    if case .rawResponseHead(let head)? = part { return head }
    return nil
}

/// The raw head of a response made of `head` alone (bodies and what follows are not needed).
private func rawHead(of head: String) throws -> RawResponseHead {
    let parts = try decodeRaw(head)
    return try #require(rawHead(parts.first), "no raw head decoded from \(head.debugDescription)")
}


/// Encodes the raw head decoded from `upstream` and returns the bytes written and the encoder (for the body).
private func encodeRaw(
    _ upstream: String, version: HTTPVersion = .http1_1, edits: HeaderEdits?, bodyless: Bool = false
) throws -> (String, HTTP1Encoder) {
    let raw = try rawHead(of: upstream)
    var encoder = HTTP1Encoder()
    var out = ByteBuffer()
    encoder.responseHead(raw, version: version, edits: edits, bodyless: bodyless, into: &out)
    return (bytesText(out), encoder)
}


private func withBytes<R>(_ s: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    Array(s.utf8).withUnsafeBytes(body)
}

private let rawSplits: [Int?] = [nil, 1, 3]

// MARK: - Decoder with raw response heads

@Suite("HTTP1Decoder: raw response heads")
struct RawResponseDecoderTests {
    static let head =
        "HTTP/1.1 404 Not Found\r\nServer: up\r\nX-Custom:  \t value with  inner spaces \t \r\nEmpty:\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 3\r\n\r\n"

    @Test("a response gives .rawResponseHead with status, version and every field in order, values trimmed", arguments: rawSplits)
    func rawHeadFields(split: Int?) throws {
        let parts = try decodeRaw(Self.head + "abc", splitEvery: split)
        #expect(summary(parts) == ["404 Not Found", "body:abc", "end"])
        let raw = try #require(rawHead(parts.first), "first part is \(String(describing: parts.first))")
        #expect(raw.status.code == 404)
        #expect(raw.status == .notFound)
        #expect(raw.status.reasonPhrase == "Not Found")
        #expect(raw.version == .http1_1)
        #expect(headerList(raw.headers) == [
            "Server=up", "X-Custom=value with  inner spaces", "Empty=", "set-cookie=a=1", "Set-Cookie=b=2", "Content-Length=3",
        ])
        #expect(raw.headers["content-length"] == ["3"])
        let nio = raw.head
        #expect(nio.status == .notFound)
        #expect(nio.version == .http1_1)
        #expect(headerList(nio.headers) == headerList(raw.headers))
    }

    @Test("no .responseHead parts come from a raw-head decoder")
    func onlyRawHeads() throws {
        let parts = try decodeRaw("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(parts.count == 2)
        #expect(rawHead(parts.first) != nil)
        #expect(responseHead(parts.first) == nil)
    }

    @Test("HTTP/1.0 status line, custom reason, no reason", arguments: [
        ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", HTTPVersion.http1_0, 200, "OK"),
        ("HTTP/1.1 299 Whatever Reason\r\nContent-Length: 0\r\n\r\n", HTTPVersion.http1_1, 299, "Whatever Reason"),
        ("HTTP/1.1 204\r\n\r\n", HTTPVersion.http1_1, 204, "No Content"),
        ("HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n", HTTPVersion.http1_1, 599, ""),
    ] as [(String, HTTPVersion, Int, String)])
    func statusLines(text: String, version: HTTPVersion, code: Int, reason: String) throws {
        let raw = try rawHead(of: text)
        #expect(raw.version == version)
        #expect(Int(raw.status.code) == code)
        #expect(raw.status.reasonPhrase == reason)
    }

    @Test("bare LF line ends: fields read the same", arguments: rawSplits)
    func bareLF(split: Int?) throws {
        let parts = try decodeRaw("HTTP/1.1 200 OK\nA: 1\r\nB:2 \nContent-Length: 2\n\nok", splitEvery: split)
        #expect(summary(parts) == ["200 OK", "body:ok", "end"])
        let raw = try #require(rawHead(parts.first))
        #expect(headerList(raw.headers) == ["A=1", "B=2", "Content-Length=2"])
    }

    @Test("a head with no fields has no headers")
    func noFields() throws {
        let raw = try rawHead(of: "HTTP/1.1 200 OK\r\n\r\n")
        #expect(raw.headers.count == 0)
    }

    @Test("Content-Length body", arguments: rawSplits)
    func contentLength(split: Int?) throws {
        let payload = String(repeating: "0123456789", count: 30)
        let parts = try decodeRaw("HTTP/1.1 200 OK\r\nContent-Length: \(payload.utf8.count)\r\n\r\n" + payload, splitEvery: split)
        #expect(summary(parts) == ["200 OK", "body:" + payload, "end"])
        #expect(endCount(parts) == 1)
    }

    @Test("chunked body with trailers", arguments: rawSplits)
    func chunked(split: Int?) throws {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-After: y\r\n\r\n5;e=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-t: 1\r\n\r\n"
        let parts = try decodeRaw(text, splitEvery: split)
        #expect(summary(parts) == ["200 OK", "body:hello0123456789", "end:x-t=1"])
        let raw = try #require(rawHead(parts.first))
        #expect(headerList(raw.headers) == ["Transfer-Encoding=chunked", "X-After=y"])
    }

    @Test("a response to HEAD has no body, even with Content-Length or chunked", arguments: rawSplits)
    func headResponse(split: Int?) throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc"
        let parts = try decodeRaw(text, splitEvery: split, expecting: [.HEAD, .HEAD, .GET])
        #expect(summary(parts) == ["200 OK", "end", "200 OK", "end", "201 Created", "body:abc", "end"])
        let raw = try #require(rawHead(parts.first))
        #expect(raw.headers["content-length"] == ["10"])
    }

    @Test("204, 304 and 1xx have no body; 101 stops decoding", arguments: [nil, 1] as [Int?])
    func bodylessStatuses(split: Int?) throws {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
            + "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nRAW"
        var decoder = HTTP1Decoder(kind: .response, rawHeads: true)
        for _ in 0..<3 { decoder.expectResponse(to: .GET) }
        let parts = try feedAll(Array(text.utf8), into: &decoder, splitEvery: split)
        #expect(summary(parts) == ["100 Continue", "end", "204 No Content", "end", "304 Not Modified", "end", "101 Switching Protocols", "end"])
        #expect(decoder.isStopped)
        #expect(decoder.takeRemainingBytes().map(bytesText) == "RAW")
    }

    @Test("until close: body until finishAtEOF, which ends it", arguments: rawSplits)
    func untilClose(split: Int?) throws {
        var decoder = HTTP1Decoder(kind: .response, rawHeads: true)
        decoder.expectResponse(to: .GET)
        let parts = try feedAll(Array("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nall of this is body".utf8), into: &decoder, splitEvery: split)
        #expect(summary(parts) == ["200 OK", "body:all of this is body"])
        #expect(endCount(parts) == 0)
        let end = try decoder.finishAtEOF()
        guard case .end(nil)? = end else { Issue.record("finishAtEOF gave \(String(describing: end))"); return }
        #expect(try decoder.finishAtEOF().isNone)
        let raw = try #require(rawHead(parts.first))
        #expect(headerList(raw.headers) == ["Server=x"])
    }

    @Test("pipelined responses: every raw head keeps its own bytes after later feeds", arguments: rawSplits)
    func pipelined(split: Int?) throws {
        let text = "HTTP/1.1 200 OK\r\nX-N: 1\r\nContent-Length: 4\r\n\r\nabcd"
            + "HTTP/1.1 201 Created\r\nX-N: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
            + "HTTP/1.1 202 Accepted\r\nX-N: 3\r\n\r\nrest"
        var decoder = HTTP1Decoder(kind: .response, rawHeads: true)
        for _ in 0..<3 { decoder.expectResponse(to: .GET) }
        let parts = try feedAll(Array(text.utf8), into: &decoder, splitEvery: split)
        guard case .end(nil)? = try decoder.finishAtEOF() else { Issue.record("no end at EOF"); return }
        #expect(summary(parts) == ["200 OK", "body:abcd", "end", "201 Created", "body:xyz", "end", "202 Accepted", "body:rest"])
        let heads = parts.compactMap { rawHead($0) }
        #expect(heads.map { headerList($0.headers) } == [
            ["X-N=1", "Content-Length=4"], ["X-N=2", "Transfer-Encoding=chunked"], ["X-N=3"],
        ])
        #expect(heads.map { Int($0.status.code) } == [200, 201, 202])
    }

    static let malformed: [(String, String)] = [
        ("Content-Length not a number", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nx"),
        ("negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
        ("empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n"),
        ("two different Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"),
        ("Transfer-Encoding and Content-Length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"),
        ("Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        ("obs-fold", "HTTP/1.1 200 OK\r\nX-A: b\r\n continued\r\nContent-Length: 0\r\n\r\n"),
        ("bad field name", "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n"),
        ("bad status", "HTTP/1.1 2x0 OK\r\n\r\n"),
        ("bad version", "HTTP/2.0 200 OK\r\n\r\n"),
    ]

    @Test("malformed responses still throw", arguments: malformed, [nil, 1] as [Int?])
    func errors(_ testCase: (String, String), split: Int?) {
        #expect(throws: HTTPParserError.self, "\(testCase.0)") {
            try decodeRaw(testCase.1, splitEvery: split)
        }
    }

    @Test("Transfer-Encoding with Content-Length is unexpectedContentLength")
    func smuggling() {
        #expect(throws: HTTPParserError.unexpectedContentLength) {
            try decodeRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
        }
        #expect(throws: HTTPParserError.invalidContentLength) {
            try decodeRaw("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n")
        }
    }
}

// MARK: - Encoder writing raw heads

@Suite("HTTP1Encoder: raw response heads")
struct RawResponseEncoderTests {
    static let plain = "HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\nX-A:  0 \t\r\ncontent-LENGTH: 5\r\nTE: trailers\r\n\r\n"

    @Test("no edits: the status line, then every field line exactly as received")
    func noEdits() throws {
        var (head, encoder) = try encodeRaw(Self.plain, edits: nil)
        #expect(head == Self.plain)
        #expect(encodeRest(&encoder, ["hel", "lo"]) == "hello")
    }

    static let hopByHop = "HTTP/1.1 200 OK\r\n"
        + "Date: d\r\n"
        + "Connection: keep-alive, X-Secret\r\n"
        + "Keep-Alive: timeout=5\r\n"
        + "X-Secret: 1\r\n"
        + "Proxy-Connection: keep-alive\r\n"
        + "te: trailers\r\n"
        + "TRAILER: X-T\r\n"
        + "upgrade: h2c\r\n"
        + "x-secret: 2\r\n"
        + "X-Secretive: kept\r\n"
        + "X_Secret: kept\r\n"
        + "X-SECRET: 3\r\n"
        + "Content-Type: text/plain\r\n"
        + "Content-Length: 2\r\n"
        + "cOnNeCtIoN: close\r\n"
        + "\r\n"

    @Test("default edits: hop-by-hop lines and the names Connection lists are dropped; the rest keep spelling and order")
    func hopByHopRemoved() throws {
        var (head, encoder) = try encodeRaw(Self.hopByHop, edits: HeaderEdits())
        #expect(head == "HTTP/1.1 200 OK\r\nDate: d\r\nX-Secretive: kept\r\nX_Secret: kept\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n")
        #expect(encodeRest(&encoder, ["ok"]) == "ok")
    }

    @Test("removeHopByHop = false keeps the hop-by-hop lines")
    func hopByHopKept() throws {
        var edits = HeaderEdits()
        edits.removeHopByHop = false
        let (head, _) = try encodeRaw(Self.hopByHop, edits: edits)
        #expect(head == Self.hopByHop)
    }

    static let upstream = "HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 0\r\nX-Keep: k\r\nx-b: old\r\nContent-Length: 0\r\n\r\n"

    @Test("set replaces a received field (written after the received lines), add appends, remove drops")
    func setAddRemove() throws {
        var edits = HeaderEdits()
        edits.set("x-a", "1")
        edits.add("x-c", "2")
        edits.remove("server")
        let (head, _) = try encodeRaw(Self.upstream, edits: edits)
        #expect(head == "HTTP/1.1 200 OK\r\nX-Keep: k\r\nx-b: old\r\nContent-Length: 0\r\nx-a: 1\r\nx-c: 2\r\n\r\n")
    }

    @Test("add on a received name keeps the received line too")
    func addKeepsReceived() throws {
        var edits = HeaderEdits()
        edits.add("X-A", "extra")
        let (head, _) = try encodeRaw(Self.upstream, edits: edits)
        #expect(head == "HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 0\r\nX-Keep: k\r\nx-b: old\r\nContent-Length: 0\r\nX-A: extra\r\n\r\n")
    }

    @Test("set then add keeps both added values")
    func setThenAdd() throws {
        var edits = HeaderEdits()
        edits.set("x-a", "1")
        edits.add("x-a", "2")
        let (head, _) = try encodeRaw(Self.upstream, edits: edits)
        #expect(head == "HTTP/1.1 200 OK\r\nServer: up\r\nX-Keep: k\r\nx-b: old\r\nContent-Length: 0\r\nx-a: 1\r\nx-a: 2\r\n\r\n")
        #expect(edits.added.map { "\($0.0)=\($0.1)" } == ["x-a=1", "x-a=2"])
    }

    @Test("add then set keeps only the set value")
    func addThenSet() throws {
        var edits = HeaderEdits()
        edits.add("x-a", "1")
        edits.set("X-A", "2")
        let (head, _) = try encodeRaw(Self.upstream, edits: edits)
        #expect(head == "HTTP/1.1 200 OK\r\nServer: up\r\nX-Keep: k\r\nx-b: old\r\nContent-Length: 0\r\nX-A: 2\r\n\r\n")
        #expect(edits.added.map { "\($0.0)=\($0.1)" } == ["X-A=2"])
    }

    @Test("remove after add removes the added value and the received one")
    func removeAfterAdd() throws {
        var edits = HeaderEdits()
        edits.add("x-b", "new")
        edits.add("x-z", "z")
        edits.remove("X-B")
        let (head, _) = try encodeRaw(Self.upstream, edits: edits)
        #expect(head == "HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 0\r\nX-Keep: k\r\nContent-Length: 0\r\nx-z: z\r\n\r\n")
        #expect(edits.added.map { "\($0.0)=\($0.1)" } == ["x-z=z"])
        #expect(edits.removed == ["X-B"])
    }

    @Test("set of a hop-by-hop name (connection: close) is written after the received Connection line is dropped")
    func setConnectionClose() throws {
        var edits = HeaderEdits()
        edits.set("connection", "close")
        let (head, _) = try encodeRaw("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", edits: edits)
        #expect(head == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nconnection: close\r\n\r\n")
    }

    static let switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\n"

    @Test("keepUpgrade with a 101: Upgrade kept, connection: upgrade written, no transfer-encoding added")
    func keepUpgrade() throws {
        var edits = HeaderEdits()
        edits.keepUpgrade = true
        var (head, encoder) = try encodeRaw(Self.switching, edits: edits, bodyless: true)
        #expect(head == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: abc\r\nconnection: upgrade\r\n\r\n")
        #expect(encodeRest(&encoder, []) == "")
    }

    @Test("without keepUpgrade the Upgrade line is dropped")
    func upgradeDropped() throws {
        let (head, _) = try encodeRaw(Self.switching, edits: HeaderEdits(), bodyless: true)
        #expect(head == "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\n\r\n")
    }

    static let unframed = "HTTP/1.1 200 OK\r\nServer: up\r\n\r\n"

    @Test("no Content-Length or Transfer-Encoding, HTTP/1.1 client: transfer-encoding: chunked added, body chunk-framed")
    func chunkingAdded() throws {
        for edits in [nil, HeaderEdits()] as [HeaderEdits?] {
            var (head, encoder) = try encodeRaw(Self.unframed, edits: edits)
            #expect(head == "HTTP/1.1 200 OK\r\nServer: up\r\ntransfer-encoding: chunked\r\n\r\n")
            #expect(encodeRest(&encoder, ["hello", "", "0123456789abcdefX"]) == "5\r\nhello\r\n11\r\n0123456789abcdefX\r\n0\r\n\r\n")
        }
    }

    @Test("no Content-Length or Transfer-Encoding, HTTP/1.0 client: nothing added, the body as it is")
    func http10Client() throws {
        var (head, encoder) = try encodeRaw(Self.unframed, version: .http1_0, edits: HeaderEdits())
        #expect(head == "HTTP/1.0 200 OK\r\nServer: up\r\n\r\n")
        #expect(encodeRest(&encoder, ["raw ", "body"]) == "raw body")
    }

    @Test("HTTP/1.0 client, upstream Transfer-Encoding: chunked: no Transfer-Encoding sent (RFC 9112 6.1), body as it is")
    func http10ClientUpstreamChunked() throws {
        var (head, encoder) = try encodeRaw("HTTP/1.1 200 OK\r\nServer: up\r\nTransfer-Encoding: chunked\r\n\r\n", version: .http1_0, edits: HeaderEdits())
        #expect(head == "HTTP/1.0 200 OK\r\nServer: up\r\n\r\n")
        #expect(encodeRest(&encoder, ["hello"]) == "hello")
    }

    @Test("endsWithClose: set when the body written can only be ended by closing the connection", arguments: [
        ("HTTP/1.1 200 OK\r\nServer: up\r\n\r\n", HTTPVersion.http1_0, false, true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTPVersion.http1_0, false, true),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", HTTPVersion.http1_0, false, false),
        ("HTTP/1.1 200 OK\r\nServer: up\r\n\r\n", HTTPVersion.http1_0, true, false),
        ("HTTP/1.1 200 OK\r\nServer: up\r\n\r\n", HTTPVersion.http1_1, false, false),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTPVersion.http1_1, false, false),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", HTTPVersion.http1_1, false, false),
        // RFC 9112 6.1/6.3: a final coding other than chunked is ended by the close; it is kept and not re-framed.
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HTTPVersion.http1_1, false, true),
    ] as [(String, HTTPVersion, Bool, Bool)])
    func endsWithClose(upstream: String, version: HTTPVersion, bodyless: Bool, expected: Bool) throws {
        let (_, encoder) = try encodeRaw(upstream, version: version, edits: HeaderEdits(), bodyless: bodyless)
        #expect(encoder.endsWithClose == expected)
    }

    @Test("endsWithClose is reset by the next head")
    func endsWithCloseReset() throws {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.responseHead(try rawHead(of: "HTTP/1.1 200 OK\r\n\r\n"), version: .http1_0, edits: nil, bodyless: false, into: &out)
        #expect(encoder.endsWithClose)
        encoder.responseHead(try rawHead(of: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), version: .http1_0, edits: nil, bodyless: false, into: &out)
        #expect(!encoder.endsWithClose)
    }

    @Test("bodyless: nothing added, no last chunk")
    func bodyless() throws {
        var (head, encoder) = try encodeRaw(Self.unframed, edits: HeaderEdits(), bodyless: true)
        #expect(head == "HTTP/1.1 200 OK\r\nServer: up\r\n\r\n")
        #expect(encodeRest(&encoder, []) == "")
    }

    @Test("bodyless with an upstream Transfer-Encoding: chunked: the line is kept, no last chunk")
    func bodylessChunked() throws {
        var (head, encoder) = try encodeRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", edits: HeaderEdits(), bodyless: true)
        #expect(head == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(encodeRest(&encoder, []) == "")
    }

    @Test("an added content-length counts as framing: nothing more added")
    func addedContentLength() throws {
        var edits = HeaderEdits()
        edits.set("content-length", "3")
        var (head, encoder) = try encodeRaw(Self.unframed, edits: edits)
        #expect(head == "HTTP/1.1 200 OK\r\nServer: up\r\ncontent-length: 3\r\n\r\n")
        #expect(encodeRest(&encoder, ["abc"]) == "abc")
    }

    @Test("an upstream Transfer-Encoding ending in chunked is kept and the body chunk-framed", arguments: [
        "Transfer-Encoding: chunked", "transfer-encoding: gzip, CHUNKED", "TRANSFER-ENCODING:  chunked \t",
    ])
    func upstreamChunked(line: String) throws {
        for edits in [nil, HeaderEdits()] as [HeaderEdits?] {
            let upstream = "HTTP/1.1 200 OK\r\n\(line)\r\nServer: up\r\n\r\n"
            var (head, encoder) = try encodeRaw(upstream, edits: edits)
            #expect(head == upstream)
            #expect(encodeRest(&encoder, ["hello"]) == "5\r\nhello\r\n0\r\n\r\n")
        }
    }

    @Test("an upstream Transfer-Encoding not ending in chunked: kept, nothing added, body as it is")
    func upstreamGzipOnly() throws {
        let upstream = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"
        var (head, encoder) = try encodeRaw(upstream, edits: HeaderEdits())
        #expect(head == upstream)
        #expect(encodeRest(&encoder, ["zz"]) == "zz")
    }

    @Test("an upstream Content-Length: kept, body as it is")
    func upstreamContentLength() throws {
        let upstream = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        var (head, encoder) = try encodeRaw(upstream, edits: HeaderEdits())
        #expect(head == upstream)
        #expect(encodeRest(&encoder, ["hello"]) == "hello")
    }

    @Test("a removed upstream Transfer-Encoding leaves the body unframed: transfer-encoding: chunked added")
    func removedTransferEncoding() throws {
        var edits = HeaderEdits()
        edits.remove("transfer-encoding")
        var (head, encoder) = try encodeRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: up\r\n\r\n", edits: edits)
        #expect(head == "HTTP/1.1 200 OK\r\nServer: up\r\ntransfer-encoding: chunked\r\n\r\n")
        #expect(encodeRest(&encoder, ["hi"]) == "2\r\nhi\r\n0\r\n\r\n")
    }

    static let bareLF = "HTTP/1.1 200 OK\nServer: up\nX-A: 1\r\nConnection: close\nContent-Length: 0\n\n"

    @Test("an upstream head with bare LF line ends is written with CRLF line ends")
    func bareLFHead() throws {
        let (plain, _) = try encodeRaw(Self.bareLF, edits: nil)
        #expect(plain == "HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        let (edited, _) = try encodeRaw(Self.bareLF, edits: HeaderEdits())
        #expect(edited == "HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n")
        var edits = HeaderEdits()
        edits.remove("x-a")
        edits.add("x-n", "n")
        let (more, _) = try encodeRaw(Self.bareLF, edits: edits)
        #expect(more == "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 0\r\nx-n: n\r\n\r\n")
    }

    @Test("the status code and reason are copied as received", arguments: [
        ("HTTP/1.1 299 Whatever Reason\r\nContent-Length: 0\r\n\r\n", false, "HTTP/1.1 299 Whatever Reason\r\nContent-Length: 0\r\n\r\n"),
        ("HTTP/1.1 204\r\n\r\n", true, "HTTP/1.1 204\r\n\r\n"),
        ("HTTP/1.1 200 Fine Thanks\r\nContent-Length: 0\r\n\r\n", false, "HTTP/1.1 200 Fine Thanks\r\nContent-Length: 0\r\n\r\n"),
        ("HTTP/1.1 404 Not Found\nContent-Length: 0\n\n", false, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    ])
    func statusLineCopied(upstream: String, bodyless: Bool, expected: String) throws {
        let (head, _) = try encodeRaw(upstream, edits: HeaderEdits(), bodyless: bodyless)
        #expect(head == expected)
    }

    @Test("version .http1_0 writes HTTP/1.0, .http1_1 writes HTTP/1.1, whatever the upstream said")
    func versionWritten() throws {
        let (ten, _) = try encodeRaw("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", version: .http1_0, edits: nil)
        #expect(ten == "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        let (eleven, _) = try encodeRaw("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", version: .http1_1, edits: nil)
        #expect(eleven == "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    }

    @Test("decode raw, encode raw with chunking added, decode again: same status, fields and body", arguments: [nil, 1] as [Int?])
    func roundTrip(split: Int?) throws {
        let upstream = "HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\nX-A: 0\r\n\r\npart one, part two"
        var up = HTTP1Decoder(kind: .response, rawHeads: true)
        up.expectResponse(to: .GET)
        var parts = try feedAll(Array(upstream.utf8), into: &up, splitEvery: split)
        parts.append(try #require(try up.finishAtEOF()))
        let raw = try #require(rawHead(parts.first))

        var edits = HeaderEdits()
        edits.set("x-a", "1")
        var encoder = HTTP1Encoder()
        var wire = ByteBuffer()
        encoder.responseHead(raw, version: .http1_1, edits: edits, bodyless: false, into: &wire)
        for case .body(let b) in parts { encoder.body(b, into: &wire) }
        encoder.end(nil, into: &wire)

        var client = HTTP1Decoder(kind: .response)
        client.expectResponse(to: .GET)
        let again = try feedAll(Array(wire.readableBytesView), into: &client, splitEvery: split)
        #expect(summary(again) == ["200 OK", "body:part one, part two", "end"])
        #expect(responseHead(again.first).map { headerList($0.headers) } == ["Server=up", "x-a=1", "transfer-encoding=chunked"])
        #expect(client.bufferedBytes == 0)
    }
}

// MARK: - HeaderEdits

@Suite("HeaderEdits")
struct HeaderEditsTests {
    static let received = HTTPHeaders([("Server", "up"), ("X-A", "0"), ("x-a", "00"), ("X-B", "b")])

    @Test("value: the added value, nil for removed, the received one otherwise")
    func value() {
        var edits = HeaderEdits()
        #expect(edits.value("x-a", in: Self.received) == "0")
        #expect(edits.value("SERVER", in: Self.received) == "up")
        #expect(edits.value("x-missing", in: Self.received) == nil)

        edits.set("x-a", "1")
        #expect(edits.value("X-A", in: Self.received) == "1")
        edits.add("x-a", "2")
        #expect(edits.value("x-a", in: Self.received) == "2")

        edits.remove("server")
        #expect(edits.value("Server", in: Self.received) == nil)

        edits.add("x-new", "n")
        #expect(edits.value("X-New", in: Self.received) == "n")
        edits.remove("X-NEW")
        #expect(edits.value("x-new", in: Self.received) == nil)

        edits.add("x-b", "added")
        #expect(edits.value("x-b", in: Self.received) == "added")

        edits.remove("x-c")
        edits.add("x-c", "back")
        #expect(edits.value("x-c", in: Self.received) == "back")
    }

    @Test("defaults: hop-by-hop removed, no upgrade, nothing removed or added")
    func defaults() {
        let edits = HeaderEdits()
        #expect(edits.removeHopByHop)
        #expect(!edits.keepUpgrade)
        #expect(edits.removed.isEmpty)
        #expect(edits.added.isEmpty)
    }
}

// MARK: - HeaderName

@Suite("HeaderName")
struct HeaderNameTests {
    static let equalCases: [(String, String, Bool)] = [
        ("X-A", "x-a", true),
        ("x-a", "X-A", true),
        ("Content-Length", "content-LENGTH", true),
        ("x-a", "x-a", true),
        ("", "", true),
        ("a-b", "a_b", false),
        ("a_b", "a-b", false),
        ("x-a", "x-b", false),
        ("x-a", "x-aa", false),
        ("ab", "a", false),
        ("@", "`", false),
        ("[", "{", false),
        ("^", "~", false),
        ("a-b", "a\rb", false),
        ("1", "\u{11}", false),
    ]

    @Test("equal(String, String) and equal(String, bytes): any case for letters only", arguments: equalCases)
    func equal(a: String, b: String, expected: Bool) {
        #expect(HeaderName.equal(a, b) == expected, "\(a.debugDescription) vs \(b.debugDescription)")
        #expect(withBytes(b) { HeaderName.equal(a, $0) } == expected, "\(a.debugDescription) vs bytes \(b.debugDescription)")
    }

    @Test("is(String / bytes, lower-case name)")
    func isName() {
        let cases: [(String, StaticString, Bool)] = [
            ("content-length", "content-length", true),
            ("Content-Length", "content-length", true),
            ("CONTENT-LENGTH", "content-length", true),
            ("content_length", "content-length", false),
            ("content-lengt", "content-length", false),
            ("content-lengthx", "content-length", false),
            ("TE", "te", true),
            ("Te", "te", true),
            ("tf", "te", false),
            ("X-A", "x-a", true),
            ("X_A", "x-a", false),
        ]
        for (name, lower, expected) in cases {
            #expect(HeaderName.is(name, lower) == expected, "\(name) is \(lower)")
            #expect(withBytes(name) { HeaderName.is($0, lower) } == expected, "bytes \(name) is \(lower)")
        }
    }

    @Test("is: a non-letter byte never matches by case folding (CR is not '-')")
    func isNonLetter() {
        #expect(!HeaderName.is("keep\ralive", "keep-alive"))
        #expect(!withBytes("keep\ralive") { HeaderName.is($0, "keep-alive") })
        #expect(!HeaderName.is("x\ra", "x-a"))
        #expect(!withBytes("x\ra") { HeaderName.is($0, "x-a") })
    }

    static let hopByHopCases: [(String, Bool)] = [
        ("Connection", true), ("connection", true), ("CONNECTION", true),
        ("Keep-Alive", true), ("keep-alive", true), ("Keep_Alive", false),
        ("Proxy-Connection", true), ("proxy-connection", true), ("Proxy_Connection", false),
        ("TE", true), ("te", true), ("Te", true),
        ("Trailer", true), ("TRAILER", true), ("Trailers", false),
        ("Upgrade", true), ("upgrade", true),
        ("Content-Length", false), ("Host", false), ("X-Connection", false), ("T", false), ("", false), ("Upgrades", false),
    ]

    @Test("isHopByHop for String and bytes", arguments: hopByHopCases)
    func hopByHop(name: String, expected: Bool) {
        #expect(HeaderName.isHopByHop(name) == expected, "\(name)")
        #expect(withBytes(name) { HeaderName.isHopByHop($0) } == expected, "bytes \(name)")
    }
}
