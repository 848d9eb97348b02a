import NIOCore
import NIOHTTP1

/// One piece of an HTTP/1 message as the proxy handles it: a head, body bytes (without chunk
/// framing), or the end (with trailers when the chunked body had some).
public enum HTTP1Part: Sendable {
    case requestHead(HTTPRequestHead)
    case responseHead(HTTPResponseHead)
    /// Heads left as bytes (a decoder made with `rawHeads`).
    case rawRequestHead(RawRequestHead)
    case rawResponseHead(RawResponseHead)
    case body(ByteBuffer)
    case end(HTTPHeaders?)
}

/// An HTTP/1.0 and 1.1 message decoder for a proxy: bytes in, heads and body slices out, nothing
/// done with them. Written for the proxy's request path instead of NIO's llhttp-based decoder, which
/// is built to be a channel handler of its own (a pipeline hop and a boxed part per message piece):
/// this one is a value the connection handler owns and drives.
///
/// - Heads: request line or status line and header fields, `CRLF` or bare `LF` line ends; no obsolete
///   line folding; at most `maxHeadSize` bytes (`HTTPParserError.headerOverflow`, 431).
/// - Framing (RFC 9112 6.3): a message with Transfer-Encoding is chunked when `chunked` is the last
///   coding (a request otherwise is refused, a response is read until close); Transfer-Encoding and
///   Content-Length together are refused (request smuggling), as are differing Content-Lengths.
///   Without either a request has no body and a response runs until the connection closes.
/// - Responses to HEAD, 1xx, 204 and 304 have no body; a 1xx other than 101 is followed by the final
///   response. Which request a response answers is told with `expectResponse(to:)`.
/// - Upgrades: after a request with `Connection: upgrade` and an `Upgrade` header, or a `101`
///   response, decoding stops; `resume()` goes on (the upgrade was refused), `takeRemainingBytes()`
///   hands the bytes that follow to whoever speaks the new protocol.
public struct HTTP1Decoder {
    public enum Kind: Sendable { case request, response }

    public let kind: Kind
    public let maxHeadSize: Int
    private var buffer = ByteBuffer()
    private var state = State.head
    /// Methods of the requests whose responses are awaited, oldest first (response decoding).
    private var methods: [HTTPMethod] = []
    private var methodsStart = 0

    enum State: Equatable {
        case head
        case length(Int)
        case chunked(ChunkedState)
        case untilClose
        /// The message ended (pipelining continues at the next head) or an upgrade stopped decoding.
        case stopped
        case failed
    }

    /// Heads come as `.rawRequestHead` / `.rawResponseHead` (their fields are not made into Strings).
    public let rawHeads: Bool

    public init(kind: Kind, maxHeadSize: Int = 80 * 1024, rawHeads: Bool = false) {
        self.kind = kind
        self.maxHeadSize = maxHeadSize
        self.rawHeads = rawHeads
    }

    /// Bytes read from the connection.
    public mutating func feed(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// What the head decoded last says about the connection.
    public private(set) var lastHead = HeadFacts(keepAlive: true, expectsContinue: false)

    /// Bytes received and not yet decoded.
    public var bufferedBytes: Int { buffer.readableBytes }

    /// Whether decoding stopped after an upgrade request or a 101 response.
    public var isStopped: Bool { state == .stopped }

    /// A request was sent with this method: its response is the next one decoded after the earlier ones.
    public mutating func expectResponse(to method: HTTPMethod) {
        if methodsStart > 16 && methodsStart * 2 > methods.count {
            methods.removeFirst(methodsStart)
            methodsStart = 0
        }
        methods.append(method)
    }

    /// Decoding goes on after a stop (the upgrade did not happen).
    public mutating func resume() {
        if state == .stopped { state = .head }
    }

    /// The bytes after an upgrade, for the protocol that takes over.
    public mutating func takeRemainingBytes() -> ByteBuffer? {
        guard buffer.readableBytes > 0 else { return nil }
        defer { buffer = ByteBuffer() }
        return buffer
    }

    /// The connection closed: a body that runs until close ends here. Nil when nothing was pending;
    /// throws when a message was cut short.
    public mutating func finishAtEOF() throws -> HTTP1Part? {
        switch state {
        case .untilClose:
            state = .head
            return .end(nil)
        case .length, .chunked:
            state = .failed
            throw HTTPParserError.invalidEOFState
        case .head:
            if buffer.readableBytes > 0 { state = .failed; throw HTTPParserError.invalidEOFState }
            return nil
        case .stopped, .failed:
            return nil
        }
    }

    /// The next part the buffered bytes make, or nil when more bytes are needed (or decoding stopped).
    public mutating func next() throws -> HTTP1Part? {
        let part = try decodeNext()
        // All read: the received buffer is let go, so the channel can read into it again instead of
        // allocating a new one for the next read.
        if part == nil && buffer.readableBytes == 0 && buffer.capacity > 0 { buffer = ByteBuffer() }
        return part
    }

    private mutating func decodeNext() throws -> HTTP1Part? {
        switch state {
        case .failed, .stopped:
            return nil
        case .head:
            return try decodeHead()
        case .length(let remaining):
            if remaining == 0 { return endMessage(nil) }
            let n = min(remaining, buffer.readableBytes)
            guard n > 0 else { return nil }
            let slice = buffer.readSlice(length: n)!
            state = remaining == n ? .length(0) : .length(remaining - n)
            return .body(slice)
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            let slice = buffer.readSlice(length: buffer.readableBytes)!
            return .body(slice)
        case .chunked(var chunk):
            let part: ChunkedState.Output?
            do { part = try chunk.next(&buffer) } catch {
                state = .failed
                throw error
            }
            state = .chunked(chunk)
            switch part {
            case nil: return nil
            case .data(let slice): return .body(slice)
            case .end(let trailers): return endMessage(trailers)
            }
        }
    }

    /// What follows the end of a message: the next head, or a stop after an upgrade.
    private var afterEnd = State.head

    private mutating func endMessage(_ trailers: HTTPHeaders?) -> HTTP1Part {
        state = afterEnd
        afterEnd = .head
        return .end(trailers)
    }

    // MARK: heads

    private mutating func decodeHead() throws -> HTTP1Part? {
        // Empty lines before a request line are ignored (RFC 9112 2.2: some clients end a body with an extra CRLF).
        if kind == .request {
            while let b = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), b == UInt8(ascii: "\r") || b == UInt8(ascii: "\n") {
                buffer.moveReaderIndex(forwardBy: 1)
            }
        }
        let found = buffer.withUnsafeReadableBytes { HTTP1HeadScanner.headLength($0) }
        guard let length = found else {
            if buffer.readableBytes > maxHeadSize { state = .failed; throw HTTPParserError.headerOverflow }
            return nil
        }
        if length > maxHeadSize { state = .failed; throw HTTPParserError.headerOverflow }
        do {
            let part: HTTP1Part
            let framing: HTTP1HeadScanner.Framing
            switch kind {
            case .request:
                let raw = rawHeads
                let parsed = try buffer.withUnsafeReadableBytes {
                    try HTTP1HeadScanner.request(UnsafeRawBufferPointer(rebasing: $0[..<length]), keepFields: !raw)
                }
                if raw {
                    let fields = RawFields(bytes: buffer.getSlice(at: buffer.readerIndex, length: length)!, fieldsStart: parsed.fieldsStart)
                    part = .rawRequestHead(RawRequestHead(method: parsed.method, uri: parsed.uri, version: parsed.version, fields: fields, facts: parsed.facts))
                } else {
                    part = .requestHead(parsed.head)
                }
                framing = parsed.framing
                lastHead = parsed.facts
                if framing == .untilClose { throw HTTPParserError.invalidContentLength }  // a request cannot run until close
                afterEnd = parsed.upgrade ? .stopped : .head
            case .response:
                let raw = rawHeads
                let parsed = try buffer.withUnsafeReadableBytes {
                    try HTTP1HeadScanner.response(UnsafeRawBufferPointer(rebasing: $0[..<length]), keepFields: !raw)
                }
                let code = parsed.status.code
                let method: HTTPMethod? = methodsStart < methods.count ? methods[methodsStart] : nil
                var framing2 = parsed.framing
                if code >= 100 && code < 200 {
                    // Interim: no body; the final response to the same request follows (101 ends HTTP here).
                    framing2 = .length(0)
                    afterEnd = code == 101 ? .stopped : .head
                } else {
                    if methodsStart < methods.count { methodsStart += 1 }
                    if method == .HEAD || code == 204 || code == 304 { framing2 = .length(0) }
                    afterEnd = .head
                }
                if raw {
                    let bytes = buffer.getSlice(at: buffer.readerIndex, length: length)!
                    part = .rawResponseHead(RawResponseHead(status: parsed.status, version: parsed.version,
                                                            fields: RawFields(bytes: bytes, fieldsStart: parsed.fieldsStart)))
                } else {
                    part = .responseHead(parsed.head)
                }
                framing = framing2
                lastHead = parsed.facts
            }
            buffer.moveReaderIndex(forwardBy: length)
            switch framing {
            case .length(let n): state = .length(n)
            case .chunked: state = .chunked(ChunkedState())
            case .untilClose: state = .untilClose
            }
            return part
        } catch {
            state = .failed
            throw error
        }
    }
}
