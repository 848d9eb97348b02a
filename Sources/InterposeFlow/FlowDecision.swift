import InterposeCapture
import InterposeConfig

/// What the engine decided for one new flow, and which rule decided it.
public struct FlowDecision: Sendable, Equatable {
    public enum Action: String, Sendable, CaseIterable {
        case proxy
        case bypass
        case denyReset = "deny_reset"
        case denyDrop = "deny_drop"
    }

    public var action: Action
    /// `namespace/name` of the FlowPolicy, or `-` when no rule matched.
    public var policy: String
    public var rule: String
    /// The rule matched but its per-source rate limit was exceeded.
    public var rateLimited: Bool

    public static let noRuleMatched = FlowDecision(action: .proxy, policy: "-", rule: "-", rateLimited: false)

    init(action: Action, policy: String, rule: String, rateLimited: Bool) {
        self.action = action
        self.policy = policy
        self.rule = rule
        self.rateLimited = rateLimited
    }

    init(_ kind: FlowActionKind, _ mode: FlowDenyMode, policy: String, rule: String, rateLimited: Bool) {
        switch kind {
        case .proxy: action = .proxy
        case .bypass: action = .bypass
        case .deny: action = mode == .reset ? .denyReset : .denyDrop
        }
        self.policy = policy
        self.rule = rule
        self.rateLimited = rateLimited
    }

    /// The kernel verdict for this decision on a packet carrying `mark` (see `FlowMark`): accepted with
    /// the verdict in the mark's flow field (the nat and filter chains act on it), or dropped.
    public func kernelVerdict(packetMark mark: UInt32) -> KernelVerdict {
        switch action {
        case .proxy: return KernelVerdict(accept: true, mark: FlowMark.applying(FlowMark.proxy, to: mark))
        case .bypass: return KernelVerdict(accept: true, mark: FlowMark.applying(FlowMark.bypass, to: mark))
        case .denyReset: return KernelVerdict(accept: true, mark: FlowMark.applying(FlowMark.denyReset, to: mark))
        case .denyDrop: return KernelVerdict(accept: false, mark: nil)
        }
    }
}

/// NF_ACCEPT with a new packet mark, or NF_DROP.
public struct KernelVerdict: Sendable, Equatable, Hashable {
    public var accept: Bool
    public var mark: UInt32?
    public init(accept: Bool, mark: UInt32?) {
        self.accept = accept
        self.mark = mark
    }
}
