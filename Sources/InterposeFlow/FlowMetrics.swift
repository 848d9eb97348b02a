import Prometheus
import Synchronization

/// The flow engine's metrics, in the proxy's registry. Totals are also kept as atomics so tests and
/// `/config_dump` can read them without parsing the exposition format.
public final class FlowMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let verdicts = Mutex<[VerdictKey: VerdictCounter]>([:])
    private let decisionSeconds: ValueHistogram
    private let staleCounter: Counter
    private let enobufsCounter: Counter
    private let errorCounter: Counter
    private let restartCounter: Counter
    private let batchedCounter: Counter
    private let queueGauges = Mutex<[UInt16: (dropped: Gauge, userDropped: Gauge, waiting: Gauge)]>([:])

    public let decisions = Atomic<Int>(0)
    public let staleVerdicts = Atomic<Int>(0)
    public let enobufsErrors = Atomic<Int>(0)
    public let queueErrors = Atomic<Int>(0)
    public let watchdogRestarts = Atomic<Int>(0)
    public let verdictMessages = Atomic<Int>(0)

    final class VerdictCounter: Sendable {
        let exported: Counter
        let count = Atomic<Int>(0)
        init(_ c: Counter) { exported = c }
    }

    struct VerdictKey: Hashable {
        let action: FlowDecision.Action
        let policy: String
        let rule: String
        let rateLimited: Bool
    }

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        decisionSeconds = registry.makeValueHistogram(name: "interpose_flow_decision_seconds",
                                                      buckets: [1e-6, 2e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2],
                                                      help: "Time to decide on one queued packet")
        staleCounter = registry.makeCounter(name: "interpose_flow_stale_verdicts_total", help: "Verdicts for ids the kernel no longer held (ENOENT)")
        enobufsCounter = registry.makeCounter(name: "interpose_flow_enobufs_total", help: "ENOBUFS errors read from the queue socket")
        errorCounter = registry.makeCounter(name: "interpose_flow_queue_errors_total", help: "Other errors on the queue socket")
        restartCounter = registry.makeCounter(name: "interpose_flow_watchdog_restarts_total", help: "Queue readers the watchdog found stalled and replaced")
        batchedCounter = registry.makeCounter(name: "interpose_flow_batched_verdicts_total", help: "Packets answered by batch verdicts")
    }

    func decided(_ d: FlowDecision, nanoseconds: UInt64) {
        decisions.add(1, ordering: .relaxed)
        let key = VerdictKey(action: d.action, policy: d.policy, rule: d.rule, rateLimited: d.rateLimited)
        let counter = verdicts.withLock { map in
            if let c = map[key] { return c }
            let c = VerdictCounter(registry.makeCounter(name: "interpose_flow_verdicts_total", labels: [
                ("action", d.action.rawValue), ("policy", d.policy), ("rule", d.rule), ("rate_limited", d.rateLimited ? "true" : "false"),
            ]))
            map[key] = c
            return c
        }
        counter.exported.increment()
        counter.count.add(1, ordering: .relaxed)
        decisionSeconds.record(Double(nanoseconds) / 1e9)
    }

    /// The verdicts counted for one action (all policies and rules), for tests and the admin dump.
    public func verdictCount(_ action: FlowDecision.Action, rule: String? = nil) -> Int {
        verdicts.withLock { map in
            map.filter { $0.key.action == action && (rule == nil || $0.key.rule == rule) }.values.reduce(0) { $0 + $1.count.load(ordering: .relaxed) }
        }
    }

    func verdictsSent(messages: Int, packets: Int) {
        verdictMessages.add(messages, ordering: .relaxed)
        if packets > 1 { batchedCounter.increment(by: Int64(packets)) }
    }

    func staleVerdict() { staleVerdicts.add(1, ordering: .relaxed); staleCounter.increment() }
    func enobufs() { enobufsErrors.add(1, ordering: .relaxed); enobufsCounter.increment() }
    func queueError() { queueErrors.add(1, ordering: .relaxed); errorCounter.increment() }
    func watchdogRestart() { watchdogRestarts.add(1, ordering: .relaxed); restartCounter.increment() }

    /// The kernel's own counters for a queue, from /proc/net/netfilter/nfnetlink_queue.
    func queueStatistics(_ s: QueueStatistics) {
        let g = queueGauges.withLock { map in
            if let g = map[s.queue] { return g }
            let labels = [("queue", "\(s.queue)")]
            let g = (registry.makeGauge(name: "interpose_flow_queue_dropped", labels: labels),
                     registry.makeGauge(name: "interpose_flow_queue_user_dropped", labels: labels),
                     registry.makeGauge(name: "interpose_flow_queue_waiting", labels: labels))
            map[s.queue] = g
            return g
        }
        g.dropped.set(to: Double(s.queueDropped))
        g.userDropped.set(to: Double(s.userDropped))
        g.waiting.set(to: Double(s.waiting))
    }
}

/// One line of /proc/net/netfilter/nfnetlink_queue: queue, portid, waiting, copy mode, copy range,
/// queue_dropped (queue full), user_dropped (netlink could not deliver), last id, 1.
public struct QueueStatistics: Sendable, Equatable {
    public var queue: UInt16
    public var portID: UInt32
    public var waiting: UInt64
    public var queueDropped: UInt64
    public var userDropped: UInt64

    public static func parse(_ text: String) -> [QueueStatistics] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard f.count >= 7, let q = UInt16(f[0]), let port = UInt32(f[1]), let waiting = UInt64(f[2]),
                  let dropped = UInt64(f[5]), let user = UInt64(f[6]) else { return nil }
            return QueueStatistics(queue: q, portID: port, waiting: waiting, queueDropped: dropped, userDropped: user)
        }
    }
}
