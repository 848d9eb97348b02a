import CInterposeLinux
/// The kernel side of one NFQUEUE socket, as the read loop needs it. The real one is a netlink
/// socket (`NetfilterQueueSocket`); tests put a scripted fake behind it to drive acks, stale
/// verdicts, ENOBUFS, stalls and shutdown.
public protocol FlowQueueKernel: AnyObject, Sendable {
    /// Sends one config message and waits for its ack: 0, or the kernel's errno.
    func configure(_ message: QueueConfigMessage) -> Int32
    /// Reads one datagram and hands over its events (valid only during the call). `wait` false
    /// returns `.wouldBlock` at once when nothing is there; a blocking read returns `.timedOut` after
    /// the socket's receive timeout, so the loop can check for shutdown.
    func receive(wait: Bool, _ handle: (QueueEvent) -> Void) -> QueueReceive
    /// One verdict, or (batch) the same verdict for every queued id up to `id`: 0 or errno.
    func send(queue: UInt16, id: UInt32, verdict: KernelVerdict, batch: Bool) -> Int32
    /// Lets go of the kernel queue now (it unbinds, fail-open applies) without closing the handle.
    func release()
    func close()
}

public enum QueueConfigMessage: Equatable, Sendable {
    case bind(queue: UInt16)
    case unbind(queue: UInt16)
    case params(queue: UInt16, copyRange: UInt32)
    case maxLength(queue: UInt16, packets: UInt32)
    case flags(queue: UInt16, flags: UInt32, mask: UInt32)
}

/// NFQA_CFG_F_* flags, from the C shim (whose values are checked against the kernel's header when it compiles).
public enum QueueFlags {
    public static let failOpen = UInt32(CINTERPOSE_NFQ_F_FAIL_OPEN)
    public static let gso = UInt32(CINTERPOSE_NFQ_F_GSO)
    public static let uidGid = UInt32(CINTERPOSE_NFQ_F_UID_GID)
}

public enum QueueReceive: Equatable, Sendable {
    case received
    case timedOut
    case wouldBlock
    case failed(Int32)
}

/// A packet's metadata and the first bytes of its payload.
public struct QueuedPacket {
    public var queue: UInt16
    public var id: UInt32
    public var mark: UInt32
    public var uid: UInt32?
    /// Queued at prerouting (arrived from outside) rather than at local output.
    public var inbound: Bool
    public var payload: UnsafeRawBufferPointer

    public init(queue: UInt16, id: UInt32, mark: UInt32, uid: UInt32?, inbound: Bool, payload: UnsafeRawBufferPointer) {
        self.queue = queue
        self.id = id
        self.mark = mark
        self.uid = uid
        self.inbound = inbound
        self.payload = payload
    }
}

public enum QueueEvent {
    case packet(QueuedPacket)
    /// An asynchronous netlink error: ENOENT for a verdict on an id the kernel no longer holds.
    case error(Int32)
}
