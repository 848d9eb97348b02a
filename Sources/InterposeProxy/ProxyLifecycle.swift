import Atomics

/// Draining state shared by all connections: after SIGTERM, responses say `Connection: close`.
/// Atomics, not locks: every request counts itself in and out and asks whether the proxy drains.
public final class ProxyLifecycle: Sendable {
    private let draining = ManagedAtomic(false)
    private let ready = ManagedAtomic(false)
    private let inFlight = ManagedAtomic(0)
    /// Requests and TCP relays in progress; the drain waits for this to reach zero.
    public var activeWork: Int { inFlight.load(ordering: .acquiring) }
    public func begin() { inFlight.wrappingIncrement(ordering: .relaxed) }
    public func end() { inFlight.wrappingDecrement(ordering: .relaxed) }
    public var isDraining: Bool { draining.load(ordering: .acquiring) }
    public var isReady: Bool { ready.load(ordering: .acquiring) && !isDraining }
    public func startDraining() { draining.store(true, ordering: .releasing) }
    public func markReady() { ready.store(true, ordering: .releasing) }
    public init() {}
}
