#if canImport(Glibc)
import Glibc
#endif

/// A /proc file opened once and read again from the start on demand. Some files (such as
/// /proc/net/netfilter/nfnetlink_queue, mode 0440 root) can be read only by root: opened before
/// privileges are dropped, the descriptor keeps working afterwards.
public final class PinnedProcFile: @unchecked Sendable {
    private let fd: Int32
    public let path: String

    public init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// The whole file as it is now, or nil on a read error.
    public func read() -> String? {
        guard lseek(fd, 0, SEEK_SET) == 0 else { return nil }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
