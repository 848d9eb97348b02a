import NIOCore
import NIOHTTP1
import Testing

@testable import InterposeHTTP1


@Suite("HTTP1Encoder")
struct EncoderTests {
    @Test("request head: exact bytes")
    func requestHead() {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.requestHead(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/x", headers: ["host": "a"]), into: &out)
        #expect(bytesText(out) == "GET /x HTTP/1.1\r\nhost: a\r\n\r\n")
    }

    @Test("request head: header order and case kept, every value on its own line")
    func requestHeadFields() {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        let headers = HTTPHeaders([("Host", "a"), ("X-A", "1"), ("x-a", "2"), ("Content-Length", "3")])
        encoder.requestHead(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/p?q=1", headers: headers), into: &out)
        encoder.body(ByteBuffer(string: "abc"), into: &out)
        encoder.end(nil, into: &out)
        #expect(bytesText(out) == "POST /p?q=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3\r\n\r\nabc")
    }

    @Test("chunked request body: a chunk per body part, 0 CRLF CRLF at the end")
    func chunkedRequest() {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: ["transfer-encoding": "chunked"])
        encoder.requestHead(head, into: &out)
        #expect(bytesText(out) == "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n")
        out.clear()
        encoder.body(ByteBuffer(string: "hello"), into: &out)
        #expect(bytesText(out) == "5\r\nhello\r\n")
        out.clear()
        encoder.body(ByteBuffer(string: "abcdefghijklmnopqrstuvwxyz"), into: &out)
        #expect(bytesText(out) == "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n")
        out.clear()
        encoder.body(ByteBuffer(), into: &out)  // an empty part must not write the last chunk
        #expect(out.readableBytes == 0)
        encoder.end(nil, into: &out)
        #expect(bytesText(out) == "0\r\n\r\n")
    }

    @Test("chunked end with trailers: trailers before the final CRLF")
    func chunkedTrailers() {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.requestHead(HTTPRequestHead(version: .http1_1, method: .PUT, uri: "/", headers: ["Transfer-Encoding": "gzip, chunked"]), into: &out)
        out.clear()
        encoder.body(ByteBuffer(string: "hi"), into: &out)
        encoder.end(["x-t": "1", "x-u": "2"], into: &out)
        #expect(bytesText(out) == "2\r\nhi\r\n0\r\nx-t: 1\r\nx-u: 2\r\n\r\n")
    }

    @Test("a response without length for an HTTP/1.1 client gets transfer-encoding: chunked")
    func responseChunkedAdded() {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.responseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["server": "x"]), bodyless: false, into: &out)
        #expect(bytesText(out) == "HTTP/1.1 200 OK\r\nserver: x\r\ntransfer-encoding: chunked\r\n\r\n")
        out.clear()
        encoder.body(ByteBuffer(string: "hello"), into: &out)
        encoder.end(nil, into: &out)
        #expect(bytesText(out) == "5\r\nhello\r\n0\r\n\r\n")
    }

    @Test("bodyless responses get nothing added and no chunk framing", arguments: [
        (HTTPResponseStatus.noContent, "HTTP/1.1 204 No Content\r\n\r\n"),
        (HTTPResponseStatus.ok, "HTTP/1.1 200 OK\r\n\r\n"),
        (HTTPResponseStatus.notModified, "HTTP/1.1 304 Not Modified\r\n\r\n"),
    ])
    func bodyless(status: HTTPResponseStatus, expected: String) {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.responseHead(HTTPResponseHead(version: .http1_1, status: status), bodyless: true, into: &out)
        encoder.end(nil, into: &out)
        #expect(bytesText(out) == expected)
    }

    @Test("the response to HEAD keeps its transfer-encoding header but writes no last chunk")
    func headResponseChunkedHeader() {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.responseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["transfer-encoding": "chunked"]), bodyless: true, into: &out)
        encoder.end(nil, into: &out)
        #expect(bytesText(out) == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    }

    @Test("an HTTP/1.0 response without length: body as it is, nothing at the end")
    func http10Response() {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.responseHead(HTTPResponseHead(version: .http1_0, status: .ok, headers: ["server": "x"]), bodyless: false, into: &out)
        encoder.body(ByteBuffer(string: "raw body"), into: &out)
        encoder.end(nil, into: &out)
        #expect(bytesText(out) == "HTTP/1.0 200 OK\r\nserver: x\r\n\r\nraw body")
    }

    @Test("a response with Content-Length: body as it is")
    func contentLengthResponse() {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.responseHead(HTTPResponseHead(version: .http1_1, status: .created, headers: ["Content-Length": "4"]), bodyless: false, into: &out)
        encoder.body(ByteBuffer(string: "done"), into: &out)
        encoder.end(nil, into: &out)
        #expect(bytesText(out) == "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
    }

    @Test("status line: HTTP/1.1 404 Not Found")
    func statusLine() {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.responseHead(HTTPResponseHead(version: .http1_1, status: .notFound, headers: ["content-length": "0"]), bodyless: false, into: &out)
        #expect(bytesText(out).hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(bytesText(out) == "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
    }

    @Test("a chunked message then a Content-Length one with the same encoder")
    func reuse() {
        var encoder = HTTP1Encoder()
        var out = ByteBuffer()
        encoder.responseHead(HTTPResponseHead(version: .http1_1, status: .ok), bodyless: false, into: &out)
        encoder.body(ByteBuffer(string: "a"), into: &out)
        encoder.end(nil, into: &out)
        encoder.responseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "1"]), bodyless: false, into: &out)
        encoder.body(ByteBuffer(string: "b"), into: &out)
        encoder.end(nil, into: &out)
        #expect(bytesText(out) == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb")
    }
}

@Suite("HTTP1Encoder and HTTP1Decoder round trip")
struct RoundTripTests {
    @Test("a chunked request encoded then decoded is the same request", arguments: [nil, 1, 4] as [Int?])
    func chunkedRequest(split: Int?) throws {
        let headers = HTTPHeaders([("Host", "example.com"), ("X-Trace", "abc"), ("Transfer-Encoding", "chunked")])
        let sent = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/api/v1/items?x=1", headers: headers)
        let pieces = ["hello", String(repeating: "z", count: 300), "", "!"]
        var encoder = HTTP1Encoder()
        var wire = ByteBuffer()
        encoder.requestHead(sent, into: &wire)
        for piece in pieces { encoder.body(ByteBuffer(string: piece), into: &wire) }
        encoder.end(["x-checksum": "42"], into: &wire)

        var decoder = HTTP1Decoder(kind: .request)
        let parts = try feedAll(Array(wire.readableBytesView), into: &decoder, splitEvery: split)
        let head = try #require(requestHead(parts.first))
        #expect(head.method == sent.method)
        #expect(head.uri == sent.uri)
        #expect(head.version == .http1_1)
        #expect(headerList(head.headers) == headerList(sent.headers))
        #expect(String(decoding: body(parts), as: UTF8.self) == pieces.joined())
        #expect(endCount(parts) == 1)
        guard case .end(let trailers)? = parts.last else { Issue.record("no end"); return }
        #expect(trailers.map(headerList) == ["x-checksum=42"])
        #expect(decoder.bufferedBytes == 0)
    }

    @Test("a response with chunking added by the encoder decodes to the same body")
    func chunkedResponse() throws {
        var encoder = HTTP1Encoder()
        var wire = ByteBuffer()
        encoder.responseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["server": "s"]), bodyless: false, into: &wire)
        encoder.body(ByteBuffer(string: "part one, "), into: &wire)
        encoder.body(ByteBuffer(string: "part two"), into: &wire)
        encoder.end(nil, into: &wire)

        var decoder = HTTP1Decoder(kind: .response)
        decoder.expectResponse(to: .GET)
        let parts = try feedAll(Array(wire.readableBytesView), into: &decoder, splitEvery: 2)
        #expect(summary(parts) == ["200 OK", "body:part one, part two", "end"])
        #expect(responseHead(parts.first).map { headerList($0.headers) } == ["server=s", "transfer-encoding=chunked"])
    }
}
