import Foundation
import InterposeCapture
import Prometheus
import Testing
@testable import InterposeFlow

/// A kernel whose first read hands over one packet, and whose later blocking reads never come back
/// until the queue is released: a reader stuck in the kernel, for the watchdog to find.
final class StallingKernel: FlowQueueKernel, @unchecked Sendable {
    private let lock = NSLock()
    private var reads = 0
    private var _configs: [QueueConfigMessage] = []
    private var _sent: [UInt32] = []
    private var _released = false
    private var _closed = false
    private var _blocked = false

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    var configs: [QueueConfigMessage] { locked { _configs } }
    var sent: [UInt32] { locked { _sent } }
    var released: Bool { locked { _released } }
    var closed: Bool { locked { _closed } }
    /// A read is stuck right now.
    var blocked: Bool { locked { _blocked } }

    func configure(_ message: QueueConfigMessage) -> Int32 {
        locked { _configs.append(message) }
        return 0
    }

    func receive(wait: Bool, _ handle: (QueueEvent) -> Void) -> QueueReceive {
        let n: Int = locked { reads += 1; return reads }
        if n == 1 {
            Flows.bypass.withUnsafeBytes { handle(.packet(QueuedPacket(queue: 7, id: 1, mark: queuedMark, uid: nil, inbound: false, payload: $0))) }
            return .received
        }
        if !wait { return .wouldBlock }
        locked { _blocked = true }
        while !released { usleep(5_000) }
        locked { _blocked = false }
        return .failed(EBADF) // the released socket
    }

    func send(queue: UInt16, id: UInt32, verdict: KernelVerdict, batch: Bool) -> Int32 {
        locked { _sent.append(id) }
        return 0
    }

    func release() { locked { _released = true } }
    func close() { locked { _closed = true } }
}

/// Hands out the kernels a test prepared, one per `openKernel` call, and remembers them.
final class KernelFactory: @unchecked Sendable {
    private let lock = NSLock()
    private let make: @Sendable (_ index: Int, _ queue: UInt16) throws -> any FlowQueueKernel
    private var _opened: [any FlowQueueKernel] = []
    private var _queues: [UInt16] = []

    init(_ make: @escaping @Sendable (_ index: Int, _ queue: UInt16) throws -> any FlowQueueKernel) { self.make = make }

    func open(_ queue: UInt16) throws -> any FlowQueueKernel {
        lock.lock()
        defer { lock.unlock() }
        _queues.append(queue)
        let kernel = try make(_opened.count, queue)
        _opened.append(kernel)
        return kernel
    }

    var opened: [any FlowQueueKernel] { lock.lock(); defer { lock.unlock() }; return _opened }
    /// Every open attempt, failed ones included.
    var attempts: [UInt16] { lock.lock(); defer { lock.unlock() }; return _queues }
}

final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}

func watchdogSettings(_ queues: [UInt16]) -> FlowQueueSettings {
    var s = FlowQueueSettings(queues: queues)
    s.stallTimeout = 0.3
    s.watchdogInterval = 0.05
    return s
}

func makeEngine(_ settings: FlowQueueSettings, _ factory: KernelFactory, log: LogLines = LogLines(), statisticsPath: String = "/nonexistent/nfnetlink_queue",
                clock: @escaping @Sendable () -> UInt64 = FlowClock.monotonicNanos) -> FlowEngine {
    let rules = readerRules()
    return FlowEngine(settings: settings, rules: { rules }, metrics: FlowMetrics(registry: PrometheusCollectorRegistry()),
                      openKernel: { try factory.open($0) }, clock: clock, readStatistics: { try? String(contentsOfFile: statisticsPath, encoding: .utf8) }, log: { log.append($0) })
}

struct RefusedOpen: Error {}

@Suite(.serialized) struct FlowEngineWatchdogTests {
    @Test(.timeLimit(.minutes(1))) func stalledReaderIsReleasedAndReplaced() async throws {
        let stalled = StallingKernel()
        let healthy = ScriptedKernel(idleDelay: 0.02)
        let factory = KernelFactory { index, _ in index == 0 ? stalled as any FlowQueueKernel : healthy }
        let log = LogLines()
        let engine = makeEngine(watchdogSettings([7]), factory, log: log)
        try engine.start()
        defer { engine.stop() }
        #expect(engine.boundQueues == [7])

        // The first packet is answered; then the read hangs.
        let hung = await waitUntil(timeout: 2) { stalled.blocked }
        #expect(hung == true)
        #expect(stalled.sent == [1])

        // Within ~3 s: released, counted, and a new kernel opened and bound for the same queue.
        let replaced = await waitUntil(timeout: 3) {
            engine.metrics.restartCount >= 1 && healthy.configs.contains(.bind(queue: 7))
        }
        #expect(replaced == true, "\(log.all)")
        #expect(stalled.released)
        #expect(engine.metrics.restartCount == 1)
        #expect(factory.attempts == [7, 7])
        #expect(healthy.configs.prefix(4) == [
            .bind(queue: 7), .params(queue: 7, copyRange: 128), .maxLength(queue: 7, packets: 4096),
            .flags(queue: 7, flags: QueueFlags.failOpen | QueueFlags.gso | QueueFlags.uidGid, mask: 13),
        ])
        #expect(log.all.contains { $0.contains("NFQUEUE 7") && $0.contains("releasing") }, "\(log.all)")

        // The stuck thread wakes up, leaves the queue to its successor (no unbind) and closes its socket.
        #expect(await waitUntil(timeout: 2) { stalled.closed } == true)
        #expect(!stalled.configs.contains(.unbind(queue: 7)))

        // The new reader is healthy: it is not restarted again.
        try await Task.sleep(for: .milliseconds(500))
        #expect(engine.metrics.restartCount == 1)
        #expect(factory.opened.count == 2)

        engine.stop()
        #expect(healthy.configs.last == .unbind(queue: 7))
        #expect(healthy.closed)
    }

    @Test(.timeLimit(.minutes(1))) func refusedBindFailsStartAndStartsNothing() async throws {
        let refusing = ScriptedKernel { message in
            if case .bind = message { return EPERM }
            return 0
        }
        let factory = KernelFactory { _, _ in refusing }
        let engine = makeEngine(watchdogSettings([4]), factory)
        let error = #expect(throws: FlowQueueError.self) { try engine.start() }
        #expect(error?.description.contains("NFQUEUE 4: bind refused") == true, "\(String(describing: error))")
        #expect(refusing.closed)
        #expect(engine.boundQueues.isEmpty)
        // No watchdog runs: it would try to bind the queue again every 50 ms.
        try await Task.sleep(for: .milliseconds(300))
        #expect(factory.attempts == [4])
        // No reader runs either.
        #expect(!refusing.log.contains("recv wait"))
    }

    @Test(.timeLimit(.minutes(1))) func aLaterQueueFailingClosesTheEarlierOnes() async throws {
        let first = ScriptedKernel(idleDelay: 0.01)
        let factory = KernelFactory { _, queue in
            if queue == 2 { throw RefusedOpen() }
            return first
        }
        let engine = makeEngine(watchdogSettings([1, 2]), factory)
        #expect(throws: RefusedOpen.self) { try engine.start() }
        #expect(first.configs.first == .bind(queue: 1))
        #expect(first.closed)
        try await Task.sleep(for: .milliseconds(300))
        #expect(factory.attempts == [1, 2])
        #expect(first.log.isEmpty, "queue 1 was bound but never read")
    }

    @Test(.timeLimit(.minutes(1))) func stopUnbindsEveryQueue() async throws {
        let kernels = [ScriptedKernel(idleDelay: 0.02), ScriptedKernel(idleDelay: 0.02)]
        let factory = KernelFactory { index, _ in kernels[index] }
        let engine = makeEngine(watchdogSettings([1, 2]), factory)
        try engine.start()
        #expect(engine.boundQueues == [1, 2])
        // Both readers are reading.
        #expect(await waitUntil(timeout: 2) { kernels.allSatisfy { $0.log.contains("recv wait") } } == true)
        let started = Date()
        engine.stop()
        #expect(Date().timeIntervalSince(started) < 1.5, "readers notice within one receive timeout")
        #expect(kernels[0].configs.last == .unbind(queue: 1))
        #expect(kernels[1].configs.last == .unbind(queue: 2))
        #expect(kernels.allSatisfy { $0.closed && !$0.released })
        #expect(engine.metrics.restartCount == 0)
        // Stopped means stopped: nothing is bound again.
        try await Task.sleep(for: .milliseconds(200))
        #expect(factory.attempts == [1, 2])
    }

    @Test(.timeLimit(.minutes(1))) func watchdogPublishesTheKernelQueueCounters() async throws {
        let file = (NSTemporaryDirectory() as NSString).appendingPathComponent("nfnetlink_queue-\(UUID().uuidString)")
        try """
            7  12345     2 2  128    11     3      42  1
            8  12346     9 2  128    99    99      42  1

        """.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let kernel = ScriptedKernel(idleDelay: 0.02)
        let engine = makeEngine(watchdogSettings([7]), KernelFactory { _, _ in kernel }, statisticsPath: file)
        try engine.start()
        defer { engine.stop() }
        let published = await waitUntil(timeout: 3) { exposition(engine.metrics).contains(#"interpose_flow_queue_dropped{queue="7"} 11.0"#) }
        #expect(published == true, "\(exposition(engine.metrics))")
        let text = exposition(engine.metrics)
        #expect(text.contains(#"interpose_flow_queue_user_dropped{queue="7"} 3.0"#))
        #expect(text.contains(#"interpose_flow_queue_waiting{queue="7"} 2.0"#))
        // Queue 8 is someone else's.
        #expect(!text.contains(#"queue="8""#))
    }

    /// A heartbeat stored after the watchdog read its clock is newer than `now`: that is life, not a
    /// stall (an unsigned `now - heartbeat` would wrap around to a huge number).
    @Test func heartbeatNewerThanTheWatchdogClockIsNotAStall() {
        let reader = FlowQueueReader(queue: 1, kernel: ScriptedKernel(), settings: watchdogSettings([1]), rules: { .empty },
                                     metrics: FlowMetrics(registry: PrometheusCollectorRegistry()), clock: { 10_000_000_000 })
        #expect(!reader.isStalled(now: 10_000_000_000, timeout: 0.3))
        #expect(!reader.isStalled(now: 10_200_000_000, timeout: 0.3))
        #expect(reader.isStalled(now: 10_400_000_000, timeout: 0.3))
        #expect(!reader.isStalled(now: 10_000_000_000 - 1_000, timeout: 0.3))
    }

    /// The same race end to end: the watchdog reads its clock, is preempted for 50 ms, and meanwhile a
    /// healthy reader (reads time out every 20 ms) stores a newer heartbeat. Simulated by a clock that
    /// runs 50 ms behind on every thread but the readers' (Foundation does not name threads on Linux,
    /// so the kernel notes which threads read from it).
    @Test(.timeLimit(.minutes(1))) func healthyReaderIsNotRestartedWhenTheWatchdogIsLate() async throws {
        let readers = ThreadSet()
        let kernel = ThreadNotingKernel(ScriptedKernel(idleDelay: 0.02), readers)
        let engine = makeEngine(watchdogSettings([3]), KernelFactory { _, _ in kernel }) {
            let t = FlowClock.monotonicNanos()
            return readers.containsCurrent ? t : t - 50_000_000
        }
        try engine.start()
        try await Task.sleep(for: .milliseconds(400))
        engine.stop()
        let restarts = engine.metrics.restartCount
        #expect(restarts == 0)
    }
}

final class ThreadSet: @unchecked Sendable {
    private let lock = NSLock()
    private var threads: [pthread_t] = []
    func addCurrent() {
        lock.lock(); defer { lock.unlock() }
        if !threads.contains(where: { pthread_equal($0, pthread_self()) != 0 }) { threads.append(pthread_self()) }
    }
    var containsCurrent: Bool {
        lock.lock(); defer { lock.unlock() }
        return threads.contains { pthread_equal($0, pthread_self()) != 0 }
    }
}

/// Forwards to a scripted kernel, noting every thread that reads.
final class ThreadNotingKernel: FlowQueueKernel, @unchecked Sendable {
    let inner: ScriptedKernel
    let threads: ThreadSet
    init(_ inner: ScriptedKernel, _ threads: ThreadSet) { self.inner = inner; self.threads = threads }
    func configure(_ message: QueueConfigMessage) -> Int32 { inner.configure(message) }
    func receive(wait: Bool, _ handle: (QueueEvent) -> Void) -> QueueReceive {
        threads.addCurrent()
        return inner.receive(wait: wait, handle)
    }
    func send(queue: UInt16, id: UInt32, verdict: KernelVerdict, batch: Bool) -> Int32 { inner.send(queue: queue, id: id, verdict: verdict, batch: batch) }
    func release() { inner.release() }
    func close() { inner.close() }
}
