import Foundation
import InterposeKernel
import Testing

/// interpose-init against the real kernel, in network namespaces each test makes and always removes.
/// The app namespace gets capture; a netcheck listener stands in for the proxy on 15001/15006 and reports
/// the original destination it reads (SO_ORIGINAL_DST); the peer namespace holds the real servers.
@Suite("Capture in network namespaces", .serialized, .enabled(if: Privileged.enabled, "needs root, ip, nft, iptables-nft"))
struct CaptureEndToEndTests {
    let app: UInt32 = 1000
    let proxy: UInt32 = 1337

    func withTopology(_ body: (Topology) throws -> Void) throws {
        let t = try Topology()
        defer { t.destroy() }
        try body(t)
    }

    func startProxyAndServer(_ t: Topology, transparent: Bool = false) throws {
        try t.listen(in: t.app, name: "proxy", ports: [15001, 15006], transparent: transparent)
        try t.listen(in: t.peer, name: "server", ports: [8080, 9090])
    }

    @Test func outboundConnectionsArriveAtTheProxyWithTheirOriginalDestination() throws {
        try withTopology { t in
            let r = t.capture(["apply"])
            #expect(r.succeeded, "\(r.stderr)")
            try startProxyAndServer(t)
            let v4 = t.dial(from: t.app, uid: app, "\(t.peerV4):8080")
            #expect(v4.answer?.name == "proxy")
            #expect(v4.answer?.original == "\(t.peerV4):8080")
            let v6 = t.dial(from: t.app, uid: app, "[\(t.peerV6)]:8080")
            #expect(v6.answer?.name == "proxy")
            #expect(v6.answer?.original == "[\(t.peerV6)]:8080")
            // The proxy's own uid is never captured: it reaches the real server.
            #expect(t.dial(from: t.app, uid: proxy, "\(t.peerV4):8080").answer?.name == "server")
            #expect(t.dial(from: t.app, uid: proxy, "[\(t.peerV6)]:8080").answer?.name == "server")
            // So is its gid, whatever the uid.
            #expect(t.dial(from: t.app, uid: 2000, gid: proxy, "\(t.peerV4):8080").answer?.name == "server")
        }
    }

    @Test func excludedPortsAndCIDRsReachTheRealServer() throws {
        try withTopology { t in
            let r = t.capture(["apply", "--exclude-outbound-ports", "9090", "--exclude-outbound-cidrs", "\(t.peerV4Extra)/32,\(t.peerV6Extra)/128"])
            #expect(r.succeeded, "\(r.stderr)")
            try startProxyAndServer(t)
            #expect(t.dial(from: t.app, uid: app, "\(t.peerV4):9090").answer?.name == "server")
            #expect(t.dial(from: t.app, uid: app, "\(t.peerV4Extra):8080").answer?.name == "server")
            #expect(t.dial(from: t.app, uid: app, "[\(t.peerV6Extra)]:8080").answer?.name == "server")
            #expect(t.dial(from: t.app, uid: app, "\(t.peerV4):8080").answer?.name == "proxy")
            #expect(t.dial(from: t.app, uid: app, "[\(t.peerV6)]:8080").answer?.name == "proxy")
        }
    }

    @Test func includedCIDRsAndIstioIncludedPortsAreCaptured() throws {
        try withTopology { t in
            // As istio-iptables: -i captures only these networks; -q ports are captured whatever -i says.
            let r = t.capture(["apply", "-i", "\(t.peerV4)/32", "-q", "8080"])
            #expect(r.succeeded, "\(r.stderr)")
            try startProxyAndServer(t)
            #expect(t.dial(from: t.app, uid: app, "\(t.peerV4):9090").answer?.name == "proxy")
            #expect(t.dial(from: t.app, uid: app, "\(t.peerV4Extra):8080").answer?.name == "proxy")
            #expect(t.dial(from: t.app, uid: app, "[\(t.peerV6)]:8080").answer?.name == "proxy")
            #expect(t.dial(from: t.app, uid: app, "\(t.peerV4Extra):9090").answer?.name == "server")
            #expect(t.dial(from: t.app, uid: app, "[\(t.peerV6)]:9090").answer?.name == "server")
        }
    }

    @Test func hostModeRefusesToGuessTheSSHPort() throws {
        try withTopology { t in
            let r = t.capture(["apply", "--host-mode"])
            #expect(r.status == 5)
            #expect(r.stderr.contains("--ssh-ports"))
            #expect(!t.run(t.app, ["nft", "list", "table", "inet", "interpose"]).succeeded)
        }
    }

    @Test func inboundConnectionsArriveOnTheInboundPortAndExcludedPortsDoNot() throws {
        try withTopology { t in
            let r = t.capture(["apply", "--exclude-inbound-ports", "8081"])
            #expect(r.succeeded, "\(r.stderr)")
            try t.listen(in: t.app, name: "proxy", ports: [15001, 15006])
            try t.listen(in: t.app, name: "app-server", ports: [8080, 8081])
            let captured = t.dial(from: t.peer, "\(t.appV4):8080")
            #expect(captured.answer?.name == "proxy")
            #expect(captured.answer?.original == "\(t.appV4):8080")
            #expect(captured.answer?.fields["local"] == "\(t.appV4):15006")
            let v6 = t.dial(from: t.peer, "[\(t.appV6)]:8080")
            #expect(v6.answer?.name == "proxy")
            #expect(v6.answer?.original == "[\(t.appV6)]:8080")
            #expect(t.dial(from: t.peer, "\(t.appV4):8081").answer?.name == "app-server")
            // The proxy's own ports are never captured.
            try t.listen(in: t.app, name: "readiness", ports: [15021])
            #expect(t.dial(from: t.peer, "\(t.appV4):15021").answer?.name == "readiness")
        }
    }

    @Test func loopbackFollowsIstioSemantics() throws {
        try withTopology { t in
            let r = t.capture(["apply"])
            #expect(r.succeeded, "\(r.stderr)")
            try t.listen(in: t.app, name: "proxy", ports: [15001, 15006])
            try t.listen(in: t.app, name: "app-server", ports: [8080])
            // App to app on loopback passes.
            #expect(t.dial(from: t.app, uid: app, "127.0.0.1:8080").answer?.name == "app-server")
            #expect(t.dial(from: t.app, uid: app, "[::1]:8080").answer?.name == "app-server")
            // The proxy forwarding inbound traffic to the app from 127.0.0.6 / ::6 passes.
            #expect(t.dial(from: t.app, uid: proxy, "\(t.appV4):8080", source: "127.0.0.6:0").answer?.name == "app-server")
            #expect(t.dial(from: t.app, uid: proxy, "[\(t.appV6)]:8080", source: "[::6]:0").answer?.name == "app-server")
            // The proxy calling its own pod IP goes inbound.
            let own = t.dial(from: t.app, uid: proxy, "\(t.appV4):8080")
            #expect(own.answer?.name == "proxy")
            #expect(own.answer?.fields["local"]?.hasSuffix(":15006") == true)
        }
    }

    @Test func tproxyInboundSeesTheClientsRealAddress() throws {
        try withTopology { t in
            let r = t.capture(["apply", "--mode", "TPROXY"])
            #expect(r.succeeded, "\(r.stderr)")
            try t.listen(in: t.app, name: "proxy", ports: [15006], transparent: true)
            let v4 = t.dial(from: t.peer, "\(t.appV4):8080")
            #expect(v4.answer?.name == "proxy")
            #expect(v4.answer?.peerHost == t.peerV4)
            #expect(v4.answer?.original == "\(t.appV4):8080")
            let v6 = t.dial(from: t.peer, "[\(t.appV6)]:8080", source: "[\(t.peerV6)]:0")
            #expect(v6.answer?.name == "proxy")
            #expect(v6.answer?.peerHost == t.peerV6)
            #expect(v6.answer?.original == "[\(t.appV6)]:8080")
            #expect(t.run(t.app, ["ip", "rule"]).stdout.contains("fwmark 0x539 lookup 133"))
            #expect(t.capture(["verify", "-m", "tproxy"]).succeeded)
        }
    }

    @Test func flowQueueWithoutAConsumerFailsOpenOrClosedAsAsked() throws {
        try withTopology { t in
            let r = t.capture(["apply", "--queue", "7"])
            #expect(r.succeeded, "\(r.stderr)")
            #expect(r.stdout.contains("xtables NFQUEUE"))
            try startProxyAndServer(t)
            // No engine answered: the flow goes straight to its destination (the proxy, whose process
            // would run the engine, is taken to be down), in both directions.
            let open = t.dial(from: t.app, uid: app, "\(t.peerV4):8080")
            #expect(open.answer?.name == "server")
            try t.listen(in: t.app, name: "app", ports: [8080])
            #expect(t.dial(from: t.peer, "\(t.appV4):8080").answer?.name == "app")
            // The SYN really went through the queue rule.
            let xt = t.run(t.app, ["iptables-nft", "-t", "mangle", "-L", "OUTPUT", "-v", "-n"]).stdout
            #expect(xt.contains("NFQUEUE num 7 bypass"))
            #expect(!xt.contains("    0     0 NFQUEUE"), "\(xt)")

            let closed = t.capture(["apply", "--queue", "7", "--no-queue-bypass"])
            #expect(closed.succeeded, "\(closed.stderr)")
            let refused = t.dial(from: t.app, uid: app, "\(t.peerV4):8080", timeoutMs: 1000)
            #expect(refused.answer == nil && refused.status == 2, "fail-closed: the SYN is dropped, the connect times out")
            // Traffic that is not captured is not queued either.
            #expect(t.dial(from: t.app, uid: proxy, "\(t.peerV4):8080").answer?.name == "server")
        }
    }

    @Test func dnsIsCapturedToTheDNSPort() throws {
        try withTopology { t in
            let r = t.capture(["apply", "--capture-dns"])
            #expect(r.succeeded, "\(r.stderr)")
            try t.listen(in: t.app, name: "dns-proxy", ports: [15053], udpPorts: [15053])
            try t.listen(in: t.peer, name: "dns-server", ports: [53], udpPorts: [53])
            #expect(t.dial(from: t.app, uid: app, "\(t.peerV4):53", udp: true).answer?.name == "dns-proxy")
            let tcp = t.dial(from: t.app, uid: app, "\(t.peerV4):53")
            #expect(tcp.answer?.name == "dns-proxy")
            #expect(tcp.answer?.original == "\(t.peerV4):53")
            #expect(t.dial(from: t.app, uid: proxy, "\(t.peerV4):53", udp: true).answer?.name == "dns-server")
        }
    }

    @Test func applyTwiceLeavesAnIdenticalRulesetAndVerifyAgrees() throws {
        try withTopology { t in
            let args = ["-m", "tproxy", "--queue", "0-1", "--capture-dns", "--drop-invalid", "-x", "10.9.0.0/16,fd00:9::/32", "-o", "3306"]
            #expect(t.capture(["apply"] + args).succeeded)
            let first = t.snapshot(t.app)
            let again = t.capture(["apply"] + args)
            #expect(again.succeeded, "\(again.stderr)")
            #expect(again.stdout.contains("no change"))
            expectSameSnapshot(t.snapshot(t.app), first, "a second apply changed the namespace")
            let v = t.capture(["verify"] + args)
            #expect(v.succeeded, "\(v.stdout)\(v.stderr)")
            #expect(v.stdout.contains("match"))
        }
    }

    @Test func cleanupLeavesTheNamespaceExactlyAsBefore() throws {
        try withTopology { t in
            let before = t.snapshot(t.app)
            let args = ["-m", "tproxy", "--queue", "2", "--capture-dns", "--drop-invalid", "-x", "10.9.0.0/16", "-c", "eth9"]
            #expect(t.capture(["apply"] + args).succeeded)
            #expect(t.snapshot(t.app) != before)
            // Cleanup needs no options: the table records what apply added outside it.
            let c = t.capture(["cleanup"])
            #expect(c.succeeded, "\(c.stderr)")
            #expect(c.stdout.contains("removed table inet interpose"))
            expectSameSnapshot(t.snapshot(t.app), before, "cleanup left something behind")
            let again = t.capture(["cleanup"])
            #expect(again.succeeded)
            #expect(again.stdout.contains("nothing to remove"))
        }
    }

    @Test func verifyDetectsARuleDeletedByHand() throws {
        try withTopology { t in
            #expect(t.capture(["apply", "-o", "3306"]).succeeded)
            #expect(t.capture(["verify", "-o", "3306"]).succeeded)
            let listing = t.run(t.app, ["nft", "-a", "list", "chain", "inet", "interpose", "outbound"]).stdout
            let line = try #require(listing.split(separator: "\n").first { $0.contains("excluded outbound ports") })
            let handle = try #require(line.components(separatedBy: "# handle ").last?.trimmingCharacters(in: .whitespaces))
            try t.must(["ip", "netns", "exec", t.app, "nft", "delete", "rule", "inet", "interpose", "outbound", "handle", handle])
            let v = t.capture(["verify", "-o", "3306"])
            #expect(v.status == 1)
            #expect(v.stdout.contains("- tcp dport @outbound_skip_ports counter return comment \"excluded outbound ports\""), "\(v.stdout)")
            // Verify also notices options that differ from what is installed.
            #expect(t.capture(["verify", "-o", "3307"]).status == 1)
        }
    }

    @Test func aFailedApplyLeavesThePreviousRulesetInPlace() throws {
        try withTopology { t in
            #expect(t.capture(["apply", "-o", "3306"]).succeeded)
            // A mangle OUTPUT chain iptables-nft cannot use makes the queue step fail after nft succeeded.
            try t.must(["ip", "netns", "exec", t.app, "nft", "add table ip mangle"])
            try t.must(["ip", "netns", "exec", t.app, "nft", "add chain ip mangle OUTPUT { type filter hook output priority 10 ; }"])
            let withForeignChain = t.snapshot(t.app)
            let r = t.capture(["apply", "-o", "3306,9999", "--queue", "1"])
            #expect(!r.succeeded)
            #expect(r.stderr.contains("previous ruleset was put back"), "\(r.stderr)")
            expectSameSnapshot(t.snapshot(t.app), withForeignChain, "a failed apply changed the namespace")
            #expect(t.capture(["verify", "-o", "3306"]).succeeded)
        }
    }

    @Test func hostModeKeepsSSHReachable() throws {
        try withTopology { t in
            // An ssh-like listener: netcheck under the name sshd, found by `ss -ltnp`.
            let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ipx-sshd-\(t.id)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let sshd = dir.appendingPathComponent("sshd").path
            try FileManager.default.copyItem(atPath: Binaries.netcheck, toPath: sshd)
            try t.listen(in: t.app, name: "sshd", ports: [2222], executable: sshd)
            try t.listen(in: t.app, name: "proxy", ports: [15001, 15006])
            let r = t.capture(["apply", "--host-mode"])
            #expect(r.succeeded, "\(r.stderr)")
            #expect(r.stdout.contains("ssh ports 2222"), "\(r.stdout)")
            #expect(t.dial(from: t.peer, "\(t.appV4):2222").answer?.name == "sshd")
            #expect(t.dial(from: t.peer, "[\(t.appV6)]:2222").answer?.name == "sshd")
            #expect(t.dial(from: t.peer, "\(t.appV4):8080").answer?.name == "proxy")
        }
    }

    @Test func rollbackRemovesUnconfirmedRulesAndConfirmKeepsThem() throws {
        try withTopology { t in
            let before = t.snapshot(t.app)
            let r = t.capture(["apply", "--host-mode", "--ssh-ports", "22", "--rollback-after", "2s"])
            #expect(r.succeeded, "\(r.stderr)")
            #expect(r.stdout.contains("rollback armed"))
            #expect(t.run(t.app, ["nft", "list", "table", "inet", "interpose"]).succeeded)
            var gone = false
            for _ in 0..<60 where !gone {
                usleep(100_000)
                gone = t.snapshot(t.app) == before
            }
            if !gone { expectSameSnapshot(t.snapshot(t.app), before, "the rules were not rolled back") }

            #expect(t.capture(["apply", "--host-mode", "--ssh-ports", "22", "--rollback-after", "2s"]).succeeded)
            let confirm = t.capture(["confirm"])
            #expect(confirm.succeeded, "\(confirm.stderr)")
            usleep(3_000_000)
            #expect(t.run(t.app, ["nft", "list", "table", "inet", "interpose"]).succeeded, "confirmed rules must stay")
            #expect(t.capture(["confirm"]).status == 1, "nothing left to confirm")
        }
    }
}

@Suite("Capture on a host without IPv6", .serialized, .enabled(if: Privileged.enabled, "needs root, ip, nft, iptables-nft"))
struct CaptureWithoutIPv6Tests {
    @Test func ipv6DisabledNamespaceGetsAnIPv4OnlyRuleset() throws {
        let t = try Topology()
        defer { t.destroy() }
        try t.must(["ip", "netns", "exec", t.app, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
        let r = t.capture(["apply", "-x", "10.9.0.0/16,fd00:9::/32", "-m", "tproxy", "--queue", "1"])
        #expect(r.succeeded, "\(r.stderr)")
        #expect(r.stdout.contains("host has no IPv6"))
        let table = t.run(t.app, ["nft", "list", "table", "inet", "interpose"]).stdout
        #expect(!table.contains("ip6 "))
        #expect(!t.run(t.app, ["nft", "list", "table", "ip6", "mangle"]).succeeded, "no ip6tables queue rules")
        #expect(t.capture(["verify", "-x", "10.9.0.0/16,fd00:9::/32", "-m", "tproxy", "--queue", "1"]).succeeded)
        try t.listen(in: t.app, name: "proxy", ports: [15001], transparent: false)
        try t.listen(in: t.peer, name: "server", ports: [8080])
        // Queued, no engine: fail-open sends the flow straight on.
        #expect(t.dial(from: t.app, uid: 1000, "\(t.peerV4):8080").answer?.name == "server")
        #expect(t.capture(["apply", "-x", "10.9.0.0/16,fd00:9::/32", "-m", "tproxy"]).succeeded)
        #expect(t.dial(from: t.app, uid: 1000, "\(t.peerV4):8080").answer?.original == "\(t.peerV4):8080")
        #expect(t.capture(["cleanup"]).succeeded)
        #expect(t.run(t.app, ["nft", "list", "ruleset"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    }
}
