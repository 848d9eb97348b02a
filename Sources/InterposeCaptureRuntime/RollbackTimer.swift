import Foundation
import InterposeKernel

/// Host mode's safety net: after `apply --rollback-after D`, a detached timer process removes the rules
/// again unless `interpose-init confirm` runs within D. One marker file per network namespace holds the
/// timer's pid; confirm deletes it and stops the timer.
public struct RollbackTimer: Sendable {
    public static let directory = "/run/interpose"
    let runner: CommandRunner

    public init(runner: CommandRunner = ProcessCommandRunner()) { self.runner = runner }

    public var markerPath: String {
        "\(Self.directory)/rollback-netns-\(HostInspector(runner: runner).networkNamespaceID())"
    }

    /// Starts the detached timer (`interpose-init rollback-timer`), passing on the capture arguments.
    public func arm(seconds: Int, captureArguments: [String]) throws {
        try FileManager.default.createDirectory(atPath: Self.directory, withIntermediateDirectories: true)
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let argv = [exe, "rollback-timer", "--after-seconds", "\(seconds)", "--marker", markerPath] + captureArguments
        let pid = try Subprocess.spawn(path: exe, argv: argv, stdin: Subprocess.devNull, stdout: Subprocess.devNull, stderr: Subprocess.devNull)
        try "\(pid)\n".write(toFile: markerPath, atomically: true, encoding: .utf8)
    }

    /// Cancels a pending rollback. Returns false when none was pending in this namespace.
    public func confirm() -> Bool {
        guard let text = try? String(contentsOfFile: markerPath, encoding: .utf8) else { return false }
        try? FileManager.default.removeItem(atPath: markerPath)
        if let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1 { kill(pid, SIGTERM) }
        return true
    }

    /// The timer's body: wait, then clean up if nobody confirmed.
    public func waitThenRollBack(seconds: Int, marker: String, cleanup: () throws -> Void) rethrows {
        // Its own session: closing the terminal that ran apply must not stop the timer.
        _ = setsid()
        Thread.sleep(forTimeInterval: TimeInterval(seconds))
        // Still armed, and by this timer (a later apply re-arms with a timer of its own).
        let armedBy = (try? String(contentsOfFile: marker, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        guard armedBy == "\(getpid())" else { return }
        try? FileManager.default.removeItem(atPath: marker)
        try cleanup()
    }
}
