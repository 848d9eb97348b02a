/// Builds the capture plan: a pure function of the options and the host's facts.
///
/// Layout (see docs/capture.md): `prerouting` -> `inbound` (REDIRECT) or `tproxy_prerouting` (TPROXY);
/// `output` -> `outbound` (and `dns_output`); optional raw chains for DNS conntrack zones, a drop of
/// conntrack-invalid packets, and the flow-queue gate/deny chains. The outbound and inbound decisions are
/// written once as a list of steps and emitted both in the nat chains and in the queue gate, so the gate
/// queues exactly the flows the nat chains would capture.
public struct CapturePlanner: Sendable {
    public var options: CaptureOptions
    public var facts: HostFacts
    public var owned: OwnedResources

    public init(options: CaptureOptions, facts: HostFacts, owned: OwnedResources = OwnedResources()) {
        self.options = options
        self.facts = facts
        self.owned = owned
    }

    /// nft priorities: NAT chains at -100 (the `dstnat` keyword is refused in the output hook),
    /// mangle at -150, the queue gate just before mangle so xtables' mangle rule sees its mark.
    static let natPriority = -100
    static let manglePriority = -150
    static let gatePriority = -160
    static let rawPriority = -300
    /// After mangle (-150), where iptables-nft's NFQUEUE rule runs, so a queued SYN has its verdict
    /// before TPROXY overwrites the mark with its own.
    static let tproxyPriority = -140
    static let filterPriority = 0

    public func plan() -> CapturePlan {
        var notes: [String] = []
        let o = options
        let v6 = facts.ipv6
        if !v6 {
            let dropped = o.excludeOutboundCIDRs.filter { $0.family == .v6 }
            notes.append("host has no IPv6: ip6 rules, v6 sets and ::6 are left out" + (dropped.isEmpty ? "" : " (ignored: \(dropped.map(\.description).joined(separator: ", ")))"))
        }
        var sets = SetCatalog(ipv6: v6)

        // Ports never captured inbound: the proxy's own, the excluded ones, and sshd's in host mode.
        var inboundSkip = o.proxyOwnPorts + o.excludeInboundPorts
        if o.hostMode {
            // Explicit --ssh-ports wins (empty: this host has no ssh); otherwise where sshd was found
            // listening; otherwise port 22, said plainly (apply refuses that guess, render shows it).
            let sshPorts = o.sshPorts ?? (facts.sshPorts.isEmpty ? [PortRange(22)] : facts.sshPorts)
            inboundSkip += sshPorts
            if sshPorts.isEmpty {
                notes.append("host mode: no ssh ports (--ssh-ports '')")
            } else {
                let guessed = o.sshPorts == nil && facts.sshPorts.isEmpty ? " (assumed: no listening sshd was found)" : ""
                notes.append("host mode: ssh ports \(normalizePorts(sshPorts).map(\.description).joined(separator: ",")) are never captured\(guessed)")
            }
        }
        let inboundSkipSet = o.capturesInbound ? sets.ports("inbound_skip_ports", normalizePorts(inboundSkip)) : nil
        var inboundOnlySet: String? = nil
        if case .only(let ports) = o.inboundPorts { inboundOnlySet = sets.ports("inbound_ports", ports) }
        let outboundSkipSet = sets.ports("outbound_skip_ports", o.excludeOutboundPorts)
        var outboundIncludePortsSet: String? = nil
        if case .only(let ports) = o.outboundPorts { outboundIncludePortsSet = sets.ports("outbound_ports", ports) }
        let skipV4 = sets.addresses("outbound_skip_v4", o.excludeOutboundCIDRs, .v4)
        let skipV6 = sets.addresses("outbound_skip_v6", o.excludeOutboundCIDRs, .v6)
        var onlyCIDRs: (v4: String?, v6: String?)? = nil
        if case .only(let cidrs) = o.outboundCIDRs {
            onlyCIDRs = (sets.addresses("outbound_v4", cidrs, .v4), sets.addresses("outbound_v6", cidrs, .v6))
        }

        let uids = Self.idSet(o.proxyUIDs)
        let gids = Self.idSet(o.proxyGIDs)
        let excludedIfaces = o.excludeInterfaces.isEmpty ? nil : "{ " + o.excludeInterfaces.map { "\"\($0)\"" }.joined(separator: ", ") + " }"
        let queueOn = o.queue != nil
        // A flow still marked `queued` got no verdict: no engine read the queue and its fail-open let the
        // SYN through. The engine is the proxy's own process, so no engine means no proxy: such a flow
        // goes straight to its destination rather than to a capture port nobody answers.
        let verdictMatch = "meta mark & \(FlowMark.hex(FlowMark.mask)) { \(FlowMark.hex(FlowMark.queued)), \(FlowMark.hex(FlowMark.denyReset)), \(FlowMark.hex(FlowMark.bypass)) }"

        // MARK: outbound steps (shared by the nat chain and the queue gate)
        var outSteps: [Step] = []
        outSteps.append(.pass("oifname \"lo\" ip saddr 127.0.0.6", "proxy to app passthrough from 127.0.0.6"))
        if v6 { outSteps.append(.pass("oifname \"lo\" ip6 saddr ::6", "proxy to app passthrough from ::6")) }
        if o.capturesInbound {
            outSteps.append(.toInbound("oifname \"lo\" ip daddr != 127.0.0.1 meta skuid \(uids)", "the proxy calling its own pod IP goes inbound (uid)"))
            outSteps.append(.toInbound("oifname \"lo\" ip daddr != 127.0.0.1 meta skgid \(gids)", "the proxy calling its own pod IP goes inbound (gid)"))
            if v6 {
                outSteps.append(.toInbound("oifname \"lo\" ip6 daddr != ::1 meta skuid \(uids)", "the proxy calling its own pod IPv6 goes inbound (uid)"))
                outSteps.append(.toInbound("oifname \"lo\" ip6 daddr != ::1 meta skgid \(gids)", "the proxy calling its own pod IPv6 goes inbound (gid)"))
            }
        }
        outSteps.append(.pass("oifname \"lo\" meta skuid != \(uids)", "app to app on loopback passes"))
        outSteps.append(.pass("meta skuid \(uids)", "the proxy's own traffic (uid) is never captured"))
        outSteps.append(.pass("meta skgid \(gids)", "the proxy's own traffic (gid) is never captured"))
        if o.captureDNS { outSteps.append(.toDNS("tcp dport 53", "DNS over TCP to the DNS capture port")) }
        if let s = outboundSkipSet { outSteps.append(.pass("tcp dport @\(s)", "excluded outbound ports")) }
        outSteps.append(.pass("ip daddr 127.0.0.1", "loopback destination 127.0.0.1 passes"))
        if v6 { outSteps.append(.pass("ip6 daddr ::1", "loopback destination ::1 passes")) }
        // Istio's -q: these ports are captured whatever the CIDR rules below say.
        if let s = outboundIncludePortsSet { outSteps.append(.capture("tcp dport @\(s)", "listed outbound ports are always captured")) }
        if let s = skipV4 { outSteps.append(.pass("ip daddr @\(s)", "excluded outbound IPv4 networks")) }
        if let s = skipV6 { outSteps.append(.pass("ip6 daddr @\(s)", "excluded outbound IPv6 networks")) }
        if let only = onlyCIDRs {
            outSteps.append(.pass(only.v4.map { "ip daddr != @\($0)" } ?? "meta nfproto ipv4", "only the listed outbound IPv4 networks are captured"))
            if v6 { outSteps.append(.pass(only.v6.map { "ip6 daddr != @\($0)" } ?? "meta nfproto ipv6", "only the listed outbound IPv6 networks are captured")) }
        }

        // MARK: inbound steps
        var inSteps: [Step] = []
        if o.mode == .tproxy { inSteps.append(.pass("iifname \"lo\"", "loopback traffic is decided in the output hook")) }
        if let s = inboundSkipSet { inSteps.append(.pass("tcp dport @\(s)", "inbound ports never captured (proxy's own, excluded, ssh)")) }
        if let s = inboundOnlySet { inSteps.append(.pass("tcp dport != @\(s)", "only the listed inbound ports are captured")) }
        if o.hostMode { inSteps.append(.pass("fib daddr type != local", "host mode: only traffic addressed to this host")) }
        if o.mode == .tproxy {
            inSteps.append(.divert("meta l4proto tcp socket transparent 1", "packets of connections the proxy already holds"))
        }

        var chains: [NftChain] = []

        // MARK: inbound capture
        if o.capturesInbound {
            let mark = o.tproxyMark
            var rules: [NftRule] = []
            if let ifs = excludedIfaces { rules.append(NftRule("iifname \(ifs)", "return", "excluded interfaces")) }
            if queueOn { rules.append(NftRule(verdictMatch, "return", "no verdict (engine absent, fail-open), bypass or deny: not captured")) }
            switch o.mode {
            case .redirect:
                var inbound = NftChain(name: "inbound")
                inbound.rules = inSteps.map { $0.natRule(inboundPort: o.inboundPort, dnsPort: o.dnsPort, mark: mark, capture: "") }
                inbound.rules.append(NftRule("meta l4proto tcp", (queueOn ? "ct mark set meta mark " : "") + "redirect to :\(o.inboundPort)", "inbound capture to the proxy"))
                rules.append(NftRule("meta l4proto tcp", "jump inbound", "TCP goes to inbound capture"))
                chains.append(NftChain(name: "prerouting", hook: .init(type: "nat", hook: "prerouting", priority: Self.natPriority), rules: rules))
                chains.append(inbound)
            case .tproxy:
                rules += inSteps.map { $0.natRule(inboundPort: o.inboundPort, dnsPort: o.dnsPort, mark: mark, capture: "") }
                rules.append(NftRule("meta l4proto tcp ip daddr != 127.0.0.1", "tproxy ip to :\(o.inboundPort) meta mark set \(mark) accept", "inbound capture to the proxy (TPROXY)"))
                if v6 { rules.append(NftRule("meta l4proto tcp ip6 daddr != ::1", "tproxy ip6 to :\(o.inboundPort) meta mark set \(mark) accept", "inbound IPv6 capture to the proxy (TPROXY)")) }
                chains.append(NftChain(name: "tproxy_prerouting", hook: .init(type: "filter", hook: "prerouting", priority: Self.tproxyPriority), rules: rules))
            }
        }

        // MARK: outbound capture
        var output: [NftRule] = []
        if let ifs = excludedIfaces { output.append(NftRule("oifname \(ifs)", "return", "excluded interfaces")) }
        if o.captureDNS { output.append(NftRule("udp dport 53", "jump dns_output", "UDP DNS goes to DNS capture")) }
        output.append(NftRule("meta l4proto tcp", "jump outbound", "TCP goes to outbound capture"))
        var outbound = NftChain(name: "outbound")
        if queueOn { outbound.rules.append(NftRule(verdictMatch, "ct mark set meta mark return", "no verdict (engine absent, fail-open), bypass or deny: not captured")) }
        let outboundRedirect = (queueOn ? "ct mark set meta mark " : "") + "redirect to :\(o.outboundPort)"
        outbound.rules += outSteps.map { $0.natRule(inboundPort: o.inboundPort, dnsPort: o.dnsPort, mark: o.tproxyMark, capture: outboundRedirect) }
        if o.capturesOutbound {
            outbound.rules.append(NftRule("meta l4proto tcp", outboundRedirect, "outbound capture to the proxy"))
        }
        chains.append(NftChain(name: "output", hook: .init(type: "nat", hook: "output", priority: Self.natPriority), rules: output))
        chains.append(outbound)

        // MARK: DNS
        if o.captureDNS {
            chains.append(NftChain(name: "dns_output", rules: [
                NftRule("meta skuid \(uids)", "return", "the proxy's own DNS queries (uid) go out as they are"),
                NftRule("meta skgid \(gids)", "return", "the proxy's own DNS queries (gid) go out as they are"),
                NftRule("udp dport 53", "redirect to :\(o.dnsPort)", "DNS capture to the proxy"),
            ]))
            // Conntrack zones keep the proxy's upstream query and the app's captured query apart (istio #33469).
            chains.append(NftChain(name: "dns_raw_output", hook: .init(type: "filter", hook: "output", priority: Self.rawPriority), rules: [
                NftRule("udp dport 53 meta skuid \(uids)", "ct zone set 1", "the proxy's upstream DNS queries (uid): zone 1"),
                NftRule("udp dport 53 meta skgid \(gids)", "ct zone set 1", "the proxy's upstream DNS queries (gid): zone 1"),
                NftRule("udp sport \(o.dnsPort) meta skuid \(uids)", "ct zone set 2", "the proxy's DNS answers to the app (uid): zone 2"),
                NftRule("udp sport \(o.dnsPort) meta skgid \(gids)", "ct zone set 2", "the proxy's DNS answers to the app (gid): zone 2"),
            ]))
            chains.append(NftChain(name: "dns_raw_prerouting", hook: .init(type: "filter", hook: "prerouting", priority: Self.rawPriority), rules: [
                NftRule("udp sport 53", "ct zone set 1", "answers from upstream DNS: zone 1"),
            ]))
        }

        if o.dropInvalid {
            chains.append(NftChain(name: "drop_invalid", hook: .init(type: "filter", hook: "prerouting", priority: Self.manglePriority), rules: [
                NftRule("meta l4proto tcp ct state invalid", "drop", "conntrack-invalid TCP is dropped, not reset (istio #36566)"),
            ]))
        }

        // MARK: flow queue
        var xtables: [XtablesRule] = []
        if let q = o.queue {
            let queueFlags = (q.isSingle ? [] : ["fanout"]) + (o.queueBypass ? ["bypass"] : [])
            let queueExpr = "queue num \(q)" + (queueFlags.isEmpty ? "" : " " + queueFlags.joined(separator: ","))
            let tag = "meta mark set meta mark & \(FlowMark.hex(~FlowMark.mask)) | \(FlowMark.hex(FlowMark.queued))"
            let gateAction = facts.nativeNftQueue ? "\(tag) \(queueExpr)" : tag
            let gateComment = facts.nativeNftQueue ? "first SYN of a captured flow goes to NFQUEUE \(q)" : "first SYN of a captured flow is tagged for the xtables NFQUEUE \(q) rule"
            let firstSYN: [NftRule] = [
                NftRule("meta l4proto != tcp", "return", "only TCP flows are queued"),
                NftRule("tcp flags & (syn | ack) != syn", "return", "only the first SYN of a flow is queued"),
                NftRule("ct state != new", "return", "only new flows are queued"),
            ]
            var gateOut = NftChain(name: "flow_gate_output", hook: .init(type: "route", hook: "output", priority: Self.gatePriority))
            if let ifs = excludedIfaces { gateOut.rules.append(NftRule("oifname \(ifs)", "return", "excluded interfaces")) }
            gateOut.rules += firstSYN
            gateOut.rules += outSteps.map { $0.gateRule(queue: gateAction) }
            if o.capturesOutbound { gateOut.rules.append(NftRule("", gateAction, gateComment)) }
            chains.append(gateOut)
            chains.append(NftChain(name: "flow_deny_output", hook: .init(type: "filter", hook: "output", priority: Self.filterPriority), rules: [
                NftRule("meta l4proto tcp meta mark & \(FlowMark.hex(FlowMark.mask)) == \(FlowMark.hex(FlowMark.denyReset))", "reject with tcp reset", "flow verdict deny: reset so the client fails fast"),
            ]))
            var hooks: [(hook: String, chain: String)] = [("output", "OUTPUT")]
            if o.capturesInbound {
                var gateIn = NftChain(name: "flow_gate_prerouting", hook: .init(type: "filter", hook: "prerouting", priority: Self.gatePriority))
                if let ifs = excludedIfaces { gateIn.rules.append(NftRule("iifname \(ifs)", "return", "excluded interfaces")) }
                gateIn.rules += firstSYN
                gateIn.rules += inSteps.map { $0.gateRule(queue: gateAction) }
                gateIn.rules.append(NftRule("", gateAction, gateComment))
                chains.append(gateIn)
                chains.append(NftChain(name: "flow_deny_input", hook: .init(type: "filter", hook: "input", priority: Self.filterPriority), rules: [
                    NftRule("meta l4proto tcp meta mark & \(FlowMark.hex(FlowMark.mask)) == \(FlowMark.hex(FlowMark.denyReset))", "reject with tcp reset", "flow verdict deny: reset so the client fails fast"),
                ]))
                hooks.append(("prerouting", "PREROUTING"))
            }
            if facts.nativeNftQueue {
                notes.append("flow queue \(q): native nft queue expression, fail-\(o.queueBypass ? "open (bypass)" : "closed")")
            } else {
                notes.append("flow queue \(q): this kernel has no native nft queue expression; using the xtables NFQUEUE target through iptables-nft, fail-\(o.queueBypass ? "open (bypass)" : "closed")")
                let target = q.isSingle ? ["--queue-num", "\(q.first)"] : ["--queue-balance", "\(q.first):\(q.last)"]
                for family in IPFamily.allCases where family == .v4 || v6 {
                    for (_, chain) in hooks {
                        xtables.append(XtablesRule(family: family, table: "mangle", chain: chain, spec:
                            ["-m", "mark", "--mark", "\(FlowMark.hex(FlowMark.queued).replacingZeros())/\(FlowMark.hex(FlowMark.mask).replacingZeros())",
                             "-m", "comment", "--comment", XtablesRule.comment, "-j", "NFQUEUE"] + target + (o.queueBypass ? ["--queue-bypass"] : [])))
                    }
                }
            }
        }

        var routes: [PolicyRoute] = []
        if o.mode == .tproxy && o.capturesInbound {
            routes.append(PolicyRoute(family: .v4, mark: o.tproxyMark, table: o.tproxyRouteTable))
            if v6 { routes.append(PolicyRoute(family: .v6, mark: o.tproxyMark, table: o.tproxyRouteTable)) }
        }
        let loopback: [LoopbackAddress] = (v6 && o.capturesInbound) ? [.inboundPassthroughV6] : []

        var owned = self.owned
        if !routes.isEmpty { owned.tproxyRouting = .init(mark: o.tproxyMark, table: o.tproxyRouteTable) }
        let table = NftTable(comment: owned.encoded, sets: sets.sets, chains: chains)
        return CapturePlan(table: table, xtablesRules: xtables, policyRoutes: routes, loopbackAddresses: loopback, notes: notes)
    }

    static func idSet(_ ids: [UInt32]) -> String {
        "{ " + ids.map(String.init).joined(separator: ", ") + " }"
    }
}

/// One decision in the outbound or inbound path, rendered into the nat chain and into the queue gate.
enum Step {
    /// Not captured: `return` in both chains.
    case pass(String, String)
    /// The proxy's own call to its pod IP: inbound redirect in nat, not queued.
    case toInbound(String, String)
    /// DNS over TCP: redirect to the DNS port in nat, not queued.
    case toDNS(String, String)
    /// TPROXY: packets of a socket the proxy holds, marked and accepted.
    case divert(String, String)
    /// Captured here, before later rules could let it pass (Istio's -q ports).
    case capture(String, String)

    func natRule(inboundPort: UInt16, dnsPort: UInt16, mark: UInt32, capture: String) -> NftRule {
        switch self {
        case .capture(let m, let c): return NftRule(m, capture, c)
        case .pass(let m, let c): return NftRule(m, "return", c)
        case .toInbound(let m, let c): return NftRule(m + " meta l4proto tcp", "redirect to :\(inboundPort)", c)
        case .toDNS(let m, let c): return NftRule(m, "redirect to :\(dnsPort)", c)
        case .divert(let m, let c): return NftRule(m, "meta mark set \(mark) accept", c)
        }
    }

    func gateRule(queue: String) -> NftRule {
        switch self {
        case .pass(let m, let c), .toInbound(let m, let c), .toDNS(let m, let c), .divert(let m, let c):
            return NftRule(m, "return", c)
        case .capture(let m, let c): return NftRule(m, queue, c)
        }
    }
}

/// Names and fills the table's sets; a list with no entries makes no set (nft refuses empty elements).
struct SetCatalog {
    let ipv6: Bool
    var sets: [NftSet] = []

    mutating func ports(_ name: String, _ ports: [PortRange]) -> String? {
        guard !ports.isEmpty else { return nil }
        sets.append(NftSet(name: name, type: "inet_service", elements: normalizePorts(ports).map(\.description)))
        return name
    }

    mutating func addresses(_ name: String, _ cidrs: [CIDR], _ family: CIDR.Family) -> String? {
        if family == .v6 && !ipv6 { return nil }
        let mine = cidrs.filter { $0.family == family }.sorted()
        guard !mine.isEmpty else { return nil }
        sets.append(NftSet(name: name, type: family == .v4 ? "ipv4_addr" : "ipv6_addr", elements: mine.map(\.description)))
        return name
    }
}

extension String {
    /// `0x00100000` -> `0x100000`, the way iptables prints marks back.
    func replacingZeros() -> String {
        guard hasPrefix("0x") else { return self }
        let digits = dropFirst(2).drop { $0 == "0" }
        return "0x" + (digits.isEmpty ? "0" : digits)
    }
}
