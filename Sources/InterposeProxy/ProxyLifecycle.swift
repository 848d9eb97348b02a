import NIOConcurrencyHelpers

/// Draining state shared by all connections: after SIGTERM, responses say `Connection: close`.
public final class ProxyLifecycle: Sendable {
    private let draining = NIOLockedValueBox(false)
    private let ready = NIOLockedValueBox(false)
    private let inFlight = NIOLockedValueBox(0)
    /// Requests and TCP relays in progress; the drain waits for this to reach zero.
    public var activeWork: Int { inFlight.withLockedValue { $0 } }
    public func begin() { inFlight.withLockedValue { $0 += 1 } }
    public func end() { inFlight.withLockedValue { $0 -= 1 } }
    public var isDraining: Bool { draining.withLockedValue { $0 } }
    public var isReady: Bool { ready.withLockedValue { $0 } && !isDraining }
    public func startDraining() { draining.withLockedValue { $0 = true } }
    public func markReady() { ready.withLockedValue { $0 = true } }
    public init() {}
}
