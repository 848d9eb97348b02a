import Foundation
import InterposeCapture
import InterposeCaptureRuntime
import InterposeKernel
import Testing

/// Golden rulesets for named option combinations. Regenerate with INTERPOSE_REGENERATE_GOLDEN=1.
/// Each file is what `render` prints: a valid `nft -f` file, so each is also checked with `nft -c -f`.
@Suite("Golden rulesets")
struct GoldenTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let args: [String]
        var facts = HostFacts()
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "defaults", args: []),
        Case(name: "istio-init-pod-spec", args: ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]),
        Case(name: "tproxy", args: ["-m", "TPROXY"]),
        Case(name: "tproxy-custom-mark-table", args: ["-m", "tproxy", "-t", "1338", "-r", "134", "-b", "8080"]),
        Case(name: "inbound-port-list", args: ["-b", "8080,9090-9092"]),
        Case(name: "inbound-off", args: ["-b", ""]),
        Case(name: "exclude-inbound-ports", args: ["-d", "22,8081"]),
        Case(name: "outbound-cidrs-include", args: ["-i", "10.96.0.0/12,fd00:10:96::/112"]),
        Case(name: "outbound-cidrs-include-v4-only", args: ["-i", "10.96.0.0/12"]),
        Case(name: "outbound-off", args: ["-i", ""]),
        Case(name: "exclude-outbound-cidrs", args: ["-x", "10.0.0.0/8,192.168.1.1,fd00::/8,2001:db8::1"]),
        Case(name: "outbound-ports-include", args: ["-q", "80,443"]),
        Case(name: "exclude-outbound-ports", args: ["-o", "3306,5432-5440"]),
        Case(name: "exclude-interfaces", args: ["-c", "eth1,cni0"]),
        Case(name: "several-proxy-ids", args: ["-u", "1337,1338", "-g", "1337,1000"]),
        Case(name: "custom-ports", args: ["-p", "16001", "-z", "16006", "--dns-port", "16053", "--capture-dns", "--proxy-ports", "16000,16090"]),
        Case(name: "capture-dns", args: ["--capture-dns"]),
        Case(name: "drop-invalid", args: ["--drop-invalid"]),
        Case(name: "queue-xtables-fallback", args: ["--queue", "3"]),
        Case(name: "queue-range-fail-closed", args: ["--queue", "0-3", "--no-queue-bypass"]),
        Case(name: "queue-native", args: ["--queue", "0-3"], facts: HostFacts(nativeNftQueue: true)),
        Case(name: "queue-outbound-only", args: ["--queue", "1", "-b", ""]),
        Case(name: "no-ipv6-host", args: ["-x", "10.0.0.0/8,fd00::/8", "-m", "tproxy", "--queue", "1"], facts: HostFacts(ipv6: false)),
        Case(name: "host-mode-sshd-found", args: ["--host-mode"], facts: HostFacts(sshPorts: [PortRange(22), PortRange(2222)])),
        Case(name: "host-mode-ssh-ports-given", args: ["--host-mode", "--ssh-ports", "2200", "--rollback-after", "2m"]),
        Case(name: "everything", args: ["-m", "tproxy", "--queue", "0-1", "--capture-dns", "--drop-invalid", "-x", "10.0.0.0/8,fd00::/8",
                                         "-o", "9090", "-d", "8081", "-c", "eth9", "-q", "80,443,8000-8100", "--host-mode", "--ssh-ports", "22"]),
    ]

    static var goldenDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
    }

    static func render(_ c: Case) throws -> String {
        let options = try CaptureArguments.parse(c.args).validOptions
        let base = CapturePlanner(options: options, facts: c.facts).plan()
        let owned = OwnedResources.expected(for: base, previous: nil, loopbackV6Present: false, xtablesMangleExists: [:])
        let plan = CapturePlanner(options: options, facts: c.facts, owned: owned).plan()
        return PlanText.render(plan, options: options, facts: c.facts)
    }

    @Test func atLeastTwentyCombinations() {
        #expect(Self.cases.count >= 20)
        #expect(Set(Self.cases.map(\.name)).count == Self.cases.count)
    }

    @Test(arguments: cases)
    func matchesGoldenFile(_ c: Case) throws {
        let text = try Self.render(c)
        let url = Self.goldenDirectory.appendingPathComponent("\(c.name).nft")
        if ProcessInfo.processInfo.environment["INTERPOSE_REGENERATE_GOLDEN"] == "1" {
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        let golden = try String(contentsOf: url, encoding: .utf8)
        #expect(text == golden, "\(c.name) differs from its golden file; diff:\n\(LineDiff.diff(expected: golden.split(separator: "\n").map(String.init), actual: text.split(separator: "\n").map(String.init)).joined(separator: "\n"))")
    }

    /// `nft -c` asks the kernel to check the whole file without committing it. It needs nft and
    /// CAP_NET_ADMIN; elsewhere the test says why it did not run.
    @Test(arguments: cases)
    func goldenFileIsAcceptedByNft(_ c: Case) throws {
        let runner = ProcessCommandRunner()
        guard runner.which("nft") != nil, Privileges.canAdministerNetwork else {
            print("skipped nft -c for \(c.name): needs nft and root/CAP_NET_ADMIN")
            return
        }
        let url = Self.goldenDirectory.appendingPathComponent("\(c.name).nft")
        let r = runner.run(["nft", "-c", "-f", url.path])
        if r.succeeded { return }
        // A kernel without the native queue expression refuses only the queue statement, after parsing it.
        let nativeQueueMissing = c.facts.nativeNftQueue && r.stderr.split(separator: "\n").filter { $0.contains("Error:") }
            .allSatisfy { $0.contains("Could not process rule: No such file or directory") }
        #expect(nativeQueueMissing && r.stderr.contains("queue num"), "nft -c -f \(url.lastPathComponent) failed:\n\(r.stderr)")
    }
}
