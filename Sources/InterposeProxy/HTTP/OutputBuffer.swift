import NIOCore

/// The bytes a handler gathers between flushes (a head, body pieces, an end: one write). The storage is
/// kept after a flush and written into again once the channel has let go of it, so a keep-alive
/// connection does not allocate an output buffer per message.
struct OutputBuffer {
    private var gathered: ByteBuffer?
    private var spare: ByteBuffer?
    /// Bytes were handed to the channel (a large body piece) and not flushed yet.
    var written = false

    var readableBytes: Int { gathered?.readableBytes ?? 0 }

    /// Appends through `write`.
    @inline(__always)
    mutating func append(_ allocator: ByteBufferAllocator, _ write: (inout ByteBuffer) -> Void) {
        var out: ByteBuffer
        if let g = gathered {
            out = g
            gathered = nil  // one reference while writing: no copy
        } else if var s = spare {
            spare = nil
            s.clear()  // the same storage when the last write is done with it, else a fresh one
            out = s
        } else {
            out = allocator.buffer(capacity: 1024)
        }
        write(&out)
        gathered = out
    }

    /// Hands what was gathered to the channel without flushing once it is this large (a body streams
    /// through in pieces of about this size).
    static let writeThreshold = 64 * 1024

    /// Writes what was gathered when it has grown past `writeThreshold`; the next flush sends it.
    mutating func writeIfLarge(_ write: (ByteBuffer) -> Void) {
        guard readableBytes >= Self.writeThreshold, let out = take() else { return }
        write(out)
        written = true
    }

    /// Everything gathered or written since the last flush, for a flush now: the bytes still to write
    /// (if any) and whether a flush is needed at all.
    mutating func takeForFlush() -> (bytes: ByteBuffer?, flush: Bool) {
        let bytes = take()
        let flush = bytes != nil || written
        written = false
        return (bytes, flush)
    }

    /// What was gathered, to write now; its storage is kept for next time.
    mutating func take() -> ByteBuffer? {
        guard let out = gathered else { return nil }
        gathered = nil
        spare = out
        return out
    }
}
