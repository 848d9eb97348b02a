import Foundation
import InterposeKernel
import Testing

/// The command line as a user meets it: errors name the option and the expected form, and nothing changes.
@Suite("interpose-init command line", .serialized, .enabled(if: Privileged.enabled, "needs root, ip, nft, iptables-nft"))
struct InitCommandLineTests {
    let runner = ProcessCommandRunner()

    @Test func badOptionsAreRefusedBeforeAnythingChanges() throws {
        let t = try Topology()
        defer { t.destroy() }
        let before = t.snapshot(t.app)
        let r = t.capture(["apply", "-p", "15001x", "--exclude-outbound-cidrs", "10.0.0.0/40", "-b", "80,99999"])
        #expect(r.status == 64)
        #expect(r.stderr.contains("--outbound-port/-p: '15001x' is not a port; expected a port number 1-65535"))
        #expect(r.stderr.contains("--exclude-outbound-cidrs/-x: '10.0.0.0/40' is not a CIDR"))
        #expect(r.stderr.contains("--inbound-ports/-b: '99999' is not a port or port range"))
        #expect(t.snapshot(t.app) == before)
    }

    @Test func notRootIsToldWhatIsNeeded() throws {
        let t = try Topology()
        defer { t.destroy() }
        let r = t.run(t.app, [Binaries.initTool, "apply"], uid: 1000)
        #expect(r.status == 4)
        #expect(r.stderr.contains("needs root or CAP_NET_ADMIN"))
        #expect(!t.run(t.app, ["nft", "list", "table", "inet", "interpose"]).succeeded)
    }

    @Test func missingNftNamesTheDebianPackage() throws {
        let r = runner.run(["env", "PATH=/nonexistent", Binaries.initTool, "apply"])
        #expect(r.status == 3)
        #expect(r.stderr.contains("install the Debian package 'nftables'"), "\(r.stderr)")
    }

    @Test func probeReportsTheQueueFallback() {
        let r = runner.run([Binaries.initTool, "probe"])
        #expect(r.succeeded)
        for key in ["nft", "nat (redirect)", "TPROXY", "native nft queue", "xtables NFQUEUE", "IPv6"] {
            #expect(r.stdout.contains(key))
        }
        let json = runner.run([Binaries.initTool, "probe", "--json"])
        #expect(json.stdout.contains("\"xtables_nfqueue\""))
        // This machine kind has no native nft queue: render says which path it takes.
        if r.stdout.contains("native nft queue  no") {
            let render = runner.run([Binaries.initTool, "render", "--queue", "1"])
            #expect(render.stdout.contains("xtables NFQUEUE fallback"))
            #expect(render.stdout.contains("iptables-nft -w -t mangle -A OUTPUT"))
        }
    }

    @Test func renderChangesNothingAndIsAValidNftFile() throws {
        let t = try Topology()
        defer { t.destroy() }
        let before = t.snapshot(t.app)
        let r = t.capture(["render", "-m", "tproxy", "--queue", "1", "--capture-dns"])
        #expect(r.succeeded)
        #expect(t.snapshot(t.app) == before)
        let file = NSTemporaryDirectory() + "ipx-render-\(t.id).nft"
        try r.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(t.run(t.app, ["nft", "-c", "-f", file]).succeeded)
    }

    @Test func helpNamesEveryIstioAlias() {
        let r = runner.run([Binaries.initTool, "apply", "--help"])
        for flag in ["-p", "-z", "-u", "-g", "-m", "-b", "-d", "-i", "-x", "-q", "-o", "-c", "--capture-dns", "--drop-invalid", "--queue", "--host-mode", "--rollback-after"] {
            #expect(r.stdout.contains(flag), "help lacks \(flag)")
        }
    }
}
