import CInterposeLinux
import InterposeCapture
import InterposeKernel

/// The real kernel behind the read loop: an NFQUEUE netlink socket.
public final class NetfilterQueueKernel: FlowQueueKernel, @unchecked Sendable {
    let socket: NetfilterQueueSocket

    public init(settings: FlowQueueSettings) throws {
        socket = try NetfilterQueueSocket(receiveBufferBytes: settings.receiveBufferBytes, receiveTimeoutMilliseconds: settings.receiveTimeoutMilliseconds,
                                          fallbackMark: FlowMark.proxy, markMask: FlowMark.mask)
    }

    public func configure(_ message: QueueConfigMessage) -> Int32 {
        switch message {
        case .bind(let q): return socket.bind(queue: q)
        case .unbind(let q): return socket.unbind(queue: q)
        case .params(let q, let range): return socket.setCopyRange(queue: q, bytes: range)
        case .maxLength(let q, let n): return socket.setMaxLength(queue: q, packets: n)
        case .flags(let q, let flags, let mask): return socket.setFlags(queue: q, flags: flags, mask: mask)
        }
    }

    public func receive(wait: Bool, _ handle: (QueueEvent) -> Void) -> QueueReceive {
        switch socket.receive(wait: wait) {
        case .nothing: return wait ? .timedOut : .wouldBlock
        case .failed(let e): return .failed(e)
        case .events(let events):
            for ev in events {
                if ev.kind == Int32(CINTERPOSE_NFQ_ERROR) {
                    if ev.error != 0 { handle(.error(ev.error)) }
                    continue
                }
                let payload = UnsafeRawBufferPointer(start: ev.payload, count: Int(ev.payload_len))
                // Hook 0 is prerouting: the packet came in from outside.
                handle(.packet(QueuedPacket(queue: ev.queue, id: ev.id, mark: ev.mark, uid: ev.has_uid != 0 ? ev.uid : nil,
                                            inbound: ev.hook == 0, payload: payload)))
            }
            return .received
        }
    }

    public func send(queue: UInt16, id: UInt32, verdict: KernelVerdict, batch: Bool) -> Int32 {
        socket.verdict(queue: queue, id: id, accept: verdict.accept, mark: verdict.mark, batch: batch)
    }

    public func release() { socket.abandon() }
    public func close() { socket.close() }
}
