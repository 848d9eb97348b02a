import Foundation
import InterposeCapture
import InterposeConfig
import Prometheus
import Testing
@testable import InterposeFlow

// MARK: - A scripted kernel

/// One event of a scripted datagram.
enum ScriptedEvent {
    case packet(id: UInt32, mark: UInt32 = 0x0010_0539, uid: UInt32? = nil, inbound: Bool = false, bytes: [UInt8])
    case error(Int32)
}

/// One scripted answer to `receive`.
enum ScriptStep {
    case datagram([ScriptedEvent])
    case timedOut
    case wouldBlock
    case failed(Int32)
    /// Runs the closure (say, a stop request) and returns `.received` with no events.
    case run(@Sendable () -> Void)
}

struct SentVerdict: Equatable {
    var queue: UInt16
    var id: UInt32
    var verdict: KernelVerdict
    var batch: Bool
}

/// Replays a script of receive results and records what the reader sends. Once the script is used up,
/// a non-blocking read says `.wouldBlock`; a blocking one calls `onDrained` (once) and times out after
/// `idleDelay`, as a socket with a receive timeout does.
final class ScriptedKernel: FlowQueueKernel, @unchecked Sendable {
    private let lock = NSLock()
    private var script: [ScriptStep]
    private var sendResults: [Int32]
    private let configureResult: @Sendable (QueueConfigMessage) -> Int32
    private let idleDelay: TimeInterval
    private var _configs: [QueueConfigMessage] = []
    private var _sent: [SentVerdict] = []
    private var _log: [String] = []
    private var _released = false
    private var _closed = false
    private var _onDrained: (@Sendable () -> Void)?

    init(_ script: [ScriptStep] = [], sendResults: [Int32] = [], idleDelay: TimeInterval = 0.002,
         configureResult: @escaping @Sendable (QueueConfigMessage) -> Int32 = { _ in 0 }) {
        self.script = script
        self.sendResults = sendResults
        self.idleDelay = idleDelay
        self.configureResult = configureResult
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    var configs: [QueueConfigMessage] { locked { _configs } }
    var sent: [SentVerdict] { locked { _sent } }
    /// `recv wait`, `recv nowait`, `send <id>` in call order.
    var log: [String] { locked { _log } }
    var released: Bool { locked { _released } }
    var closed: Bool { locked { _closed } }
    var onDrained: (@Sendable () -> Void)? {
        get { locked { _onDrained } }
        set { locked { _onDrained = newValue } }
    }

    func configure(_ message: QueueConfigMessage) -> Int32 {
        locked { _configs.append(message) }
        return configureResult(message)
    }

    func receive(wait: Bool, _ handle: (QueueEvent) -> Void) -> QueueReceive {
        let step: ScriptStep? = locked {
            _log.append(wait ? "recv wait" : "recv nowait")
            return script.isEmpty ? nil : script.removeFirst()
        }
        guard let step else {
            if !wait { return .wouldBlock }
            let drained: (@Sendable () -> Void)? = locked { defer { _onDrained = nil }; return _onDrained }
            drained?()
            Thread.sleep(forTimeInterval: idleDelay)
            return .timedOut
        }
        switch step {
        case .timedOut: return .timedOut
        case .wouldBlock: return .wouldBlock
        case .failed(let e): return .failed(e)
        case .run(let body):
            body()
            return .received
        case .datagram(let events):
            for event in events {
                switch event {
                case .error(let e): handle(.error(e))
                case .packet(let id, let mark, let uid, let inbound, let bytes):
                    // The payload is valid only during the call, as with the real socket buffer.
                    bytes.withUnsafeBytes { payload in
                        handle(.packet(QueuedPacket(queue: 3, id: id, mark: mark, uid: uid, inbound: inbound, payload: payload)))
                    }
                }
            }
            return .received
        }
    }

    func send(queue: UInt16, id: UInt32, verdict: KernelVerdict, batch: Bool) -> Int32 {
        locked {
            _sent.append(SentVerdict(queue: queue, id: id, verdict: verdict, batch: batch))
            _log.append("send \(id)")
            return sendResults.isEmpty ? 0 : sendResults.removeFirst()
        }
    }

    func release() { locked { _released = true } }
    func close() { locked { _closed = true } }
}

// MARK: - Helpers

let readerRulesYAML = flowPolicyDocument("p", rules: """
- {name: deny-db, action: DENY, match: {destinationCIDRs: [10.9.0.1]}}
- {name: bypass-lan, action: BYPASS, match: {destinationCIDRs: [192.168.0.0/16]}}
- {name: drop-telnet, action: DENY, denyMode: DROP, match: {destinationPorts: [23]}}
- {name: inbound-ssh, action: BYPASS, match: {direction: INBOUND, destinationPorts: [22]}}
- {name: uid-bypass, action: BYPASS, match: {uids: [1337]}}
""")

func readerRules() -> FlowRuleSet {
    let (rules, bundle) = compileRules(readerRulesYAML)
    precondition(bundle.errors.isEmpty, bundle.summary)
    return rules
}

/// Packet bytes for a flow that the rules above send to each action.
enum Flows {
    static let deny = PacketBytes.ipv4("10.0.0.5", "10.9.0.1", destinationPort: 5432)
    static let bypass = PacketBytes.ipv4("10.0.0.5", "192.168.3.4", destinationPort: 80)
    static let drop = PacketBytes.ipv4("10.0.0.5", "8.8.8.8", destinationPort: 23)
    static let proxy = PacketBytes.ipv6("2001:db8::5", "2001:db8::443", destinationPort: 443)
    static let inboundSSH = PacketBytes.ipv4("203.0.113.9", "10.0.0.5", destinationPort: 22)
    static let icmp = PacketBytes.ipv4("10.0.0.5", "10.9.0.1", proto: 1, destinationPort: 0, body: [8, 0, 0, 0, 0, 1, 0, 1])
}

let queuedMark: UInt32 = 0x0010_0539
let proxyVerdict = KernelVerdict(accept: true, mark: 0x0020_0539)
let bypassVerdict = KernelVerdict(accept: true, mark: 0x0040_0539)
let resetVerdict = KernelVerdict(accept: true, mark: 0x0030_0539)
let dropVerdict = KernelVerdict(accept: false, mark: nil)

func makeReader(_ kernel: ScriptedKernel, settings: FlowQueueSettings = FlowQueueSettings(queues: [3]),
                rules: FlowRuleSet = readerRules()) -> (FlowQueueReader, FlowMetrics) {
    let metrics = FlowMetrics(registry: PrometheusCollectorRegistry())
    let reader = FlowQueueReader(queue: 3, kernel: kernel, settings: settings, rules: { rules }, metrics: metrics)
    return (reader, metrics)
}

/// Runs the reader on its own thread until the script is used up (the kernel then asks it to stop).
/// False when it did not return in time.
func runUntilDrained(_ reader: FlowQueueReader, _ kernel: ScriptedKernel, timeout: TimeInterval = 5) async -> Bool {
    if kernel.onDrained == nil { kernel.onDrained = { reader.stopRequested.store(true, ordering: .relaxed) } }
    return await runOnThread(reader, timeout: timeout)
}

func runOnThread(_ reader: FlowQueueReader, timeout: TimeInterval = 5) async -> Bool {
    Thread { reader.run() }.start()
    return await waitUntil(timeout: timeout) { reader.isFinished } ?? {
        reader.stopRequested.store(true, ordering: .relaxed) // do not leave a thread spinning behind a failed test
        return false
    }()
}

/// Polls `condition` every few milliseconds; true once it holds, nil on timeout.
func waitUntil(timeout: TimeInterval, _ condition: () -> Bool) async -> Bool? {
    let deadline = Date().addingTimeInterval(timeout)
    while !condition() {
        if Date() > deadline { return nil }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return true
}

func exposition(_ metrics: FlowMetrics) -> String {
    var buffer: [UInt8] = []
    metrics.registry.emit(into: &buffer)
    return String(decoding: buffer, as: UTF8.self)
}

// MARK: - Configure

@Suite struct FlowQueueConfigureTests {
    @Test func failOpenConfiguration() throws {
        let kernel = ScriptedKernel()
        var settings = FlowQueueSettings(queues: [3])
        settings.copyRange = 96
        settings.queueLength = 1000
        let (reader, _) = makeReader(kernel, settings: settings)
        try reader.configure()
        #expect(kernel.configs == [
            .bind(queue: 3),
            .params(queue: 3, copyRange: 96),
            .maxLength(queue: 3, packets: 1000),
            .flags(queue: 3, flags: QueueFlags.failOpen | QueueFlags.gso | QueueFlags.uidGid, mask: 0b1101),
        ])
        // The kernel's NFQA_CFG_F_FAIL_OPEN, _GSO and _UID_GID (the C shim asserts them when it compiles).
        #expect(QueueFlags.failOpen == 1 && QueueFlags.gso == 4 && QueueFlags.uidGid == 8)
    }

    @Test func failClosedLeavesFailOpenOutOfTheFlagsButInTheMask() throws {
        let kernel = ScriptedKernel()
        var settings = FlowQueueSettings(queues: [3])
        settings.failOpen = false
        let (reader, _) = makeReader(kernel, settings: settings)
        try reader.configure()
        // The mask still names FAIL_OPEN, so a queue left fail-open by an earlier run is switched back.
        #expect(kernel.configs.last == .flags(queue: 3, flags: QueueFlags.gso | QueueFlags.uidGid, mask: 13))
        #expect(kernel.configs.contains(.params(queue: 3, copyRange: 128)))
        #expect(kernel.configs.contains(.maxLength(queue: 3, packets: 4096)))
    }

    @Test func refusedBindNamesTheQueueAndTheStep() throws {
        let kernel = ScriptedKernel { message in
            if case .bind = message { return EPERM }
            return 0
        }
        let (reader, _) = makeReader(kernel)
        let error = try #require(throws: FlowQueueError.self) { try reader.configure() }
        #expect(error.description.contains("NFQUEUE 3"), "\(error)")
        #expect(error.description.contains("bind"), "\(error)")
        #expect(error.description.contains("another process holds NFQUEUE 3"), "EPERM gets its likely causes: \(error)")
        // Nothing more is sent once a step is refused.
        #expect(kernel.configs == [.bind(queue: 3)])
    }

    @Test func refusedFlagsNamesTheStep() throws {
        let kernel = ScriptedKernel { message in
            if case .flags = message { return EINVAL }
            return 0
        }
        let (reader, _) = makeReader(kernel)
        let error = try #require(throws: FlowQueueError.self) { try reader.configure() }
        #expect(error.description.contains("NFQUEUE 3: set flags refused"), "\(error)")
        #expect(error.description.contains(String(cString: strerror(EINVAL))), "\(error)")
        #expect(!error.description.contains("another process"), "\(error)")
        #expect(kernel.configs.count == 4)
    }
}

// MARK: - The read loop

@Suite struct FlowQueueReadLoopTests {
    @Test func verdictMarksFollowTheRules() async throws {
        let kernel = ScriptedKernel([
            .datagram([.packet(id: 1, bytes: Flows.deny), .packet(id: 2, bytes: Flows.bypass)]),
            .datagram([.packet(id: 3, bytes: Flows.drop), .packet(id: 4, bytes: Flows.proxy)]),
            .datagram([.packet(id: 5, mark: FlowMark.queued, inbound: true, bytes: Flows.inboundSSH),
                       .packet(id: 6, bytes: Flows.icmp),
                       .packet(id: 7, uid: 1337, bytes: Flows.proxy)]),
        ])
        let (reader, metrics) = makeReader(kernel)
        #expect(await runUntilDrained(reader, kernel))
        #expect(kernel.sent == [
            SentVerdict(queue: 3, id: 1, verdict: resetVerdict, batch: false),
            SentVerdict(queue: 3, id: 2, verdict: bypassVerdict, batch: false),
            SentVerdict(queue: 3, id: 3, verdict: dropVerdict, batch: false),
            SentVerdict(queue: 3, id: 4, verdict: proxyVerdict, batch: false),
            // Inbound (prerouting) packets match INBOUND rules; a mark without other bits stays without.
            SentVerdict(queue: 3, id: 5, verdict: KernelVerdict(accept: true, mark: FlowMark.bypass), batch: false),
            // Not TCP or UDP: nothing to decide on, so it goes to the proxy as with no rule.
            SentVerdict(queue: 3, id: 6, verdict: proxyVerdict, batch: false),
            SentVerdict(queue: 3, id: 7, verdict: bypassVerdict, batch: false),
        ])
        #expect(metrics.decisionCount == 7)
        #expect(metrics.verdictCount(.denyReset) == 1)
        #expect(metrics.verdictCount(.denyDrop, rule: "drop-telnet") == 1)
        #expect(metrics.verdictCount(.bypass) == 3)
        #expect(metrics.verdictCount(.bypass, rule: "uid-bypass") == 1)
        #expect(metrics.verdictCount(.proxy) == 2)
        #expect(metrics.verdictMessageCount == 7)
        let text = exposition(metrics)
        #expect(text.contains("interpose_flow_verdicts_total"), "\(text)")
        #expect(text.contains(#"rule="deny-db""#), "\(text)")
    }

    @Test func equalVerdictsInABurstGoAsOneBatch() async throws {
        let kernel = ScriptedKernel([
            .datagram([.packet(id: 10, bytes: Flows.bypass), .packet(id: 11, bytes: Flows.bypass)]),
            .datagram([.packet(id: 12, bytes: Flows.bypass), .packet(id: 13, bytes: Flows.drop),
                       .packet(id: 14, bytes: Flows.proxy), .packet(id: 15, bytes: Flows.icmp)]),
            // Nothing more: `.wouldBlock` ends the burst and flushes.
        ])
        let (reader, metrics) = makeReader(kernel)
        #expect(await runUntilDrained(reader, kernel))
        #expect(kernel.sent == [
            SentVerdict(queue: 3, id: 12, verdict: bypassVerdict, batch: true),
            SentVerdict(queue: 3, id: 13, verdict: dropVerdict, batch: false),
            SentVerdict(queue: 3, id: 15, verdict: proxyVerdict, batch: true),
        ])
        // While verdicts wait, reads do not block; the flush comes when the socket is empty.
        #expect(kernel.log == ["recv wait", "recv nowait", "recv nowait", "send 12", "send 13", "send 15", "recv wait"])
        #expect(metrics.verdictMessageCount == 3)
        #expect(metrics.decisionCount == 6)
        #expect(exposition(metrics).contains("interpose_flow_batched_verdicts_total 5"))
    }

    @Test func differentVerdictsKeepTheirOrder() async throws {
        let kernel = ScriptedKernel([
            .datagram([.packet(id: 1, bytes: Flows.bypass), .packet(id: 2, bytes: Flows.drop), .packet(id: 3, bytes: Flows.bypass)]),
        ])
        let (reader, _) = makeReader(kernel)
        #expect(await runUntilDrained(reader, kernel))
        // A batch of 1-3 would have let packet 2 through: each goes on its own.
        #expect(kernel.sent == [
            SentVerdict(queue: 3, id: 1, verdict: bypassVerdict, batch: false),
            SentVerdict(queue: 3, id: 2, verdict: dropVerdict, batch: false),
            SentVerdict(queue: 3, id: 3, verdict: bypassVerdict, batch: false),
        ])
    }

    @Test func equalVerdictsWithDifferentMarksAreNotBatched() async throws {
        // Same action, but the packets carried different marks: the new marks differ, so no batch.
        let kernel = ScriptedKernel([
            .datagram([.packet(id: 1, mark: 0x0010_0539, bytes: Flows.bypass), .packet(id: 2, mark: 0x0010_0001, bytes: Flows.bypass)]),
        ])
        let (reader, _) = makeReader(kernel)
        #expect(await runUntilDrained(reader, kernel))
        #expect(kernel.sent.map(\.batch) == [false, false])
        #expect(kernel.sent.map(\.verdict.mark) == [0x0040_0539, 0x0040_0001])
    }

    @Test func fullPendingListIsFlushedAtOnce() async throws {
        var settings = FlowQueueSettings(queues: [3])
        settings.maxPendingVerdicts = 2
        let kernel = ScriptedKernel([
            .datagram([.packet(id: 1, bytes: Flows.bypass), .packet(id: 2, bytes: Flows.drop), .packet(id: 3, bytes: Flows.deny)]),
            .datagram([.packet(id: 4, bytes: Flows.bypass)]),
        ])
        let (reader, _) = makeReader(kernel, settings: settings)
        #expect(await runUntilDrained(reader, kernel))
        #expect(kernel.log == ["recv wait", "send 1", "send 2", "send 3", "recv wait", "recv nowait", "send 4", "recv wait"])
    }

    @Test func staleVerdictErrorsAreCountedAndTheLoopGoesOn() async throws {
        let kernel = ScriptedKernel([
            .datagram([.packet(id: 1, bytes: Flows.bypass)]),
            .wouldBlock,
            // The kernel reports the verdict on 1 as stale (ENOENT), in the next datagram.
            .datagram([.error(ENOENT), .packet(id: 2, bytes: Flows.deny)]),
            .timedOut,
            .datagram([.packet(id: 3, bytes: Flows.drop)]),
        ], sendResults: [0, ENOENT])
        let (reader, metrics) = makeReader(kernel)
        #expect(await runUntilDrained(reader, kernel))
        #expect(kernel.sent.map(\.id) == [1, 2, 3])
        // One ENOENT read from the socket, one returned by a verdict send.
        #expect(metrics.staleCount == 2)
        #expect(metrics.queueErrorCount == 0)
        #expect(exposition(metrics).contains("interpose_flow_stale_verdicts_total 2"))
    }

    @Test func enobufsIsCountedAndTheLoopGoesOn() async throws {
        let kernel = ScriptedKernel([
            .datagram([.error(ENOBUFS)]),
            .datagram([.packet(id: 1, bytes: Flows.bypass)]),
            // A failed read with packets pending: they are answered first.
            .failed(ENOBUFS),
            .datagram([.packet(id: 2, bytes: Flows.deny)]),
        ])
        let (reader, metrics) = makeReader(kernel)
        #expect(await runUntilDrained(reader, kernel))
        #expect(metrics.enobufsCount == 2)
        #expect(metrics.queueErrorCount == 0)
        #expect(kernel.sent.map(\.id) == [1, 2])
        #expect(kernel.log.prefix(5) == ["recv wait", "recv wait", "recv nowait", "send 1", "recv wait"])
        #expect(exposition(metrics).contains("interpose_flow_enobufs_total 2"))
    }

    @Test func otherErrorsAreQueueErrors() async throws {
        let kernel = ScriptedKernel([
            .failed(EIO),
            .datagram([.error(EPERM), .packet(id: 1, bytes: Flows.drop)]),
            .failed(EINTR), // an interrupted read is not an error
        ], sendResults: [EINVAL])
        let (reader, metrics) = makeReader(kernel)
        #expect(await runUntilDrained(reader, kernel))
        #expect(metrics.queueErrorCount == 3)
        #expect(metrics.staleCount == 0)
        #expect(metrics.enobufsCount == 0)
        #expect(kernel.sent.map(\.id) == [1])
    }
}

// MARK: - Shutdown

@Suite struct FlowQueueShutdownTests {
    @Test func pendingVerdictsAreFlushedBeforeReturning() async throws {
        let box = ReaderBox()
        let kernel = ScriptedKernel([
            .datagram([.packet(id: 1, bytes: Flows.bypass), .packet(id: 2, bytes: Flows.drop)]),
            // Stop is asked while the two verdicts still wait for the socket to run dry.
            .run { box.reader?.stopRequested.store(true, ordering: .relaxed) },
            .datagram([.packet(id: 3, bytes: Flows.bypass)]),
        ])
        let (reader, _) = makeReader(kernel)
        box.reader = reader
        #expect(await runOnThread(reader))
        #expect(kernel.sent.map(\.id) == [1, 2])
        // No read after the stop request, and the flush came after it.
        #expect(kernel.log == ["recv wait", "recv nowait", "send 1", "send 2"])
    }

    @Test func runReturnsWithinTheReceiveTimeout() async throws {
        // Every blocking read takes 50 ms and times out, as a socket with SO_RCVTIMEO does.
        let kernel = ScriptedKernel(idleDelay: 0.05)
        let (reader, _) = makeReader(kernel)
        Thread { reader.run() }.start()
        try await Task.sleep(for: .milliseconds(120))
        #expect(!reader.isFinished, "the loop keeps reading until it is told to stop")
        let readsBefore = kernel.log.count
        reader.stopRequested.store(true, ordering: .relaxed)
        let returned = await waitUntil(timeout: 3) { reader.isFinished }
        #expect(returned == true)
        // The read in progress when stop was asked may finish; no further read starts. (Counted in
        // reads, not seconds, so a busy machine cannot make it flaky.)
        #expect(kernel.log.count - readsBefore <= 1, "\(kernel.log.suffix(4))")
        #expect(kernel.sent.isEmpty)
        // The reader neither unbinds nor closes: that is the engine's job.
        #expect(kernel.configs.isEmpty && !kernel.closed)
    }

    @Test func abandonedReaderReleasesTheQueueAndLeaves() async throws {
        let kernel = ScriptedKernel(idleDelay: 0.02)
        let (reader, metrics) = makeReader(kernel)
        Thread { reader.run() }.start()
        try await Task.sleep(for: .milliseconds(30))
        reader.abandon()
        #expect(kernel.released)
        #expect(await waitUntil(timeout: 3) { reader.isFinished } == true)
        #expect(metrics.queueErrorCount == 0)
    }
}

/// Lets a scripted step reach the reader built after the kernel.
final class ReaderBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _reader: FlowQueueReader?
    var reader: FlowQueueReader? {
        get { lock.lock(); defer { lock.unlock() }; return _reader }
        set { lock.lock(); defer { lock.unlock() }; _reader = newValue }
    }
}
