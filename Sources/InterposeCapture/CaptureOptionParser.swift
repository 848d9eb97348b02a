/// Turns option text, as typed on a command line or in an istio-init pod spec, into `CaptureOptions`.
/// Every problem is collected, so a user fixes all of them in one go; nothing here touches the system.
public struct CaptureOptionParser: Sendable {
    public init() {}

    static let portForm = "a port number 1-65535"
    static let portListForm = "a comma-separated list of ports 1-65535 or ranges like 8000-8010"
    static let cidrListForm = "a comma-separated list of IPv4/IPv6 addresses or CIDRs like 10.0.0.0/8,fd00::/8"

    /// Raw option text keyed by option; absent keys keep their defaults.
    public func parse(_ raw: [OptionName: String], flags: CaptureFlags) -> Result<CaptureOptions, OptionErrors> {
        var o = CaptureOptions()
        var errors: [OptionError] = []
        func note<T>(_ r: Result<T, OptionError>, _ set: (T) -> Void) {
            switch r {
            case .success(let v): set(v)
            case .failure(let e): errors.append(e)
            }
        }
        if let t = raw[.outboundPort] { note(Self.port(t, .outboundPort)) { o.outboundPort = $0 } }
        if let t = raw[.inboundPort] { note(Self.port(t, .inboundPort)) { o.inboundPort = $0 } }
        if let t = raw[.dnsPort] { note(Self.port(t, .dnsPort)) { o.dnsPort = $0 } }
        if let t = raw[.proxyUID] { note(Self.ids(t, .proxyUID)) { o.proxyUIDs = $0 } }
        // As in istio-iptables, the proxy gid defaults to the proxy uid.
        if let t = raw[.proxyGID] { note(Self.ids(t, .proxyGID)) { o.proxyGIDs = $0 } } else { o.proxyGIDs = o.proxyUIDs }
        if let t = raw[.mode] { note(Self.mode(t)) { o.mode = $0 } }
        if let t = raw[.inboundPorts] { note(Self.selection(t, .inboundPorts, emptyMeans: .none)) { o.inboundPorts = $0 } }
        if let t = raw[.outboundPorts] { note(Self.selection(t, .outboundPorts, emptyMeans: .all)) { o.outboundPorts = $0 } }
        if let t = raw[.excludeInboundPorts] { note(Self.ports(t, .excludeInboundPorts)) { o.excludeInboundPorts = $0 } }
        if let t = raw[.excludeOutboundPorts] { note(Self.ports(t, .excludeOutboundPorts)) { o.excludeOutboundPorts = $0 } }
        if let t = raw[.proxyPorts] { note(Self.ports(t, .proxyPorts)) { o.proxyOwnPorts = $0 } }
        if let t = raw[.sshPorts] { note(Self.ports(t, .sshPorts)) { o.sshPorts = $0 } }
        if let t = raw[.outboundCIDRs] { note(Self.cidrSelection(t)) { o.outboundCIDRs = $0 } }
        if let t = raw[.excludeOutboundCIDRs] { note(Self.cidrs(t, .excludeOutboundCIDRs)) { o.excludeOutboundCIDRs = $0 } }
        if let t = raw[.excludeInterfaces] { note(Self.interfaces(t)) { o.excludeInterfaces = $0 } }
        if let t = raw[.queue] { note(Self.queue(t)) { o.queue = $0 } }
        if let t = raw[.rollbackAfter] { note(Self.duration(t)) { o.rollbackAfterSeconds = $0 } }
        if let t = raw[.tproxyMark] { note(Self.number(t, .tproxyMark, max: UInt32.max)) { o.tproxyMark = $0 } }
        if let t = raw[.tproxyRouteTable] { note(Self.number(t, .tproxyRouteTable, max: 0xFFFF_FFFE)) { o.tproxyRouteTable = $0 } }
        o.captureDNS = flags.captureDNS
        o.dropInvalid = flags.dropInvalid
        o.queueBypass = flags.queueBypass
        o.hostMode = flags.hostMode

        if o.outboundPort == o.inboundPort && errors.isEmpty {
            errors.append(OptionError(.inboundPort, "\(o.inboundPort) is also the outbound port", expected: "two different ports"))
        }
        if o.rollbackAfterSeconds != nil && !o.hostMode {
            errors.append(OptionError(.rollbackAfter, "only applies with --host-mode", expected: "--host-mode --rollback-after DURATION"))
        }
        if o.mode == .tproxy && o.tproxyMark & FlowMark.mask != 0 {
            errors.append(OptionError(.tproxyMark, "\(o.tproxyMark) overlaps the flow-verdict mark bits \(FlowMark.hex(FlowMark.mask))", expected: "a mark outside those bits, like 1337"))
        }
        return errors.isEmpty ? .success(o) : .failure(OptionErrors(errors))
    }

    // MARK: - single values

    static func trimmedItems(_ text: String) -> [String] {
        text.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingSpaces() }
    }

    static func port(_ text: String, _ name: OptionName) -> Result<UInt16, OptionError> {
        let t = text.trimmingSpaces()
        guard let r = PortRange.parse(t), r.lower == r.upper else {
            return .failure(OptionError(name, "'\(text)' is not a port", expected: portForm))
        }
        return .success(r.lower)
    }

    static func ports(_ text: String, _ name: OptionName) -> Result<[PortRange], OptionError> {
        if text.trimmingSpaces().isEmpty { return .success([]) }
        var out: [PortRange] = []
        for item in trimmedItems(text) {
            guard let r = PortRange.parse(item) else {
                let why = item.isEmpty ? "has an empty item" : "'\(item)' is not a port or port range"
                return .failure(OptionError(name, "\(why) in '\(text)'", expected: portListForm))
            }
            out.append(r)
        }
        return .success(normalizePorts(out))
    }

    static func selection(_ text: String, _ name: OptionName, emptyMeans: PortSelection) -> Result<PortSelection, OptionError> {
        let t = text.trimmingSpaces()
        if t == "*" { return .success(.all) }
        if t.isEmpty { return .success(emptyMeans) }
        return ports(t, name).map { .only($0) }
    }

    static func ids(_ text: String, _ name: OptionName) -> Result<[UInt32], OptionError> {
        var out: [UInt32] = []
        for item in trimmedItems(text) {
            guard !item.isEmpty, item.allSatisfy(\.isASCIIDigit), let v = UInt32(item), v < UInt32.max else {
                return .failure(OptionError(name, "'\(item)' is not a numeric id", expected: "a comma-separated list of numeric ids like 1337"))
            }
            if !out.contains(v) { out.append(v) }
        }
        return .success(out.sorted())
    }

    static func mode(_ text: String) -> Result<CaptureMode, OptionError> {
        switch text.trimmingSpaces().lowercased() {
        case "redirect": return .success(.redirect)
        case "tproxy": return .success(.tproxy)
        default: return .failure(OptionError(.mode, "'\(text)' is not a capture mode", expected: "redirect or tproxy (REDIRECT and TPROXY are accepted too)"))
        }
    }

    static func cidrs(_ text: String, _ name: OptionName) -> Result<[CIDR], OptionError> {
        if text.trimmingSpaces().isEmpty { return .success([]) }
        var out: [CIDR] = []
        for item in trimmedItems(text) {
            switch CIDR.parse(item) {
            case .success(let c): if !out.contains(c) { out.append(c) }
            case .failure(let e): return .failure(OptionError(name, e.description, expected: cidrListForm))
            }
        }
        return .success(out.sorted())
    }

    static func cidrSelection(_ text: String) -> Result<CIDRSelection, OptionError> {
        let t = text.trimmingSpaces()
        if t == "*" { return .success(.all) }
        if t.isEmpty { return .success(.none) }
        return cidrs(t, .outboundCIDRs).map { .only($0) }
    }

    static func interfaces(_ text: String) -> Result<[String], OptionError> {
        if text.trimmingSpaces().isEmpty { return .success([]) }
        var out: [String] = []
        for item in trimmedItems(text) {
            // IFNAMSIZ is 16 with the NUL; quotes or spaces would break the nft string.
            let ok = !item.isEmpty && item.utf8.count <= 15 && item.allSatisfy { c in
                c.isASCII && (c.isLetter || c.isNumber || "-_.@+".contains(c))
            }
            guard ok else {
                return .failure(OptionError(.excludeInterfaces, "'\(item)' is not an interface name", expected: "comma-separated interface names of at most 15 characters (letters, digits, - _ . @ +)"))
            }
            if !out.contains(item) { out.append(item) }
        }
        return .success(out.sorted())
    }

    public static func queue(_ text: String) -> Result<QueueRange, OptionError> {
        let form = "a queue number 0-65535 or a range like 0-3"
        let parts = text.trimmingSpaces().split(separator: "-", omittingEmptySubsequences: false)
        func n(_ s: Substring) -> UInt16? { s.allSatisfy(\.isASCIIDigit) && !s.isEmpty && s.count <= 5 ? UInt16(s) : nil }
        if parts.count == 1, let v = n(parts[0]) { return .success(QueueRange(first: v, last: v)!) }
        if parts.count == 2, let a = n(parts[0]), let b = n(parts[1]), let r = QueueRange(first: a, last: b) { return .success(r) }
        return .failure(OptionError(.queue, "'\(text)' is not a queue number or range", expected: form))
    }

    static func number(_ text: String, _ name: OptionName, max: UInt32) -> Result<UInt32, OptionError> {
        let t = text.trimmingSpaces()
        let v: UInt32? = t.hasPrefix("0x") ? UInt32(t.dropFirst(2), radix: 16) : (t.allSatisfy(\.isASCIIDigit) ? UInt32(t) : nil)
        guard let v, v >= 1, v <= max else {
            return .failure(OptionError(name, "'\(text)' is not a number", expected: "a number 1-\(max) (decimal or 0x hex)"))
        }
        return .success(v)
    }

    /// `90`, `90s`, `5m`, `1h`, `1m30s`.
    static func duration(_ text: String) -> Result<Int, OptionError> {
        let bad = OptionError(.rollbackAfter, "'\(text)' is not a duration of at most 24h", expected: "seconds or a duration like 90s, 5m, 1m30s, 1h")
        let t = text.trimmingSpaces()
        if !t.isEmpty, t.allSatisfy(\.isASCIIDigit), t.count <= 6, let v = Int(t), v > 0, v <= 86_400 { return .success(v) }
        if !t.isEmpty, t.allSatisfy(\.isASCIIDigit) { return .failure(bad) }
        var total = 0, digits = ""
        for c in t {
            if c.isASCIIDigit { digits.append(c); continue }
            guard let v = Int(digits) else { return .failure(bad) }
            switch c {
            case "h": total += v * 3600
            case "m": total += v * 60
            case "s": total += v
            default: return .failure(bad)
            }
            digits = ""
        }
        guard digits.isEmpty, total > 0, total <= 86_400 else { return .failure(bad) }
        return .success(total)
    }
}

/// The on/off capture switches.
public struct CaptureFlags: Equatable, Sendable {
    public var captureDNS = false
    public var dropInvalid = false
    public var queueBypass = true
    public var hostMode = false
    public init(captureDNS: Bool = false, dropInvalid: Bool = false, queueBypass: Bool = true, hostMode: Bool = false) {
        self.captureDNS = captureDNS
        self.dropInvalid = dropInvalid
        self.queueBypass = queueBypass
        self.hostMode = hostMode
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}
