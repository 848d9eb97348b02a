import ArgumentParser
import InterposeCapture

/// The capture options as command-line arguments: long self-explaining names first, istio-iptables'
/// short flags and long names as aliases, so the binary can replace istio-init in an existing pod spec.
/// Values are taken as text and checked by `CaptureOptionParser`, whose errors name the option and the form.
public struct CaptureArguments: ParsableArguments, Sendable {
    public init() {}

    @Option(name: [.customLong("outbound-port"), .customShort("p"), .customLong("envoy-port")],
            help: ArgumentHelp("Port of the proxy's outbound listener.", valueName: "port"))
    var outboundPort: String?

    @Option(name: [.customLong("inbound-port"), .customShort("z"), .customLong("inbound-capture-port")],
            help: ArgumentHelp("Port of the proxy's inbound listener.", valueName: "port"))
    var inboundPort: String?

    @Option(name: [.customLong("proxy-uid"), .customShort("u")],
            help: ArgumentHelp("Comma-separated uids of the proxy; their traffic is never captured. (default: 1337)", valueName: "uids"))
    var proxyUID: String?

    @Option(name: [.customLong("proxy-gid"), .customShort("g")],
            help: ArgumentHelp("Comma-separated gids of the proxy; their traffic is never captured. (default: the --proxy-uid values)", valueName: "gids"))
    var proxyGID: String?

    @Option(name: [.customLong("mode"), .customShort("m"), .customLong("istio-inbound-interception-mode")],
            help: ArgumentHelp("Inbound capture mode: redirect or tproxy (REDIRECT/TPROXY accepted). (default: redirect)", valueName: "mode"))
    var mode: String?

    @Option(name: [.customLong("inbound-ports"), .customShort("b"), .customLong("istio-inbound-ports")],
            help: ArgumentHelp("Inbound ports to capture: '*' for all, a comma-separated list, or '' for none. (default: *)", valueName: "ports"))
    var inboundPorts: String?

    @Option(name: [.customLong("exclude-inbound-ports"), .customShort("d"), .customLong("istio-local-exclude-ports")],
            help: ArgumentHelp("Inbound ports never captured, comma-separated (with --inbound-ports '*').", valueName: "ports"))
    var excludeInboundPorts: String?

    @Option(name: [.customLong("outbound-cidrs"), .customShort("i"), .customLong("istio-service-cidr")],
            help: ArgumentHelp("Outbound IPv4/IPv6 CIDRs to capture: '*' for all, a list, or '' for none. (default: *)", valueName: "cidrs"))
    var outboundCIDRs: String?

    @Option(name: [.customLong("exclude-outbound-cidrs"), .customShort("x"), .customLong("istio-service-exclude-cidr")],
            help: ArgumentHelp("Outbound IPv4/IPv6 CIDRs never captured, comma-separated.", valueName: "cidrs"))
    var excludeOutboundCIDRs: String?

    @Option(name: [.customLong("outbound-ports"), .customShort("q"), .customLong("istio-outbound-ports")],
            help: ArgumentHelp("Outbound ports always captured, whatever --outbound-cidrs says (as istio-iptables -q), comma-separated.", valueName: "ports"))
    var outboundPorts: String?

    @Option(name: [.customLong("exclude-outbound-ports"), .customShort("o"), .customLong("istio-local-outbound-ports-exclude")],
            help: ArgumentHelp("Outbound ports never captured, comma-separated.", valueName: "ports"))
    var excludeOutboundPorts: String?

    @Option(name: [.customLong("exclude-interfaces"), .customShort("c"), .customLong("istio-exclude-interfaces")],
            help: ArgumentHelp("Interfaces whose traffic is never captured, comma-separated.", valueName: "names"))
    var excludeInterfaces: String?

    @Option(name: .customLong("proxy-ports"),
            help: ArgumentHelp("The proxy's own ports, never captured inbound. (default: 15000,15020,15021,15090)", valueName: "ports"))
    var proxyPorts: String?

    @Flag(name: [.customLong("capture-dns"), .customLong("redirect-dns")],
          help: "Capture DNS (UDP and TCP port 53) to --dns-port, with conntrack zones.")
    var captureDNS = false

    @Option(name: .customLong("dns-port"), help: ArgumentHelp("Port of the proxy's DNS listener. (default: 15053)", valueName: "port"))
    var dnsPort: String?

    @Flag(name: .customLong("drop-invalid"), help: "Drop conntrack-invalid TCP packets instead of letting the kernel reset the connection.")
    var dropInvalid = false

    @Option(name: .customLong("queue"),
            help: ArgumentHelp("Send the first SYN of each new captured flow to NFQUEUE N or a range N-M for a userspace verdict.", valueName: "n|n-m"))
    var queue: String?

    @Flag(name: .customLong("queue-bypass"), inversion: .prefixedNo,
          help: "Fail open: with no consumer on the queue, flows go on (to the proxy). --no-queue-bypass fails closed (drops them).")
    var queueBypass = true

    @Flag(name: .customLong("host-mode"), help: "Bare-host mode: never capture the ports sshd listens on; only capture traffic addressed to this host.")
    var hostMode = false

    @Option(name: .customLong("ssh-ports"), help: ArgumentHelp("Host mode: ssh ports to keep uncaptured, instead of those found from sshd.", valueName: "ports"))
    var sshPorts: String?

    @Option(name: .customLong("rollback-after"),
            help: ArgumentHelp("Host mode: remove the rules again after this long (90s, 5m) unless 'interpose-init confirm' runs first.", valueName: "duration"))
    var rollbackAfter: String?

    @Option(name: [.customLong("tproxy-mark"), .customShort("t"), .customLong("istio-inbound-tproxy-mark")],
            help: ArgumentHelp("TPROXY packet mark. (default: 1337)", valueName: "mark"))
    var tproxyMark: String?

    @Option(name: [.customLong("tproxy-route-table"), .customShort("r"), .customLong("istio-inbound-tproxy-route-table")],
            help: ArgumentHelp("TPROXY routing table. (default: 133)", valueName: "table"))
    var tproxyRouteTable: String?

    // istio-iptables flags accepted so an existing istio-init pod spec runs unchanged; they change nothing here.
    @Option(name: .customLong("log_output_level"), help: .hidden) var istioLogLevel: String?
    @Option(name: [.customShort("k"), .customLong("kube-virt-interfaces")], help: .hidden) var istioVirtualInterfaces: String?
    @Option(name: [.customShort("e"), .customLong("inbound-tunnel-port")], help: .hidden) var istioTunnelPort: String?
    @Option(name: .customLong("network-namespace"), help: .hidden) var istioNetworkNamespace: String?
    @Option(name: .customLong("probe-timeout"), help: .hidden) var istioProbeTimeout: String?
    @Option(name: .customLong("iptables-probe-port"), help: .hidden) var istioProbePort: String?
    @Flag(name: .customLong("run-validation"), help: .hidden) var istioRunValidation = false
    @Flag(name: .customLong("capture-all-dns"), help: .hidden) var istioCaptureAllDNS = false
    @Flag(name: .customLong("reroute-virtual-interfaces"), help: .hidden) var istioRerouteVirtual = false
    @Flag(name: .customLong("dual-stack"), help: .hidden) var istioDualStack = false
    @Flag(name: .customLong("cni-mode"), help: .hidden) var istioCNIMode = false
    @Flag(name: .customLong("restore-format"), help: .hidden) var istioRestoreFormat = false
    @Flag(name: .customLong("iptables-trace-logging"), help: .hidden) var istioTraceLogging = false
    /// istio-iptables' `--cleanup-only`: `apply --cleanup-only` runs cleanup.
    @Flag(name: .customLong("cleanup-only"), help: .hidden) public var cleanupOnly = false
    /// istio-iptables' `--skip-rule-apply`: apply nothing (Istio pairs it with --run-validation).
    @Flag(name: .customLong("skip-rule-apply"), help: .hidden) public var skipRuleApply = false

    public var raw: [OptionName: String] {
        var r: [OptionName: String] = [:]
        r[.outboundPort] = outboundPort
        r[.inboundPort] = inboundPort
        r[.proxyUID] = proxyUID
        r[.proxyGID] = proxyGID
        r[.mode] = mode
        r[.inboundPorts] = inboundPorts
        r[.excludeInboundPorts] = excludeInboundPorts
        r[.outboundCIDRs] = outboundCIDRs
        r[.excludeOutboundCIDRs] = excludeOutboundCIDRs
        r[.outboundPorts] = outboundPorts
        r[.excludeOutboundPorts] = excludeOutboundPorts
        r[.excludeInterfaces] = excludeInterfaces
        r[.proxyPorts] = proxyPorts
        r[.dnsPort] = dnsPort
        r[.queue] = queue
        r[.sshPorts] = sshPorts
        r[.rollbackAfter] = rollbackAfter
        r[.tproxyMark] = tproxyMark
        r[.tproxyRouteTable] = tproxyRouteTable
        return r
    }

    public var flags: CaptureFlags {
        CaptureFlags(captureDNS: captureDNS || istioCaptureAllDNS, dropInvalid: dropInvalid, queueBypass: queueBypass, hostMode: hostMode)
    }

    /// The validated options, or every problem found.
    public func options() -> Result<CaptureOptions, OptionErrors> {
        CaptureOptionParser().parse(raw, flags: flags)
    }

    public mutating func validate() throws {
        if case .failure(let errors) = options() {
            throw ValidationError(errors.description)
        }
    }

    /// Validated options; `validate()` has already run when ArgumentParser built this value.
    public var validOptions: CaptureOptions {
        get throws {
            switch options() {
            case .success(let o): return o
            case .failure(let e): throw ValidationError(e.description)
            }
        }
    }
}
