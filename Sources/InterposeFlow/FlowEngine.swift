import Foundation
import Synchronization

/// Runs one reader thread per queue and a watchdog thread over them.
///
/// The watchdog: a reader that shows no sign of life for `stallTimeout` (stuck in a decision, or a
/// kernel call that never returns) is abandoned: its socket lets go of the queue, so the kernel's
/// fail-open (bypass) carries traffic, and a fresh reader is bound in its place.
public final class FlowEngine: Sendable {
    public let settings: FlowQueueSettings
    let rules: @Sendable () -> FlowRuleSet
    public let metrics: FlowMetrics
    let openKernel: @Sendable (UInt16) throws -> any FlowQueueKernel
    let clock: @Sendable () -> UInt64
    let log: @Sendable (String) -> Void
    let readStatistics: @Sendable () -> String?

    private let readers = Mutex<[UInt16: FlowQueueReader]>([:])
    private let threadsLeft = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)

    public init(settings: FlowQueueSettings, rules: @escaping @Sendable () -> FlowRuleSet, metrics: FlowMetrics,
                openKernel: @escaping @Sendable (UInt16) throws -> any FlowQueueKernel,
                clock: @escaping @Sendable () -> UInt64 = FlowClock.monotonicNanos,
                readStatistics: @escaping @Sendable () -> String? = { try? String(contentsOfFile: "/proc/net/netfilter/nfnetlink_queue", encoding: .utf8) },
                log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.settings = settings
        self.rules = rules
        self.metrics = metrics
        self.openKernel = openKernel
        self.clock = clock
        self.readStatistics = readStatistics
        self.log = log
    }

    /// Binds every queue (so a refusal is reported before anything runs), then starts the threads.
    public func start() throws {
        var bound: [FlowQueueReader] = []
        do {
            for q in settings.queues { bound.append(try bind(q)) }
        } catch {
            for r in bound { r.kernel.close() }
            throw error
        }
        for r in bound { launch(r) }
        spawn(name: "interpose-flow-watchdog") { [self] in watchdog() }
    }

    private func bind(_ queue: UInt16) throws -> FlowQueueReader {
        let kernel = try openKernel(queue)
        let reader = FlowQueueReader(queue: queue, kernel: kernel, settings: settings, rules: rules, metrics: metrics, clock: clock)
        do { try reader.configure() } catch {
            kernel.close()
            throw error
        }
        return reader
    }

    private func launch(_ reader: FlowQueueReader) {
        readers.withLock { $0[reader.queue] = reader }
        // A rebind racing `stop()` must stop too, or stop() would wait for it in vain.
        if stopping.load(ordering: .relaxed) { reader.stopRequested.store(true, ordering: .relaxed) }
        spawn(name: "interpose-nfq-\(reader.queue)") { [self] in
            reader.run()
            // Abandoned readers leave the queue to their successor; a stopping engine unbinds it.
            if !reader.abandoned.load(ordering: .relaxed) { _ = reader.kernel.configure(.unbind(queue: reader.queue)) }
            reader.kernel.close()
        }
    }

    private func spawn(name: String, _ body: @escaping @Sendable () -> Void) {
        threadsLeft.add(1, ordering: .relaxed)
        let t = Thread { [self] in
            body()
            threadsLeft.subtract(1, ordering: .releasing)
        }
        t.name = name
        t.start()
    }

    private func watchdog() {
        var lastStatistics: UInt64 = 0
        while !stopping.load(ordering: .relaxed) {
            usleep(UInt32(settings.watchdogInterval * 1e6))
            if stopping.load(ordering: .relaxed) { break }
            let now = clock()
            for reader in readers.withLock({ Array($0.values) }) where reader.isStalled(now: now, timeout: settings.stallTimeout) {
                log("flow engine: the reader of NFQUEUE \(reader.queue) made no progress for \(settings.stallTimeout)s; releasing the queue (fail-open) and restarting it")
                reader.abandon()
                metrics.watchdogRestart()
                readers.withLock { _ = $0.removeValue(forKey: reader.queue) }
            }
            // Queues whose reader was abandoned (or could not be bound again last time) get a new one.
            let running = Set(readers.withLock { $0.keys })
            for q in settings.queues where !running.contains(q) {
                do { launch(try bind(q)) } catch { log("flow engine: NFQUEUE \(q) not bound again yet: \(error)") }
            }
            if now &- lastStatistics > 1_000_000_000 {
                lastStatistics = now
                if let text = readStatistics() {
                    for s in QueueStatistics.parse(text) where settings.queues.contains(s.queue) { metrics.queueStatistics(s) }
                }
            }
        }
    }

    /// Stops the readers (each notices within its receive timeout), unbinds the queues, and waits
    /// for the threads, up to `timeout` seconds. A stalled reader is abandoned, not waited for.
    public func stop(timeout: Double = 2) {
        stopping.store(true, ordering: .relaxed)
        for r in readers.withLock({ Array($0.values) }) { r.stopRequested.store(true, ordering: .relaxed) }
        let deadline = Date().addingTimeInterval(timeout)
        while threadsLeft.load(ordering: .acquiring) > 0 && Date() < deadline { usleep(10_000) }
        for r in readers.withLock({ Array($0.values) }) where !r.finished.load(ordering: .acquiring) { r.abandon() }
    }

    public var boundQueues: [UInt16] { readers.withLock { $0.keys.sorted() } }
}
