import NIOCore

/// The circuit breaker as a pure state machine: the caller passes the time, so it is tested without
/// sockets or sleeps. Closed: everything goes through and consecutive failures are counted. After
/// `threshold` of them it opens: everything is refused for `cooldown`. Then half-open: exactly one
/// probe goes through; its success closes the circuit, its failure opens it for another cooldown.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed(consecutiveFailures: Int)
        case open(until: NIODeadline)
        case halfOpen(probeSentAt: NIODeadline)
    }

    public enum Admission: Sendable, Equatable {
        /// Go ahead.
        case allow
        /// Go ahead: this command is the half-open probe (it may skip the reconnect backoff,
        /// the cooldown having been the wait).
        case probe
        /// Fail now without touching the network.
        case reject
    }

    public let threshold: Int
    public let cooldown: TimeAmount
    public private(set) var state: State = .closed(consecutiveFailures: 0)

    public init(threshold: Int = 3, cooldown: TimeAmount = .milliseconds(500)) {
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
    }

    /// Asks to send one command at `now`.
    public mutating func admit(now: NIODeadline) -> Admission {
        switch state {
        case .closed:
            return .allow
        case .open(let until):
            guard now >= until else { return .reject }
            state = .halfOpen(probeSentAt: now)
            return .probe
        case .halfOpen(let sentAt):
            // Every probe ends in recordSuccess or recordFailure; a probe unanswered for a whole
            // cooldown is given up on all the same, so no lost verdict can wedge the circuit.
            guard now >= sentAt + cooldown else { return .reject }
            state = .halfOpen(probeSentAt: now)
            return .probe
        }
    }

    /// Redis answered something.
    public mutating func recordSuccess() {
        state = .closed(consecutiveFailures: 0)
    }

    /// A transport failure (connect failed, timeout, connection lost with commands in flight).
    /// Returns true when this failure opened the circuit.
    @discardableResult
    public mutating func recordFailure(now: NIODeadline) -> Bool {
        switch state {
        case .closed(let n):
            if n + 1 >= threshold {
                state = .open(until: now + cooldown)
                return true
            }
            state = .closed(consecutiveFailures: n + 1)
            return false
        case .halfOpen:
            state = .open(until: now + cooldown)
            return true
        case .open:
            // A late failure of something sent before the circuit opened: the cooldown stands.
            return false
        }
    }

    public var isOpen: Bool {
        if case .closed = state { return false }
        return true
    }
}
