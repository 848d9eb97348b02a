import InterposeCapture
import InterposeCaptureRuntime
import Testing

@Suite("Capture options")
struct OptionParsingTests {
    func parse(_ args: [String]) throws -> CaptureOptions {
        try CaptureArguments.parse(args).validOptions
    }

    func errorText(_ args: [String]) -> String {
        do {
            _ = try CaptureArguments.parse(args)
            return ""
        } catch {
            return CaptureArguments.message(for: error)
        }
    }

    @Test func defaultsFollowIstio() throws {
        let o = try parse([])
        #expect(o.outboundPort == 15001)
        #expect(o.inboundPort == 15006)
        #expect(o.proxyUIDs == [1337] && o.proxyGIDs == [1337])
        #expect(o.mode == .redirect)
        #expect(o.inboundPorts == .all && o.outboundCIDRs == .all && o.outboundPorts == .all)
        #expect(o.proxyOwnPorts.map(\.description) == ["15000", "15020", "15021", "15090"])
        #expect(!o.captureDNS && !o.dropInvalid && o.queue == nil && o.queueBypass)
    }

    @Test func istioShortFlagsAndSpellingsAreAccepted() throws {
        let o = try parse(["-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "TPROXY", "-i", "*", "-x", "",
                           "-b", "*", "-d", "15090,15021,15020", "-q", "", "-o", "3306", "-c", "eth1", "-t", "1338", "-r", "134",
                           "--log_output_level=default:info"])
        #expect(o.mode == .tproxy)
        #expect(o.excludeInboundPorts.map(\.description) == ["15020-15021", "15090"])
        #expect(o.excludeOutboundCIDRs.isEmpty)
        #expect(o.outboundPorts == .all)
        #expect(o.excludeOutboundPorts == [PortRange(3306)])
        #expect(o.excludeInterfaces == ["eth1"])
        #expect(o.tproxyMark == 1338 && o.tproxyRouteTable == 134)
    }

    @Test func istioLongNamesAreAliases() throws {
        let o = try parse(["--envoy-port", "16001", "--inbound-capture-port", "16006", "--istio-inbound-ports", "8080",
                           "--istio-service-exclude-cidr", "10.0.0.0/8", "--redirect-dns", "--istio-outbound-ports", "443",
                           "--istio-exclude-interfaces", "eth1", "--run-validation", "--dual-stack", "--reroute-virtual-interfaces"])
        #expect(o.outboundPorts == .only([PortRange(443)]) && o.excludeInterfaces == ["eth1"])
        #expect(o.outboundPort == 16001 && o.inboundPort == 16006)
        #expect(o.inboundPorts == .only([PortRange(8080)]))
        #expect(o.excludeOutboundCIDRs.map(\.description) == ["10.0.0.0/8"])
        #expect(o.captureDNS)
    }

    @Test func emptyListsMeanWhatIstioMeans() throws {
        #expect(try parse(["-b", ""]).inboundPorts == .none)
        #expect(try parse(["-i", ""]).outboundCIDRs == .none)
        #expect(try parse(["-q", ""]).outboundPorts == .all)
        #expect(try parse(["-q", "80,443"]).outboundPorts == .only([PortRange(80), PortRange(443)]))
        #expect(try parse(["-u", "1400"]).proxyGIDs == [1400], "the gid defaults to the uid, as in istio-iptables")
        #expect(try parse(["--host-mode", "--ssh-ports", ""]).sshPorts == [])
    }

    @Test func portListsAreSortedMergedAndRangesKept() throws {
        let o = try parse(["-o", "9000,8080,8081,7000-7005,7003"])
        #expect(o.excludeOutboundPorts.map(\.description) == ["7000-7005", "8080-8081", "9000"])
    }

    @Test func queueNumberAndRange() throws {
        #expect(try parse(["--queue", "3"]).queue == QueueRange(first: 3, last: 3))
        #expect(try parse(["--queue", "0-3", "--no-queue-bypass"]).queue == QueueRange(first: 0, last: 3))
        #expect(try parse(["--queue", "0-3", "--no-queue-bypass"]).queueBypass == false)
    }

    @Test func durations() throws {
        #expect(try parse(["--host-mode", "--rollback-after", "90"]).rollbackAfterSeconds == 90)
        #expect(try parse(["--host-mode", "--rollback-after", "2m"]).rollbackAfterSeconds == 120)
        #expect(try parse(["--host-mode", "--rollback-after", "1m30s"]).rollbackAfterSeconds == 90)
        #expect(try parse(["--host-mode", "--rollback-after", "1h"]).rollbackAfterSeconds == 3600)
    }

    @Test(arguments: [
        (["-p", "abc"], "--outbound-port/-p: 'abc' is not a port; expected a port number 1-65535"),
        (["-z", "0"], "--inbound-port/-z: '0' is not a port"),
        (["-z", "15001"], "--inbound-port/-z: 15001 is also the outbound port"),
        (["-b", "80,70000"], "--inbound-ports/-b: '70000' is not a port or port range in '80,70000'"),
        (["-d", "80,,81"], "--exclude-inbound-ports/-d: has an empty item in '80,,81'"),
        (["-o", "9000-8000"], "--exclude-outbound-ports/-o: '9000-8000' is not a port or port range"),
        (["-x", "10.0.0.0/33"], "--exclude-outbound-cidrs/-x: '10.0.0.0/33' is not a CIDR: the prefix length must be 0-32"),
        (["-x", "fd00::/129"], "--exclude-outbound-cidrs/-x: 'fd00::/129' is not a CIDR: the prefix length must be 0-128"),
        (["-i", "10.0.0.300/8"], "--outbound-cidrs/-i: '10.0.0.300/8' is not a CIDR: the address is neither IPv4 nor IPv6"),
        (["-i", "fd00:::1"], "--outbound-cidrs/-i: 'fd00:::1' is not a CIDR"),
        (["-m", "nat"], "--mode/-m: 'nat' is not a capture mode; expected redirect or tproxy"),
        (["-u", "root"], "--proxy-uid/-u: 'root' is not a numeric id"),
        (["-c", "eth0\"; flush ruleset"], "--exclude-interfaces/-c:"),
        (["-c", "averyveryverylongname"], "--exclude-interfaces/-c: 'averyveryverylongname' is not an interface name"),
        (["--queue", "5-2"], "--queue: '5-2' is not a queue number or range; expected a queue number 0-65535 or a range like 0-3"),
        (["--queue", "70000"], "--queue: '70000' is not a queue number or range"),
        (["--rollback-after", "5m"], "--rollback-after: only applies with --host-mode"),
        (["--host-mode", "--rollback-after", "soon"], "--rollback-after: 'soon' is not a duration"),
        (["--host-mode", "--rollback-after", "100000"], "--rollback-after: '100000' is not a duration of at most 24h"),
        (["-m", "tproxy", "-t", "0x100000"], "--tproxy-mark/-t: 1048576 overlaps the flow-verdict mark bits"),
    ] as [([String], String)])
    func badInputNamesTheOptionAndTheForm(args: [String], message: String) {
        let text = errorText(args)
        #expect(text.contains(message), "got: \(text)")
    }

    @Test func everyProblemIsReportedAtOnce() {
        let text = errorText(["-p", "x", "-x", "1.2.3.4/40", "-b", "99999"])
        #expect(text.contains("--outbound-port/-p"))
        #expect(text.contains("--exclude-outbound-cidrs/-x"))
        #expect(text.contains("--inbound-ports/-b"))
    }
}
