import NIOCore
import NIOHTTP1

/// Where a chunked body's decoding stands (RFC 9112 7.1): chunk size line (extensions ignored),
/// data, the CRLF after it, and after the last (size 0) chunk the trailer fields up to an empty line.
struct ChunkedState: Equatable {
    enum Step: Equatable {
        case size(value: Int, digits: Int)
        /// After the size: extensions up to the line end.
        case sizeLineEnd
        case data(remaining: Int)
        case dataCR
        case dataLF
        /// After the last chunk: trailer field lines, collected until the empty line.
        case trailers
    }

    enum Output {
        case data(ByteBuffer)
        case end(HTTPHeaders?)
    }

    var step = Step.size(value: 0, digits: 0)
    /// Chunk sizes above this are refused (16 hex digits would overflow).
    static let maxSizeDigits = 15
    private var trailerBytes: ByteBuffer?

    /// Consumes framing from `buffer` and returns the next data slice or the end; nil when more bytes are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws -> Output? {
        while buffer.readableBytes > 0 {
            switch step {
            case .size(let value, let digits):
                let b = buffer.readInteger(as: UInt8.self)!
                if let d = hexValue(b) {
                    guard digits < Self.maxSizeDigits else { throw HTTPParserError.invalidChunkSize }
                    step = .size(value: value * 16 + d, digits: digits + 1)
                } else if digits > 0 && (b == UInt8(ascii: ";") || b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r")) {
                    step = .sizeLineEnd
                    chunkSize = value
                } else if digits > 0 && b == UInt8(ascii: "\n") {
                    chunkSize = value
                    startChunk(value)
                } else {
                    throw HTTPParserError.invalidChunkSize
                }
            case .sizeLineEnd:
                // Extensions are skipped up to the LF.
                let view = buffer.readableBytesView
                guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    return nil
                }
                buffer.moveReaderIndex(to: lf + 1)
                startChunk(chunkSize)
            case .data(let remaining):
                let n = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: n)!
                step = n == remaining ? .dataCR : .data(remaining: remaining - n)
                return .data(slice)
            case .dataCR:
                let b = buffer.readInteger(as: UInt8.self)!
                if b == UInt8(ascii: "\r") { step = .dataLF } else if b == UInt8(ascii: "\n") { step = .size(value: 0, digits: 0) } else {
                    throw HTTPParserError.invalidChunkSize
                }
            case .dataLF:
                guard buffer.readInteger(as: UInt8.self)! == UInt8(ascii: "\n") else { throw HTTPParserError.lfExpected }
                step = .size(value: 0, digits: 0)
            case .trailers:
                // The trailer section ends with an empty line; usually that line is all there is. Trailer
                // fields are gathered until it, then read as a head without a start line.
                var all = trailerBytes ?? ByteBuffer()
                all.writeBuffer(&buffer)
                guard let length = all.withUnsafeReadableBytes({ Self.trailerSectionLength($0) }) else {
                    if all.readableBytes > 64 * 1024 { throw HTTPParserError.headerOverflow }
                    trailerBytes = all
                    return nil
                }
                // Bytes past the trailers belong to the next message: put them back.
                let rest = all.getSlice(at: all.readerIndex + length, length: all.readableBytes - length)!
                buffer = rest
                let trailers = length <= 2 ? nil : try all.withUnsafeReadableBytes { try HTTP1HeadScanner.fields(UnsafeRawBufferPointer(rebasing: $0[..<length])) }
                reset()
                return .end(trailers)
            }
        }
        return nil
    }

    private var chunkSize = 0

    private mutating func startChunk(_ size: Int) {
        step = size == 0 ? .trailers : .data(remaining: size)
    }

    private mutating func reset() {
        step = .size(value: 0, digits: 0)
        trailerBytes = nil
        chunkSize = 0
    }

    /// The trailer section's length up to and including its empty line, or nil when it is not all there.
    private static func trailerSectionLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        if bytes.count >= 2 && bytes[0] == UInt8(ascii: "\r") && bytes[1] == UInt8(ascii: "\n") { return 2 }
        if bytes.first == UInt8(ascii: "\n") { return 1 }
        return HTTP1HeadScanner.headLength(bytes)
    }

    @inline(__always)
    private func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(b - 48)
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(b - 87)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(b - 55)
        default: return nil
        }
    }
}
