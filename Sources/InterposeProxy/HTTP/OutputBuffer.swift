import NIOCore

/// The bytes a handler gathers between flushes (a head, body pieces, an end: one write). The storage is
/// kept after a flush and written into again once the channel has let go of it, so a keep-alive
/// connection does not allocate an output buffer per message.
struct OutputBuffer {
    private var gathered: ByteBuffer?
    private var spare: ByteBuffer?

    var isEmpty: Bool { gathered == nil }
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

    /// What was gathered, to write now; its storage is kept for next time.
    mutating func take() -> ByteBuffer? {
        guard let out = gathered else { return nil }
        gathered = nil
        spare = out
        return out
    }
}
