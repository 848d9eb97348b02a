import NIOCore

/// When the next connect attempt may happen. Each failure pushes it out by the current delay and
/// doubles the delay (up to `maximum`); a reply from Redis resets it. Pure: the caller passes the time.
public struct ReconnectBackoff: Sendable, Equatable {
    public let initial: TimeAmount
    public let maximum: TimeAmount
    public private(set) var delay: TimeAmount
    public private(set) var notBefore: NIODeadline = .uptimeNanoseconds(0)

    public init(initial: TimeAmount = .milliseconds(10), maximum: TimeAmount = .seconds(1)) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.delay = initial
    }

    public func mayConnect(now: NIODeadline) -> Bool { now >= notBefore }

    public mutating func recordFailure(now: NIODeadline) {
        notBefore = now + delay
        delay = min(delay * 2, maximum)
    }

    public mutating func recordSuccess() {
        delay = initial
        notBefore = .uptimeNanoseconds(0)
    }
}
