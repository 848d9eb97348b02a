import Foundation

/// What an external command did.
public struct CommandResult: Sendable, Equatable {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public init(status: Int32, stdout: String = "", stderr: String = "") {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    public var succeeded: Bool { status == 0 }
    /// The first lines of stderr (or stdout), for error messages.
    public var message: String {
        let text = stderr.isEmpty ? stdout : stderr
        return text.split(separator: "\n").prefix(6).joined(separator: "\n")
    }
}

/// Runs external commands (nft, iptables-nft, ip, ss). A protocol so that the steps of an apply can be
/// replayed against a runner that fails on purpose, to test the rollback of a half-done apply.
public protocol CommandRunner: Sendable {
    func run(_ argv: [String], input: String?) -> CommandResult
    /// The full path of a tool on PATH, or nil.
    func which(_ tool: String) -> String?
}

extension CommandRunner {
    public func run(_ argv: [String]) -> CommandResult { run(argv, input: nil) }
}

/// The real runner: `Subprocess` (posix_spawn) with pipes for stdin, stdout and stderr.
public struct ProcessCommandRunner: CommandRunner {
    public init() {}

    public func which(_ tool: String) -> String? {
        if tool.contains("/") { return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public func run(_ argv: [String], input: String?) -> CommandResult {
        guard let first = argv.first, let exe = which(first) else {
            return CommandResult(status: 127, stderr: "\(argv.first ?? "?"): command not found")
        }
        do {
            let r = try Subprocess.run(path: exe, argv: argv, input: input)
            return CommandResult(status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self), stderr: String(decoding: r.stderr, as: UTF8.self))
        } catch {
            return CommandResult(status: 126, stderr: "\(first): \(error)")
        }
    }
}
