import Foundation
import InterposeConfig
import Synchronization

/// The engine's settings for its queues.
public struct FlowQueueSettings: Sendable, Equatable {
    public var queues: [UInt16]
    /// Packets the kernel holds per queue before it drops (or, fail-open, accepts) new ones.
    public var queueLength: UInt32 = 4096
    /// Bytes of each packet copied to us: IPv6 with extension headers plus the ports fit.
    public var copyRange: UInt32 = 128
    public var failOpen = true
    public var receiveTimeoutMilliseconds = 200
    /// A reader that shows no progress for this long is declared stalled by the watchdog.
    public var stallTimeout: Double = 2
    public var watchdogInterval: Double = 0.25
    /// Verdicts held back for batching at most; they are also flushed whenever the socket is empty.
    public var maxPendingVerdicts = 64

    public init(queues: [UInt16]) { self.queues = queues }

    /// Receive buffer sized to the queue: every queued packet's message can wait in it.
    public var receiveBufferBytes: UInt32 { UInt32(max(256 * 1024, min(64 * 1024 * 1024, UInt64(queueLength) * UInt64(copyRange + 256)))) }
}

public struct FlowQueueError: Error, CustomStringConvertible {
    public let description: String
}

/// Reads one queue: decides on every packet and answers it. One thread runs `run()`; it never
/// calls into Swift Concurrency, and returns when asked to stop or when the watchdog abandons it.
public final class FlowQueueReader: Sendable {
    public let queue: UInt16
    let kernel: any FlowQueueKernel
    let settings: FlowQueueSettings
    let rules: @Sendable () -> FlowRuleSet
    let metrics: FlowMetrics
    let clock: @Sendable () -> UInt64

    /// Monotonic nanoseconds of the last sign of life: a return from receive, or a flush.
    let heartbeat: Atomic<UInt64>
    let stopRequested = Atomic<Bool>(false)
    let abandoned = Atomic<Bool>(false)
    let finished = Atomic<Bool>(false)

    public init(queue: UInt16, kernel: any FlowQueueKernel, settings: FlowQueueSettings, rules: @escaping @Sendable () -> FlowRuleSet,
                metrics: FlowMetrics, clock: @escaping @Sendable () -> UInt64 = FlowClock.monotonicNanos) {
        self.queue = queue
        self.kernel = kernel
        self.settings = settings
        self.rules = rules
        self.metrics = metrics
        self.clock = clock
        heartbeat = Atomic(clock())
    }

    /// Binds the queue and sets it up, reading the ack of each message. A refusal names the step:
    /// EPERM on bind means another process holds the queue (or CAP_NET_ADMIN is missing).
    public func configure() throws(FlowQueueError) {
        var flags = QueueFlags.gso | QueueFlags.uidGid
        if settings.failOpen { flags |= QueueFlags.failOpen }
        let steps: [(QueueConfigMessage, String)] = [
            (.bind(queue: queue), "bind"),
            (.params(queue: queue, copyRange: settings.copyRange), "set copy mode"),
            (.maxLength(queue: queue, packets: settings.queueLength), "set queue length"),
            (.flags(queue: queue, flags: flags, mask: QueueFlags.failOpen | QueueFlags.gso | QueueFlags.uidGid), "set flags"),
        ]
        for (message, step) in steps {
            let e = kernel.configure(message)
            guard e == 0 else {
                var why = String(cString: strerror(e))
                if e == EPERM && step == "bind" { why += " (another process holds NFQUEUE \(queue), or CAP_NET_ADMIN is missing)" }
                throw FlowQueueError(description: "NFQUEUE \(queue): \(step) refused: \(why)")
            }
        }
    }

    private struct Pending {
        var id: UInt32
        var verdict: KernelVerdict
    }

    public func run() {
        defer { finished.store(true, ordering: .releasing) }
        var pending: [Pending] = []
        pending.reserveCapacity(settings.maxPendingVerdicts)
        while !stopRequested.load(ordering: .relaxed) && !abandoned.load(ordering: .relaxed) {
            // One snapshot of the rules per datagram, not one lock per packet, taken when the datagram is
            // there (a snapshot taken before a blocking wait could predate a reload).
            var snapshot: FlowRuleSet?
            let outcome = kernel.receive(wait: pending.isEmpty) { event in
                switch event {
                case .packet(let p):
                    let ruleSet = snapshot ?? rules()
                    snapshot = ruleSet
                    pending.append(Pending(id: p.id, verdict: verdict(for: p, rules: ruleSet)))
                case .error(let e): noteError(e)
                }
            }
            heartbeat.store(clock(), ordering: .relaxed)
            if abandoned.load(ordering: .relaxed) { break }
            switch outcome {
            case .received:
                if pending.count >= settings.maxPendingVerdicts { flush(&pending) }
            case .wouldBlock, .timedOut:
                flush(&pending)
            case .failed(let e):
                flush(&pending)
                noteError(e)
                if e != EINTR && e != ENOBUFS { usleep(10_000) } // a broken socket must not spin a CPU
            }
        }
        flush(&pending)
    }

    func verdict(for p: QueuedPacket, rules ruleSet: FlowRuleSet) -> KernelVerdict {
        let start = clock()
        let decision: FlowDecision
        if let tuple = FlowTuple.parse(p.payload) {
            decision = ruleSet.decide(tuple, direction: p.inbound ? .inbound : .outbound, uid: p.uid, now: start)
        } else {
            decision = .noRuleMatched
        }
        metrics.decided(decision, nanoseconds: clock() &- start)
        return decision.kernelVerdict(packetMark: p.mark)
    }

    func noteError(_ e: Int32) {
        switch e {
        case ENOENT: metrics.staleVerdict()
        case ENOBUFS: metrics.enobufs()
        case EINTR, 0: break
        default: metrics.queueError()
        }
    }

    /// Sends the held verdicts in order; a run of equal verdicts goes as one batch verdict (every id
    /// up to the run's last was read and decided by this reader, in order).
    private func flush(_ pending: inout [Pending]) {
        guard !pending.isEmpty else { return }
        var start = 0
        while start < pending.count {
            var end = start
            while end + 1 < pending.count && pending[end + 1].verdict == pending[start].verdict && pending[end + 1].id > pending[end].id { end += 1 }
            let e = kernel.send(queue: queue, id: pending[end].id, verdict: pending[start].verdict, batch: end > start)
            if e != 0 && !abandoned.load(ordering: .relaxed) { noteError(e) }
            metrics.verdictsSent(messages: 1, packets: end - start + 1)
            start = end + 1
        }
        pending.removeAll(keepingCapacity: true)
        heartbeat.store(clock(), ordering: .relaxed)
    }

    func isStalled(now: UInt64, timeout: Double) -> Bool {
        // The reader may beat after the watchdog read its clock: a heartbeat newer than `now` is life.
        let beat = heartbeat.load(ordering: .relaxed)
        return !finished.load(ordering: .acquiring) && now > beat && now - beat > UInt64(timeout * 1e9)
    }

    /// Watchdog: the kernel lets go of the queue now; the thread, whenever it wakes, just leaves.
    func abandon() {
        abandoned.store(true, ordering: .relaxed)
        kernel.release()
    }
}

public enum FlowClock {
    @inline(__always) public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
