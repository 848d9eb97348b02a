import NIOCore
import NIOHTTP1
import Testing

@testable import InterposeHTTP1

// MARK: - Helpers

/// Feeds `bytes` into `decoder` in pieces of `splitEvery` bytes (all at once when nil), draining
/// `next()` after each piece, and returns every part decoded.
func feedAll(_ bytes: [UInt8], into decoder: inout HTTP1Decoder, splitEvery: Int? = nil) throws -> [HTTP1Part] {
    var parts: [HTTP1Part] = []
    let step = max(1, splitEvery ?? bytes.count)
    var i = 0
    repeat {
        let end = min(i + step, bytes.count)
        decoder.feed(ByteBuffer(bytes: bytes[i..<end]))
        while let part = try decoder.next() {
            parts.append(part)
            // A decoder that never stops producing parts would hang the test run.
            if parts.count > 1_000_000 { Issue.record("decoder does not stop producing parts"); return parts }
        }
        i = end
    } while i < bytes.count
    return parts
}

/// Decodes `text` with a new decoder; `expecting` are the methods of the requests whose responses these are.
func decode(
    _ text: String, kind: HTTP1Decoder.Kind = .request, splitEvery: Int? = nil,
    maxHeadSize: Int = 80 * 1024, expecting methods: [HTTPMethod] = []
) throws -> [HTTP1Part] {
    var decoder = HTTP1Decoder(kind: kind, maxHeadSize: maxHeadSize)
    for method in methods { decoder.expectResponse(to: method) }
    return try feedAll(Array(text.utf8), into: &decoder, splitEvery: splitEvery)
}

/// A comparable summary of the parts: `GET /x HTTP/1.1`, `200 OK`, `body:...`, `end`, `end:x-t=1`.
/// Adjacent body parts are joined (how a body is sliced depends on the feeds).
func summary(_ parts: [HTTP1Part]) -> [String] {
    var out: [String] = []
    for part in parts {
        switch part {
        case .requestHead(let head):
            out.append("\(head.method.rawValue) \(head.uri) \(head.version)")
        case .responseHead(let head):
            out.append("\(head.status.code) \(head.status.reasonPhrase)")
        case .rawResponseHead(let head):
            out.append("\(head.status.code) \(head.status.reasonPhrase)")
        case .rawRequestHead(let head):
            out.append("\(head.method.rawValue) \(head.uri) \(head.version)")
        case .body(let buffer):
            let text = String(buffer: buffer)
            if let last = out.last, last.hasPrefix("body:") {
                out[out.count - 1] = last + text
            } else {
                out.append("body:" + text)
            }
        case .end(let trailers):
            if let trailers {
                out.append("end:" + trailers.map { "\($0.name)=\($0.value)" }.joined(separator: ","))
            } else {
                out.append("end")
            }
        }
    }
    return out
}

func body(_ parts: [HTTP1Part]) -> [UInt8] {
    var bytes: [UInt8] = []
    for case .body(let buffer) in parts { bytes += buffer.readableBytesView }
    return bytes
}

func endCount(_ parts: [HTTP1Part]) -> Int {
    parts.filter { if case .end = $0 { true } else { false } }.count
}

func requestHead(_ part: HTTP1Part?) -> HTTPRequestHead? {
    if case .requestHead(let head)? = part { return head }
    return nil
}

func responseHead(_ part: HTTP1Part?) -> HTTPResponseHead? {
    if case .responseHead(let head)? = part { return head }
    return nil
}

func headerList(_ headers: HTTPHeaders) -> [String] {
    headers.map { "\($0.name)=\($0.value)" }
}

let splits: [Int?] = [nil, 1, 3, 7]

// MARK: - Request heads

@Suite("HTTP1Decoder: request heads")
struct RequestHeadTests {
    static let simpleGet =
        "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Custom-Header:  \t value with  inner spaces \t \r\nAccept:*/*\r\nEmpty:\r\n\r\n"

    @Test("a simple GET: method, uri, version, headers (case kept, values trimmed), then end(nil)", arguments: splits)
    func simpleGet(split: Int?) throws {
        let parts = try decode(Self.simpleGet, splitEvery: split)
        try #require(parts.count == 2)
        let head = try #require(requestHead(parts[0]))
        #expect(head.method == .GET)
        #expect(head.uri == "/index.html?q=1")
        #expect(head.version == .http1_1)
        #expect(headerList(head.headers) == [
            "Host=example.com", "X-Custom-Header=value with  inner spaces", "Accept=*/*", "Empty=",
        ])
        #expect(head.headers["host"] == ["example.com"])
        guard case .end(let trailers) = parts[1] else { Issue.record("expected end, got \(parts[1])"); return }
        #expect(trailers == nil)
    }

    @Test("keep-alive follows the version and Connection", arguments: [
        ("HTTP/1.1", nil, true),
        ("HTTP/1.0", nil, false),
        ("HTTP/1.1", "close", false),
        ("HTTP/1.0", "keep-alive", true),
    ] as [(String, String?, Bool)])
    func keepAlive(version: String, connection: String?, expected: Bool) throws {
        var text = "GET / \(version)\r\nHost: a\r\n"
        if let connection { text += "Connection: \(connection)\r\n" }
        text += "\r\n"
        let parts = try decode(text)
        let head = try #require(requestHead(parts.first))
        #expect(head.version == (version == "HTTP/1.0" ? .http1_0 : .http1_1))
        #expect(head.isKeepAlive == expected)
        #expect(summary(parts).last == "end")
    }

    @Test("a head not all there yet gives nil and keeps its bytes")
    func partialHead() throws {
        var decoder = HTTP1Decoder(kind: .request)
        decoder.feed(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n"))
        #expect(try decoder.next().isNone)
        #expect(decoder.bufferedBytes == 25)
        decoder.feed(ByteBuffer(string: "\r\n"))
        #expect(requestHead(try decoder.next())?.uri == "/")
    }

    @Test("bare LF line ends are accepted", arguments: splits)
    func bareLF(split: Int?) throws {
        let parts = try decode("POST /lf HTTP/1.1\nHost: a\nContent-Length: 3\n\nabcGET /next HTTP/1.0\r\nHost: b\n\r\n", splitEvery: split)
        #expect(summary(parts) == ["POST /lf HTTP/1.1", "body:abc", "end", "GET /next HTTP/1.0", "end"])
        let head = try #require(requestHead(parts.first))
        #expect(headerList(head.headers) == ["Host=a", "Content-Length=3"])
    }

    @Test("a request with neither Content-Length nor Transfer-Encoding has no body")
    func noBody() throws {
        var decoder = HTTP1Decoder(kind: .request)
        let parts = try feedAll(Array("DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n".utf8), into: &decoder)
        #expect(summary(parts) == ["DELETE /x HTTP/1.1", "end"])
        #expect(try decoder.finishAtEOF().isNone)
    }
}

// MARK: - Bodies

@Suite("HTTP1Decoder: request bodies")
struct RequestBodyTests {
    static let payload: [UInt8] = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }

    @Test("a Content-Length body across many small feeds", arguments: splits)
    func contentLength(split: Int?) throws {
        let bytes = Array("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: \(Self.payload.count)\r\n\r\n".utf8) + Self.payload
        var decoder = HTTP1Decoder(kind: .request)
        let parts = try feedAll(bytes, into: &decoder, splitEvery: split)
        #expect(requestHead(parts.first)?.method == .POST)
        #expect(body(parts) == Self.payload)
        #expect(endCount(parts) == 1)
        guard case .end(nil)? = parts.last else { Issue.record("last part is not end(nil): \(String(describing: parts.last))"); return }
        #expect(decoder.bufferedBytes == 0)
        #expect(try decoder.next().isNone)
        #expect(try decoder.finishAtEOF().isNone)
    }

    @Test("Content-Length: 0 ends at once")
    func zeroLength() throws {
        #expect(summary(try decode("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")) == ["POST / HTTP/1.1", "end"])
    }

    @Test("the same Content-Length twice is accepted")
    func repeatedSameLength() throws {
        let parts = try decode("POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok")
        #expect(summary(parts) == ["POST / HTTP/1.1", "body:ok", "end"])
    }

    static let chunkedHead = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

    @Test("chunked: extensions, upper-case hex, trailers", arguments: [nil, 1, 2, 5] as [Int?])
    func chunkedWithTrailers(split: Int?) throws {
        let sixteen = "0123456789abcdef"
        let text = Self.chunkedHead + "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n1F ; name=\"v\"\r\n\(sixteen)\(sixteen.prefix(15))\r\n0\r\nx-t: 1\r\n\r\n"
        var decoder = HTTP1Decoder(kind: .request)
        let parts = try feedAll(Array(text.utf8), into: &decoder, splitEvery: split)
        #expect(summary(parts) == ["POST /c HTTP/1.1", "body:hello0123456789\(sixteen)\(sixteen.prefix(15))", "end:x-t=1"])
        #expect(endCount(parts) == 1)
        guard case .end(let trailers)? = parts.last else { Issue.record("no end"); return }
        #expect(trailers?["x-t"] == ["1"])
        #expect(decoder.bufferedBytes == 0)
        #expect(try decoder.next().isNone)
    }

    @Test("chunked: an empty trailer section ends with end(nil)", arguments: [nil, 1, 2] as [Int?])
    func chunkedNoTrailers(split: Int?) throws {
        let parts = try decode(Self.chunkedHead + "3\r\nabc\r\n0\r\n\r\n", splitEvery: split)
        #expect(summary(parts) == ["POST /c HTTP/1.1", "body:abc", "end"])
        guard case .end(let trailers)? = parts.last else { Issue.record("no end"); return }
        #expect(trailers == nil)
    }

    @Test("chunked: several trailer fields, bare LF chunk lines", arguments: [nil, 1] as [Int?])
    func chunkedBareLFAndTrailers(split: Int?) throws {
        let parts = try decode(Self.chunkedHead + "2\nhi\n0\nA: 1\nB:  two \n\n", splitEvery: split)
        #expect(summary(parts) == ["POST /c HTTP/1.1", "body:hi", "end:A=1,B=two"])
    }

    @Test("Transfer-Encoding ending in chunked is chunked (gzip, chunked)")
    func gzipThenChunked() throws {
        let parts = try decode("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n")
        #expect(summary(parts) == ["POST / HTTP/1.1", "body:zz", "end"])
    }
}

// MARK: - Pipelining

@Suite("HTTP1Decoder: pipelining")
struct PipeliningTests {
    static let first = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
    static let second = "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"

    @Test("two requests in one buffer: head, end, head, end; the second stays buffered until asked for")
    func twoRequests() throws {
        var decoder = HTTP1Decoder(kind: .request)
        decoder.feed(ByteBuffer(string: Self.first + Self.second))
        #expect(requestHead(try decoder.next())?.uri == "/a")
        guard case .end(nil)? = try decoder.next() else { Issue.record("expected end of the first request"); return }
        #expect(decoder.bufferedBytes == Self.second.utf8.count)
        #expect(requestHead(try decoder.next())?.uri == "/b")
        guard case .end(nil)? = try decoder.next() else { Issue.record("expected end of the second request"); return }
        #expect(try decoder.next().isNone)
        #expect(decoder.bufferedBytes == 0)
    }

    @Test("Content-Length, chunked and bodyless requests back to back", arguments: splits)
    func mixed(split: Int?) throws {
        let text = "POST /1 HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"
            + "POST /2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\nT: v\r\n\r\n"
            + "POST /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            + "GET /4 HTTP/1.1\r\n\r\n"
        #expect(try summary(decode(text, splitEvery: split)) == [
            "POST /1 HTTP/1.1", "body:abcd", "end",
            "POST /2 HTTP/1.1", "body:xyz", "end:T=v",
            "POST /3 HTTP/1.1", "end",
            "GET /4 HTTP/1.1", "end",
        ])
    }
}

// MARK: - Errors

@Suite("HTTP1Decoder: malformed requests")
struct RequestErrorTests {
    static let cases: [(String, String)] = [
        ("obs-fold (space)", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n continued\r\n\r\n"),
        ("obs-fold (tab)", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tcontinued\r\n\r\n"),
        ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        ("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
        ("lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n"),
        ("no version", "GET /\r\nHost: a\r\n\r\n"),
        ("header name with a space", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
        ("space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        ("no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n"),
        ("empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n"),
        ("bare CR in a value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"),
        ("NUL in a value", "GET / HTTP/1.1\r\nX: a\u{0}b\r\n\r\n"),
        ("Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
        ("Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("two different Content-Lengths", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("Content-Length not a number", "POST / HTTP/1.1\r\nContent-Length: 5a\r\n\r\nhello"),
        ("negative Content-Length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
        ("Content-Length list", "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!"),
        ("Transfer-Encoding gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
        ("Transfer-Encoding chunked, gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc"),
        ("chunk size zz", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ("chunk size missing", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n"),
        ("chunk data longer than its size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"),
        ("chunk size overflow", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n"),
        ("method with a bad byte", "G(T / HTTP/1.1\r\n\r\n"),
        ("two spaces after the method", "GET  / HTTP/1.1\r\n\r\n"),
    ]

    @Test("malformed input throws HTTPParserError", arguments: cases, [nil, 1] as [Int?])
    func malformed(_ testCase: (String, String), split: Int?) {
        #expect(throws: HTTPParserError.self, "\(testCase.0)") {
            try decode(testCase.1, splitEvery: split)
        }
    }

    static let bigHead = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "a", count: 2000) + "\r\n"

    @Test("a head over maxHeadSize with its terminator: headerOverflow", arguments: [nil, 1, 100] as [Int?])
    func overflowComplete(split: Int?) {
        #expect(throws: HTTPParserError.headerOverflow) {
            try decode(Self.bigHead + "\r\n", splitEvery: split, maxHeadSize: 1024)
        }
    }

    @Test("a head over maxHeadSize not yet terminated: headerOverflow", arguments: [nil, 1, 100] as [Int?])
    func overflowIncomplete(split: Int?) {
        #expect(throws: HTTPParserError.headerOverflow) {
            try decode(Self.bigHead, splitEvery: split, maxHeadSize: 1024)
        }
    }

    @Test("a head under maxHeadSize is accepted, even with a long body buffered after it")
    func underLimit() throws {
        let head = "POST / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 900) + "\r\nContent-Length: 3000\r\n\r\n"
        let payload = String(repeating: "b", count: 3000)
        let parts = try decode(head + payload, maxHeadSize: 1024)
        #expect(summary(parts) == ["POST / HTTP/1.1", "body:" + payload, "end"])
    }

    @Test("after an error the decoder yields nothing more", arguments: [
        ("bad head", "GET / HTTP/9.9\r\n\r\n", "GET / HTTP/1.1\r\n\r\n"),
        ("bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "3\r\nabc\r\n0\r\n\r\n"),
        ("bad chunk end", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX", "\r\n3\r\nabc\r\n0\r\n\r\n"),
    ])
    func failedIsTerminal(_ name: String, bad: String, more: String) throws {
        var decoder = HTTP1Decoder(kind: .request)
        decoder.feed(ByteBuffer(string: bad))
        var threw = false
        do {
            while try decoder.next() != nil {}
        } catch {
            threw = true
        }
        #expect(threw, "\(name): no error")
        decoder.feed(ByteBuffer(string: more))
        var after: [HTTP1Part] = []
        for _ in 0..<10 {
            guard let part = try? decoder.next() else { continue }
            after.append(part)
        }
        #expect(summary(after) == [], "\(name): parts decoded after the error")
    }
}

// MARK: - Responses

@Suite("HTTP1Decoder: responses")
struct ResponseTests {
    @Test("a response to HEAD has no body even with Content-Length; the next bytes are the next response", arguments: splits)
    func headResponse(split: Int?) throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
        let parts = try decode(text, kind: .response, splitEvery: split, expecting: [.HEAD, .GET])
        #expect(summary(parts) == ["200 OK", "end", "200 OK", "body:abc", "end"])
        #expect(responseHead(parts.first)?.headers["content-length"] == ["10"])
    }

    @Test("a response to HEAD with Transfer-Encoding: chunked has no body")
    func headResponseChunked() throws {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx"
        let parts = try decode(text, kind: .response, expecting: [.HEAD, .POST])
        #expect(summary(parts) == ["200 OK", "end", "201 Created", "body:x", "end"])
    }

    @Test("204 and 304 have no body", arguments: [
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    ])
    func noBodyStatuses(head: String) throws {
        var decoder = HTTP1Decoder(kind: .response)
        decoder.expectResponse(to: .GET)
        decoder.expectResponse(to: .GET)
        let parts = try feedAll(Array((head + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").utf8), into: &decoder)
        let code = try #require(responseHead(parts.first)).status.code
        #expect(code == 204 || code == 304)
        #expect(summary(parts).dropFirst() == ["end", "200 OK", "body:ok", "end"])
        #expect(try decoder.finishAtEOF().isNone)
    }

    @Test("100 Continue then the final response in one buffer: two heads", arguments: splits)
    func continueThenFinal(split: Int?) throws {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        let parts = try decode(text, kind: .response, splitEvery: split, expecting: [.POST])
        #expect(summary(parts) == ["100 Continue", "end", "200 OK", "body:hi", "end"])
        #expect(parts.compactMap { responseHead($0)?.status.code } == [100, 200])
    }

    @Test("a 1xx does not take the awaited request's place (103 before a HEAD response)")
    func interimKeepsMethodQueue() throws {
        let text = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        let parts = try decode(text, kind: .response, expecting: [.HEAD, .GET])
        #expect(summary(parts) == ["103 Early Hints", "end", "200 OK", "end", "200 OK", "body:ok", "end"])
    }

    @Test("without Content-Length or chunked a response runs until close", arguments: splits)
    func untilClose(split: Int?) throws {
        var decoder = HTTP1Decoder(kind: .response)
        decoder.expectResponse(to: .GET)
        let parts = try feedAll(Array("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nall of this is body".utf8), into: &decoder, splitEvery: split)
        #expect(summary(parts) == ["200 OK", "body:all of this is body"])
        #expect(endCount(parts) == 0)
        let end = try decoder.finishAtEOF()
        guard case .end(nil)? = end else { Issue.record("finishAtEOF gave \(String(describing: end))"); return }
        #expect(try decoder.finishAtEOF().isNone)
    }

    @Test("HTTP/1.0 response and a Transfer-Encoding not ending in chunked also run until close", arguments: [
        "HTTP/1.0 200 OK\r\n\r\nbody",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nbody",
    ])
    func untilCloseOthers(text: String) throws {
        var decoder = HTTP1Decoder(kind: .response)
        let parts = try feedAll(Array(text.utf8), into: &decoder)
        #expect(summary(parts).dropFirst() == ["body:body"])
        guard case .end(nil)? = try decoder.finishAtEOF() else { Issue.record("no end at EOF"); return }
    }

    @Test("a response cut short makes finishAtEOF throw", arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Len",
    ])
    func cutShort(text: String) throws {
        var decoder = HTTP1Decoder(kind: .response)
        decoder.expectResponse(to: .GET)
        _ = try feedAll(Array(text.utf8), into: &decoder)
        #expect(throws: HTTPParserError.self) { try decoder.finishAtEOF() }
    }

    @Test("nothing pending at EOF: nil")
    func cleanEOF() throws {
        var decoder = HTTP1Decoder(kind: .response)
        #expect(try decoder.finishAtEOF().isNone)
        decoder.expectResponse(to: .GET)
        _ = try feedAll(Array("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx".utf8), into: &decoder)
        #expect(try decoder.finishAtEOF().isNone)
    }

    @Test("status line: version, code, reason phrase; headers")
    func statusLine() throws {
        let parts = try decode("HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n", kind: .response)
        let head = try #require(responseHead(parts.first))
        #expect(head.version == .http1_0)
        #expect(head.status == .notFound)
        #expect(head.status.reasonPhrase == "Not Found")
        #expect(headerList(head.headers) == ["Content-Type=text/plain", "Content-Length=0"])
        let noReason = try decode("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", kind: .response)
        #expect(responseHead(noReason.first)?.status.code == 200)
    }

    @Test("malformed responses throw", arguments: [
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ])
    func malformedResponse(text: String) {
        #expect(throws: HTTPParserError.self) { try decode(text, kind: .response, expecting: [.GET]) }
    }
}

// MARK: - Upgrades

@Suite("HTTP1Decoder: upgrades")
struct UpgradeTests {
    static let upgradeRequest = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"
    static let raw: [UInt8] = [0x81, 0x85, 0x00, 0x0D, 0x0A, 0x0D, 0x0A, 0x47, 0x45, 0x54, 0x20, 0xFF]

    @Test("Connection: Upgrade with Upgrade stops after the request; the raw bytes are handed over", arguments: [nil, 1] as [Int?])
    func upgradeRequestStops(split: Int?) throws {
        var decoder = HTTP1Decoder(kind: .request)
        let parts = try feedAll(Array(Self.upgradeRequest.utf8) + Self.raw, into: &decoder, splitEvery: split)
        #expect(summary(parts) == ["GET /chat HTTP/1.1", "end"])
        #expect(try decoder.next().isNone)
        #expect(decoder.isStopped)
        let taken = decoder.takeRemainingBytes()
        let rest = try #require(taken)
        #expect(Array(rest.readableBytesView) == Self.raw)
        #expect(decoder.bufferedBytes == 0)
        #expect(decoder.takeRemainingBytes() == nil)
    }

    @Test("resume() goes on with the next request when the upgrade is refused")
    func resumeAfterRefusedUpgrade() throws {
        var decoder = HTTP1Decoder(kind: .request)
        let parts = try feedAll(Array((Self.upgradeRequest + "GET /next HTTP/1.1\r\nHost: a\r\n\r\n").utf8), into: &decoder)
        #expect(summary(parts) == ["GET /chat HTTP/1.1", "end"])
        #expect(decoder.isStopped)
        decoder.resume()
        #expect(!decoder.isStopped)
        var more: [HTTP1Part] = []
        while let part = try decoder.next() { more.append(part) }
        #expect(summary(more) == ["GET /next HTTP/1.1", "end"])
        #expect(!decoder.isStopped)
    }

    @Test("an upgrade request with a body stops after the body")
    func upgradeWithBody() throws {
        var decoder = HTTP1Decoder(kind: .request)
        let text = "POST /u HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nhiRAW"
        let parts = try feedAll(Array(text.utf8), into: &decoder, splitEvery: 1)
        #expect(summary(parts) == ["POST /u HTTP/1.1", "body:hi", "end"])
        #expect(decoder.isStopped)
        #expect(decoder.takeRemainingBytes().map { String(buffer: $0) } == "RAW")
    }

    @Test("Upgrade without Connection: upgrade (or the reverse) does not stop", arguments: [
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
    ])
    func notAnUpgrade(text: String) throws {
        var decoder = HTTP1Decoder(kind: .request)
        let parts = try feedAll(Array(text.utf8), into: &decoder)
        #expect(summary(parts) == ["GET / HTTP/1.1", "end", "GET /2 HTTP/1.1", "end"])
        #expect(!decoder.isStopped)
    }

    @Test("101 Switching Protocols stops decoding; the remaining bytes are available", arguments: [nil, 1] as [Int?])
    func switchingProtocols(split: Int?) throws {
        var decoder = HTTP1Decoder(kind: .response)
        decoder.expectResponse(to: .GET)
        let text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        let parts = try feedAll(Array(text.utf8) + Self.raw, into: &decoder, splitEvery: split)
        #expect(summary(parts) == ["101 Switching Protocols", "end"])
        #expect(try decoder.next().isNone)
        #expect(decoder.isStopped)
        let taken = decoder.takeRemainingBytes()
        let rest = try #require(taken)
        #expect(Array(rest.readableBytesView) == Self.raw)
    }
}

extension Optional where Wrapped == HTTP1Part {
    var isNone: Bool { self == nil }
}

/// A buffer's bytes as text.
func bytesText(_ buffer: ByteBuffer) -> String { String(buffer: buffer) }

/// Body pieces then the end (with trailers) through `encoder`: the bytes written.
func encodeRest(_ encoder: inout HTTP1Encoder, _ pieces: [String], trailers: HTTPHeaders? = nil) -> String {
    var out = ByteBuffer()
    for piece in pieces { encoder.body(ByteBuffer(string: piece), into: &out) }
    encoder.end(trailers, into: &out)
    return bytesText(out)
}
