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

/// The real runner: Foundation's Process with stdin/stdout/stderr pipes.
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
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = Array(argv.dropFirst())
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input == nil ? FileHandle.nullDevice : inp
        do { try p.run() } catch {
            return CommandResult(status: 126, stderr: "\(first): \(error)")
        }
        if let input {
            inp.fileHandleForWriting.write(Data(input.utf8))
            try? inp.fileHandleForWriting.close()
        }
        // Read both pipes before waiting so a large output cannot block the child.
        let group = DispatchGroup()
        nonisolated(unsafe) var errData = Data()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return CommandResult(status: p.terminationStatus,
                             stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
    }
}
