import Foundation
import InterposeCapture
@testable import InterposeConfig
@testable import InterposeFlow

// Shared helpers: YAML -> bundle (as `ConfigLoader.load(path:)` does it), packet bytes built by hand,
// and addresses from text.

/// Decodes YAML text, then runs the cross-resource checks, like `ConfigLoader.load(path:)`.
func loadFlowYAML(_ yaml: String, file: String = "flow.yaml") -> ConfigBundle {
    var bundle = ConfigBundle()
    ConfigLoader.load(text: yaml, file: file, into: &bundle)
    ConfigLoader.validateReferences(&bundle)
    return bundle
}

/// One FlowPolicy document from its `spec` body (indented by the caller's text as written at column 0).
func flowPolicyDocument(_ name: String, namespace: String = "default", order: Int? = nil, rules: String) -> String {
    var text = """
    apiVersion: interpose.dev/v1alpha1
    kind: FlowPolicy
    metadata: {name: \(name), namespace: \(namespace)}
    spec:

    """
    if let order { text += "  order: \(order)\n" }
    text += "  rules:\n"
    text += rules.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
    return text
}

extension ConfigBundle {
    func issues(at path: String) -> [ConfigIssue] { issues.filter { $0.path == path } }
    var summary: String { issues.map(\.description).joined(separator: "\n") }
}

/// Compiles the FlowPolicies of a YAML text that must load without errors.
func compileRules(_ yaml: String, resolved: [String: [String]] = [:], previous: FlowRuleSet? = nil) -> (FlowRuleSet, ConfigBundle) {
    let bundle = loadFlowYAML(yaml)
    let rules = FlowRuleSet.compile(bundle.flowPolicies, hostAddresses: FlowRuleSet.hostAddresses(bundle, resolved: resolved), previous: previous)
    return (rules, bundle)
}

func addr(_ text: String) -> FlowAddress {
    guard let a = FlowAddress(text) else { fatalError("bad test address \(text)") }
    return a
}

func cidr(_ text: String) -> CIDR {
    guard case .success(let c) = CIDR.parse(text) else { fatalError("bad test CIDR \(text)") }
    return c
}

func tcpFlow(_ source: String, _ destination: String, port: UInt16, sourcePort: UInt16 = 40000) -> FlowTuple {
    FlowTuple(transport: FlowTuple.tcp, source: addr(source), destination: addr(destination), sourcePort: sourcePort, destinationPort: port)
}

/// Packet bytes as the kernel copies them to NFQUEUE (checksums left zero: the parser never reads them).
enum PacketBytes {
    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

    /// A 20-byte TCP header with only SYN set, or an 8-byte UDP header.
    static func transport(_ proto: UInt8, sourcePort: UInt16, destinationPort: UInt16) -> [UInt8] {
        if proto == FlowTuple.udp { return be16(sourcePort) + be16(destinationPort) + be16(8) + [0, 0] }
        return be16(sourcePort) + be16(destinationPort) + [0, 0, 0, 1] + [0, 0, 0, 0] + [0x50, 0x02] + be16(64240) + [0, 0, 0, 0]
    }

    /// IPv4; `options` must be a multiple of 4 bytes (IHL grows with it). `fragment` is the raw
    /// flags+offset field (offset in 8-byte units in the low 13 bits).
    static func ipv4(_ source: String, _ destination: String, proto: UInt8 = FlowTuple.tcp, sourcePort: UInt16 = 40000, destinationPort: UInt16,
                     options: [UInt8] = [], fragment: UInt16 = 0x4000, body: [UInt8]? = nil) -> [UInt8] {
        precondition(options.count % 4 == 0)
        let payload = body ?? transport(proto, sourcePort: sourcePort, destinationPort: destinationPort)
        let ihl = UInt8(5 + options.count / 4)
        let total = UInt16(20 + options.count + payload.count)
        var p: [UInt8] = [0x40 | ihl, 0] + be16(total) + be16(0x1234) + be16(fragment) + [64, proto, 0, 0]
        p += addr(source).bytes + addr(destination).bytes + options
        return p + payload
    }

    /// IPv6; `extensions` are (header type, bytes) in order, each header's own first byte (next
    /// header) filled in here.
    static func ipv6(_ source: String, _ destination: String, proto: UInt8 = FlowTuple.tcp, sourcePort: UInt16 = 40000, destinationPort: UInt16,
                     extensions: [(type: UInt8, bytes: [UInt8])] = []) -> [UInt8] {
        let payload = transport(proto, sourcePort: sourcePort, destinationPort: destinationPort)
        var chain: [UInt8] = []
        for (i, e) in extensions.enumerated() {
            var h = e.bytes
            h[0] = i + 1 < extensions.count ? extensions[i + 1].type : proto
            chain += h
        }
        let first = extensions.first?.type ?? proto
        let length = UInt16(chain.count + payload.count)
        var p: [UInt8] = [0x60, 0, 0, 0] + be16(length) + [first, 64]
        p += addr(source).bytes + addr(destination).bytes
        return p + chain + payload
    }

    /// An 8-byte hop-by-hop options header (a PadN option fills it).
    static let hopByHop: (type: UInt8, bytes: [UInt8]) = (0, [0, 0, 1, 4, 0, 0, 0, 0])
    /// A 16-byte destination options header (length field 1: two 8-byte units).
    static let destinationOptions: (type: UInt8, bytes: [UInt8]) = (60, [0, 1, 1, 12] + [UInt8](repeating: 0, count: 12))
}

func parse(_ bytes: [UInt8]) -> FlowTuple? {
    bytes.withUnsafeBytes { FlowTuple.parse($0) }
}

// `#expect` cannot look into a non-copyable `Atomic`: read them through plain properties.
extension FlowMetrics {
    var decisionCount: Int { decisions.load(ordering: .relaxed) }
    var staleCount: Int { staleVerdicts.load(ordering: .relaxed) }
    var enobufsCount: Int { enobufsErrors.load(ordering: .relaxed) }
    var queueErrorCount: Int { queueErrors.load(ordering: .relaxed) }
    var restartCount: Int { watchdogRestarts.load(ordering: .relaxed) }
    var verdictMessageCount: Int { verdictMessages.load(ordering: .relaxed) }
}

extension FlowQueueReader {
    var isFinished: Bool { finished.load(ordering: .acquiring) }
}
