import ArgumentParser
import Foundation
import InterposeCapture
import InterposeCaptureRuntime
import InterposeKernel

@main
struct InterposeInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interpose-init",
        abstract: "Install, verify and remove the kernel rules that send a workload's TCP traffic to the Interpose proxy.",
        discussion: """
        Traffic of the proxy's own uid/gid (1337) is never captured. Options take istio-iptables' short flags,
        so this binary can replace istio-init in a pod spec. See docs/capture.md for the rule layout.
        """,
        subcommands: [Apply.self, Cleanup.self, Verify.self, Render.self, Probe.self, Confirm.self, RollbackTimerCommand.self]
    )
}

/// Prints a CaptureError as the user should see it and exits with its code.
func fail(_ error: Error) -> ExitCode {
    if let e = error as? CaptureError {
        FileHandle.standardError.write(Data("interpose-init: \(e.description)\n".utf8))
        return ExitCode(e.exitCode)
    }
    FileHandle.standardError.write(Data("interpose-init: \(error)\n".utf8))
    return .failure
}

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Install the capture rules (atomically; running it again changes nothing).")
    @OptionGroup var capture: CaptureArguments
    @Flag(name: [.customLong("dry-run"), .customShort("n")], help: "Print the ruleset instead of installing it (like render).")
    var dryRun = false

    func run() throws {
        let options = try capture.validOptions
        let runtime = CaptureRuntime()
        if dryRun { print(runtime.render(options), terminator: ""); return }
        if capture.skipRuleApply { print("--skip-rule-apply: nothing applied"); return }
        if capture.cleanupOnly {
            do {
                let removed = try runtime.cleanup(options)
                print(removed.isEmpty ? "nothing to remove" : removed.map { "removed \($0)" }.joined(separator: "\n"))
            } catch { throw fail(error) }
            return
        }
        do {
            let result = try runtime.apply(options)
            for n in result.plan.notes { print("note: \(n)") }
            print(result.changed ? "capture applied" : "capture already in place (no change)")
            if let seconds = options.rollbackAfterSeconds {
                let args = Array(CommandLine.arguments.drop { $0 != "apply" }.dropFirst()).filter { $0 != "--dry-run" }
                try RollbackTimer().arm(seconds: seconds, captureArguments: args)
                print("rollback armed: the rules are removed in \(seconds)s unless 'interpose-init confirm' runs first")
            }
        } catch {
            throw fail(error)
        }
    }
}

struct Cleanup: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove everything apply added; succeeds when there is nothing to remove.")
    @OptionGroup var capture: CaptureArguments

    func run() throws {
        do {
            let removed = try CaptureRuntime().cleanup(try capture.validOptions)
            if removed.isEmpty { print("nothing to remove") }
            for r in removed { print("removed \(r)") }
        } catch let e as ValidationError { throw e } catch { throw fail(error) }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compare the live rules with what the options generate; exit 0 when equal, 1 with a diff otherwise.")
    @OptionGroup var capture: CaptureArguments

    func run() throws {
        do {
            let result = try CaptureRuntime().verify(try capture.validOptions)
            if result.matches { print("verify: the live capture rules match the options"); return }
            print("verify: the live capture rules differ from the options (- expected, missing; + present, not expected):")
            for d in result.differences { print("  \(d)") }
            throw ExitCode(1)
        } catch let e as ExitCode { throw e } catch let e as ValidationError { throw e } catch { throw fail(error) }
    }
}

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the ruleset and commands apply would run; change nothing.")
    @OptionGroup var capture: CaptureArguments

    func run() throws {
        print(CaptureRuntime().render(try capture.validOptions), terminator: "")
    }
}

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Report which kernel features capture can use: nft, nat, TPROXY, native nft queue, xtables NFQUEUE, IPv6.")
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let report = KernelProbe(runner: ProcessCommandRunner()).run()
        print(json ? report.json : report.text, terminator: "")
    }
}

struct Confirm: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Keep the rules: cancel the pending --rollback-after in this network namespace.")

    func run() throws {
        if RollbackTimer().confirm() {
            print("confirmed: the rollback is cancelled and the rules stay")
        } else {
            FileHandle.standardError.write(Data("interpose-init: no rollback is pending in this network namespace\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct RollbackTimerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rollback-timer", abstract: "Internal: the detached timer behind --rollback-after.", shouldDisplay: false)
    @Option var afterSeconds: Int
    @Option var marker: String
    @OptionGroup var capture: CaptureArguments

    func run() throws {
        let options = try capture.validOptions
        try RollbackTimer().waitThenRollBack(seconds: afterSeconds, marker: marker) {
            _ = try CaptureRuntime().cleanup(options)
        }
    }
}
