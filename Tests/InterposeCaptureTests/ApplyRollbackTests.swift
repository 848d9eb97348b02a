import Foundation
import InterposeCapture
import InterposeCaptureRuntime
import InterposeKernel
import Testing

/// A command runner that answers from a script and records every call: it stands in for a kernel that
/// fails half way through an apply, which a real machine cannot be made to do on demand.
final class ScriptedRunner: CommandRunner, @unchecked Sendable {
    private let lock = NSLock()
    private var _calls: [(argv: [String], input: String?)] = []
    let answer: @Sendable ([String], String?) -> CommandResult

    init(answer: @escaping @Sendable ([String], String?) -> CommandResult) { self.answer = answer }

    var calls: [(argv: [String], input: String?)] { lock.withLock { _calls } }

    func run(_ argv: [String], input: String?) -> CommandResult {
        lock.withLock { _calls.append((argv, input)) }
        return answer(argv, input)
    }

    func which(_ tool: String) -> String? { "/usr/sbin/\(tool)" }
}

@Suite("Apply keeps the previous ruleset when a step fails")
struct ApplyRollbackTests {
    static let previousTable = """
    table inet interpose {
    \tcomment "interpose-init v1"
    \tchain output {
    \t\ttype nat hook output priority -100; policy accept;
    \t}
    }

    """

    func runner(failing failPrefix: [String]) -> ScriptedRunner {
        ScriptedRunner { argv, input in
            if argv.starts(with: ["nft", "-c"]), input?.contains("queue num") == true {
                return CommandResult(status: 1, stderr: "Error: Could not process rule: No such file or directory")
            }
            if argv.starts(with: failPrefix) { return CommandResult(status: 1, stderr: "iptables: simulated kernel refusal") }
            if argv.starts(with: ["nft", "list", "table", "inet", "interpose"]) { return CommandResult(status: 0, stdout: Self.previousTable) }
            if argv.starts(with: ["nft", "list", "table"]) { return CommandResult(status: 1, stderr: "No such file or directory") }
            if argv.starts(with: ["nft", "-c"]) { return CommandResult(status: 0) }
            if argv.contains("-S") { return CommandResult(status: 0, stdout: "-P OUTPUT ACCEPT\n") }
            return CommandResult(status: 0)
        }
    }

    @Test func failedQueueRuleRestoresTheOldTable() throws {
        let fake = runner(failing: ["iptables-nft", "-w", "-t", "mangle", "-A"])
        let runtime = CaptureRuntime(runner: fake, privileged: { true })
        var options = CaptureOptions()
        options.queue = QueueRange(first: 1, last: 1)
        #expect {
            _ = try runtime.apply(options)
        } throws: { error in
            "\(error)".contains("simulated kernel refusal") && "\(error)".contains("previous ruleset was put back")
        }
        let nftLoads = fake.calls.filter { $0.argv == ["nft", "-f", "-"] }
        #expect(nftLoads.count == 2, "the new table, then the old one again")
        #expect(nftLoads.first?.input?.contains("flow_gate_output") == true)
        #expect(nftLoads.last?.input == "table inet interpose\ndelete table inet interpose\n" + Self.previousTable)
        // Nothing after the failed step ran.
        #expect(!fake.calls.contains { $0.argv.first == "ip6tables-nft" && $0.argv.contains("-A") })
        #expect(!fake.calls.contains { $0.argv.contains("addr") && $0.argv.contains("add") })
    }

    @Test func rejectedNftTransactionChangesNothingElse() {
        let fake = runner(failing: ["nft", "-f", "-"])
        let runtime = CaptureRuntime(runner: fake, privileged: { true })
        #expect(throws: CaptureError.self) { _ = try runtime.apply(CaptureOptions()) }
        #expect(!fake.calls.contains { $0.argv.first == "ip" && $0.argv.contains("add") })
        #expect(!fake.calls.contains { $0.argv.first == "iptables-nft" && $0.argv.contains("-A") })
    }

    @Test func unprivilegedApplyStopsBeforeAnyChange() {
        let fake = runner(failing: [])
        let runtime = CaptureRuntime(runner: fake, privileged: { false })
        #expect { _ = try runtime.apply(CaptureOptions()) } throws: { "\($0)".contains("needs root or CAP_NET_ADMIN") }
        #expect(fake.calls.isEmpty)
    }

    @Test func tproxyOnAKernelWithoutItIsRefusedFirst() {
        let fake = ScriptedRunner { argv, input in
            if argv.starts(with: ["nft", "-c"]), input?.contains("tproxy") == true {
                return CommandResult(status: 1, stderr: "Error: Could not process rule: No such file or directory")
            }
            return CommandResult(status: 0)
        }
        let runtime = CaptureRuntime(runner: fake, privileged: { true })
        var options = CaptureOptions()
        options.mode = .tproxy
        #expect { _ = try runtime.apply(options) } throws: { "\($0)".contains("--mode/-m tproxy: this kernel has no TPROXY support") }
        #expect(!fake.calls.contains { $0.argv == ["nft", "-f", "-"] })
    }
}
