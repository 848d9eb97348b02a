import CInterposeLinux
#if canImport(Glibc)
import Glibc
#endif

/// One NFQUEUE netlink socket (libnetfilter_queue's libmnl API through the C shim). Not thread-safe
/// for reading: one reader thread owns it; `abandon` may come from the watchdog thread.
public final class NetfilterQueueSocket: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    /// One datagram: netlink messages can reach 64 KiB; a smaller buffer truncates them.
    private let buffer: UnsafeMutableRawBufferPointer
    private let events: UnsafeMutablePointer<cinterpose_nfq_event>
    private let eventCapacity = 512

    public struct OpenError: Error, CustomStringConvertible {
        public let description: String
    }

    /// `fallbackMark` in `markMask`: the verdict for packets read while a config message awaits its ack.
    public init(receiveBufferBytes: UInt32, receiveTimeoutMilliseconds: Int, fallbackMark: UInt32, markMask: UInt32) throws(OpenError) {
        guard let h = cinterpose_nfq_open(receiveBufferBytes, Int32(receiveTimeoutMilliseconds), fallbackMark, markMask) else {
            throw OpenError(description: "cannot open a netfilter netlink socket: \(String(cString: strerror(errno)))")
        }
        handle = h
        buffer = .allocate(byteCount: 0xFFFF + 4096, alignment: 16)
        events = .allocate(capacity: eventCapacity)
    }

    deinit {
        buffer.deallocate()
        events.deallocate()
    }

    public func bind(queue: UInt16) -> Int32 { -cinterpose_nfq_bind(handle, queue, 0) }
    public func unbind(queue: UInt16) -> Int32 { -cinterpose_nfq_bind(handle, queue, 1) }
    public func setCopyRange(queue: UInt16, bytes: UInt32) -> Int32 { -cinterpose_nfq_set_params(handle, queue, bytes) }
    public func setMaxLength(queue: UInt16, packets: UInt32) -> Int32 { -cinterpose_nfq_set_maxlen(handle, queue, packets) }
    public func setFlags(queue: UInt16, flags: UInt32, mask: UInt32) -> Int32 { -cinterpose_nfq_set_flags(handle, queue, flags, mask) }

    public enum Received {
        case events(UnsafeBufferPointer<cinterpose_nfq_event>)
        case nothing
        case failed(Int32)
    }

    /// Reads one datagram and splits it into events, which stay valid until the next call.
    public func receive(wait: Bool) -> Received {
        let n = cinterpose_nfq_recv(handle, buffer.baseAddress, buffer.count, wait ? 0 : 1)
        if n < 0 {
            let e = Int32(-n)
            return e == EAGAIN || e == EWOULDBLOCK ? .nothing : .failed(e)
        }
        let count = cinterpose_nfq_parse(buffer.baseAddress, Int(n), events, Int32(eventCapacity))
        return .events(UnsafeBufferPointer(start: events, count: Int(count)))
    }

    public func verdict(queue: UInt16, id: UInt32, accept: Bool, mark: UInt32?, batch: Bool) -> Int32 {
        -cinterpose_nfq_verdict(handle, queue, id, accept ? 1 : 0, mark == nil ? 0 : 1, mark ?? 0, batch ? 1 : 0)
    }

    public func abandon() { _ = cinterpose_nfq_abandon(handle) }

    private var closed = false
    public func close() {
        guard !closed else { return }
        closed = true
        cinterpose_nfq_close(handle)
    }
}
