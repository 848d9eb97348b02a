import Foundation
import InterposeCapture
import InterposeKernel

/// Which kernel and userspace features capture can use here. Each check is read-only: nft features are
/// tried with `nft -c` (checked by the kernel, never committed).
public struct KernelProbe: Sendable {
    public enum Answer: Sendable, Equatable, CustomStringConvertible {
        case yes, no(String), unknown(String)
        public var description: String {
            switch self {
            case .yes: return "yes"
            case .no(let why): return "no (\(why))"
            case .unknown(let why): return "unknown (\(why))"
            }
        }
        public var isYes: Bool { self == .yes }
    }

    public struct Report: Sendable {
        public var nft: Answer
        public var nftVersion: String?
        public var nat: Answer
        public var tproxy: Answer
        public var nativeNftQueue: Answer
        public var xtablesNFQueue: Answer
        public var ipv6: Answer
        public var sshdPorts: [UInt16]

        public var hostFacts: HostFacts {
            HostFacts(ipv6: ipv6.isYes, nativeNftQueue: nativeNftQueue.isYes, sshPorts: sshdPorts.map { PortRange($0) })
        }

        /// The queue path `apply --queue` would take.
        public var queuePath: String {
            if nativeNftQueue.isYes { return "native nft queue expression" }
            if xtablesNFQueue.isYes { return "xtables NFQUEUE target through iptables-nft (fallback: no native nft queue)" }
            return "none available"
        }

        public var text: String {
            var rows: [(String, String)] = [
                ("nft", nft.description + (nftVersion.map { ", \($0)" } ?? "")),
                ("nat (redirect)", nat.description),
                ("TPROXY", tproxy.description),
                ("native nft queue", nativeNftQueue.description),
                ("xtables NFQUEUE", xtablesNFQueue.description),
                ("IPv6", ipv6.description),
                ("flow queue path", queuePath),
            ]
            rows.append(("sshd ports", sshdPorts.isEmpty ? "none found" : sshdPorts.map(String.init).joined(separator: ",")))
            let width = rows.map(\.0.count).max() ?? 0
            return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n") + "\n"
        }

        public var json: String {
            func a(_ x: Answer) -> String { x.isYes ? "true" : (x.description.hasPrefix("unknown") ? "null" : "false") }
            return """
            {"nft": \(a(nft)), "nat": \(a(nat)), "tproxy": \(a(tproxy)), "native_nft_queue": \(a(nativeNftQueue)), \
            "xtables_nfqueue": \(a(xtablesNFQueue)), "ipv6": \(a(ipv6)), "queue_path": "\(queuePath)", \
            "sshd_ports": [\(sshdPorts.map(String.init).joined(separator: ", "))]}

            """
        }
    }

    let runner: CommandRunner
    let privileged: Bool

    public init(runner: CommandRunner, privileged: Bool = Privileges.canAdministerNetwork) {
        self.runner = runner
        self.privileged = privileged
    }

    public func run(wantSSH: Bool = true) -> Report {
        let inspector = HostInspector(runner: runner)
        let ipv6: Answer = inspector.ipv6Enabled() ? .yes : .no("disabled or not built in")
        let ssh = wantSSH ? inspector.sshdPorts() : []
        guard runner.which("nft") != nil else {
            let missing = Answer.unknown("nft is missing: install the Debian package 'nftables'")
            return Report(nft: .no("not on PATH; Debian package 'nftables'"), nftVersion: nil, nat: missing, tproxy: missing,
                          nativeNftQueue: missing, xtablesNFQueue: xtablesQueue(), ipv6: ipv6, sshdPorts: ssh)
        }
        let version = runner.run(["nft", "--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard privileged else {
            let why = Answer.unknown("needs root or CAP_NET_ADMIN to ask the kernel")
            return Report(nft: .yes, nftVersion: version, nat: why, tproxy: why, nativeNftQueue: why,
                          xtablesNFQueue: xtablesQueue(), ipv6: ipv6, sshdPorts: ssh)
        }
        return Report(
            nft: .yes, nftVersion: version,
            nat: check("meta l4proto tcp redirect to :1", type: "nat", priority: -100),
            tproxy: check("meta l4proto tcp tproxy ip to :1", type: "filter", hook: "prerouting", priority: -150),
            nativeNftQueue: check("queue num 0 bypass", type: "filter", priority: 0),
            xtablesNFQueue: xtablesQueue(), ipv6: ipv6, sshdPorts: ssh)
    }

    /// Asks the kernel whether it would accept one rule, without committing anything.
    func check(_ rule: String, type: String, hook: String = "output", priority: Int) -> Answer {
        let script = "table inet interpose_probe {\n\tchain c {\n\t\ttype \(type) hook \(hook) priority \(priority); policy accept;\n\t\t\(rule)\n\t}\n}\n"
        let r = runner.run(["nft", "-c", "-f", "-"], input: script)
        if r.succeeded { return .yes }
        let why = r.stderr.contains("No such file or directory") ? "the kernel lacks it" : r.message.split(separator: "\n").first.map(String.init) ?? "refused"
        return .no(why)
    }

    /// The xtables NFQUEUE target: iptables-nft on PATH and the target registered in the kernel.
    func xtablesQueue() -> Answer {
        guard runner.which("iptables-nft") != nil else { return .no("iptables-nft not on PATH; Debian package 'iptables'") }
        let targets = (try? String(contentsOfFile: "/proc/net/ip_tables_targets", encoding: .utf8)) ?? ""
        if targets.split(separator: "\n").contains("NFQUEUE") { return .yes }
        return .unknown("NFQUEUE target not registered yet (it may load as a module)")
    }
}
