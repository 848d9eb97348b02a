import Foundation
import InterposeKernel
import Testing

/// Whether the privileged tests can run here, and why not. In CI (which runs as root) they always run:
/// if CI is set and they cannot, they fail loudly instead of being skipped.
enum Privileged {
    static let runner = ProcessCommandRunner()
    static var missing: String? {
        if geteuid() != 0 { return "needs root (network namespaces, nftables)" }
        for tool in ["ip", "nft", "iptables-nft", "setpriv", "unshare"] where runner.which(tool) == nil {
            return "needs \(tool) on PATH"
        }
        return nil
    }
    static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] != nil }
    /// Root (as CI runs) or CI set: they run, and a missing tool fails them instead of skipping them.
    static var enabled: Bool {
        if let why = missing {
            if inCI || geteuid() == 0 { return true }
            print("skipping privileged namespace tests: \(why)")
            return false
        }
        return true
    }
}

/// The built executables, copied to a world-readable folder so tests can run them as other uids.
enum Binaries {
    static let directory: URL = {
        if let dir = ProcessInfo.processInfo.environment["INTERPOSE_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        // swift test runs the test bundle from the build products folder, beside the executables.
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("interpose-init").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    static let publicCopy: URL = {
        let tmp = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("interpose-it-\(getpid())")
        try? FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        chmod(tmp.path, 0o755)
        for name in ["interpose-init", "interpose-netcheck", "interpose"] {
            let dst = tmp.appendingPathComponent(name)
            try? FileManager.default.removeItem(at: dst)
            try? FileManager.default.copyItem(at: directory.appendingPathComponent(name), to: dst)
            chmod(dst.path, 0o755)
        }
        return tmp
    }()

    static var initTool: String { publicCopy.appendingPathComponent("interpose-init").path }
    static var netcheck: String { publicCopy.appendingPathComponent("interpose-netcheck").path }
    static var proxy: String { publicCopy.appendingPathComponent("interpose").path }
}

/// One answer line of interpose-netcheck: `name=... local=... peer=... original=...`.
struct Answer {
    let fields: [String: String]
    init(_ line: String) {
        var f: [String: String] = [:]
        for part in line.split(separator: " ") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { f[String(kv[0])] = String(kv[1]) }
        }
        fields = f
    }
    var name: String? { fields["name"] }
    var original: String? { fields["original"] }
    var peer: String? { fields["peer"] }
    var peerHost: String? {
        guard let p = peer else { return nil }
        if p.hasPrefix("["), let close = p.firstIndex(of: "]") { return String(p[p.index(after: p.startIndex)..<close]) }
        return p.split(separator: ":").first.map(String.init)
    }
}

/// Two network namespaces joined by a veth pair: `app` (where capture is applied) and `peer`.
/// Addresses are private to these namespaces; nothing leaves the machine. `destroy()` removes
/// everything (processes, namespaces, the veth pair with them) and is safe to call twice.
final class Topology: @unchecked Sendable {
    let id: String
    let app: String
    let peer: String
    let appV4 = "10.233.1.1", peerV4 = "10.233.1.2", peerV4Extra = "10.233.1.3"
    let appV6 = "fd00:233:1::1", peerV6 = "fd00:233:1::2", peerV6Extra = "fd00:233:1::3"
    private var processes: [pid_t] = []
    /// More namespaces a test made beside app and peer (removed by `destroy()`).
    var extraNamespaces: [String] = []
    private let scratch: URL
    let runner = ProcessCommandRunner()

    init() throws {
        id = String(UInt32.random(in: 0..<UInt32.max), radix: 16)
        app = "ipx-a-\(id)"
        peer = "ipx-p-\(id)"
        scratch = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ipx-\(id)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        do {
            try must(["ip", "netns", "add", app])
            try must(["ip", "netns", "add", peer])
            // No duplicate address detection: addresses are usable at once and never change state mid-test.
            for ns in [app, peer] {
                try must(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"])
            }
            try must(["ip", "link", "add", "va\(id)", "type", "veth", "peer", "name", "vp\(id)"])
            try must(["ip", "link", "set", "va\(id)", "netns", app, "name", "eth0"])
            try must(["ip", "link", "set", "vp\(id)", "netns", peer, "name", "eth0"])
            try must(["ip", "-n", app, "addr", "add", "\(appV4)/24", "dev", "eth0"])
            try must(["ip", "-n", peer, "addr", "add", "\(peerV4)/24", "dev", "eth0"])
            try must(["ip", "-n", peer, "addr", "add", "\(peerV4Extra)/24", "dev", "eth0"])
            try must(["ip", "-n", app, "addr", "add", "\(appV6)/64", "dev", "eth0", "nodad"])
            try must(["ip", "-n", peer, "addr", "add", "\(peerV6)/64", "dev", "eth0", "nodad"])
            try must(["ip", "-n", peer, "addr", "add", "\(peerV6Extra)/64", "dev", "eth0", "nodad"])
            for ns in [app, peer] {
                try must(["ip", "-n", ns, "link", "set", "lo", "up"])
                try must(["ip", "-n", ns, "link", "set", "eth0", "up"])
            }
        } catch {
            destroy()
            throw error
        }
    }

    func destroy() {
        for pid in processes { kill(pid, SIGTERM) }
        for pid in processes { _ = Subprocess.wait(pid) }
        processes.removeAll()
        _ = runner.run(["ip", "netns", "del", app])
        _ = runner.run(["ip", "netns", "del", peer])
        for ns in extraNamespaces { _ = runner.run(["ip", "netns", "del", ns]) }
        _ = runner.run(["ip", "link", "del", "va\(id)"])
        try? FileManager.default.removeItem(at: scratch)
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    @discardableResult
    func must(_ argv: [String]) throws -> CommandResult {
        let r = runner.run(argv)
        guard r.succeeded else { throw Failure(description: "\(argv.joined(separator: " ")) failed (\(r.status)): \(r.message)") }
        return r
    }

    /// Runs a command inside a namespace, optionally as another uid/gid (no supplementary groups).
    func run(_ ns: String, _ argv: [String], uid: UInt32? = nil, gid: UInt32? = nil) -> CommandResult {
        var cmd = ["ip", "netns", "exec", ns]
        if let uid { cmd += ["setpriv", "--reuid", "\(uid)", "--regid", "\(gid ?? uid)", "--clear-groups"] }
        return runner.run(cmd + argv)
    }

    /// interpose-init in the app namespace.
    @discardableResult
    func capture(_ args: [String], ns: String? = nil) -> CommandResult {
        run(ns ?? app, [Binaries.initTool] + args)
    }

    /// Starts a netcheck listener in a namespace and waits until it is listening.
    func listen(in ns: String, name: String, ports: [UInt16], udpPorts: [UInt16] = [], transparent: Bool = false, executable: String? = nil) throws {
        let ready = scratch.appendingPathComponent("ready-\(name)-\(processes.count)")
        var args = ["netns", "exec", ns, executable ?? Binaries.netcheck, "listen", "--name", name, "--seconds", "120", "--ready-file", ready.path]
        for p in ports { args += ["--port", "\(p)"] }
        for p in udpPorts { args += ["--udp-port", "\(p)"] }
        if transparent { args.append("--transparent") }
        let ip = runner.which("ip")!
        let pid = try Subprocess.spawn(path: ip, argv: ["ip"] + args, stdin: Subprocess.devNull, stdout: Subprocess.devNull, stderr: Subprocess.devNull)
        processes.append(pid)
        for _ in 0..<100 {
            if FileManager.default.fileExists(atPath: ready.path) { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { processes.removeAll { $0 == pid }; break }
            usleep(50_000)
        }
        throw Failure(description: "listener \(name) on \(ports) in \(ns) did not start")
    }

    /// Starts any long-running command in a namespace (optionally as a uid), stopped by `destroy()`.
    /// Its standard error and output go to `logFile` when given.
    @discardableResult
    func background(_ ns: String, _ argv: [String], uid: UInt32? = nil, logFile: String? = nil) throws -> pid_t {
        var args = ["ip", "netns", "exec", ns]
        if let uid { args += ["setpriv", "--reuid", "\(uid)", "--regid", "\(uid)", "--clear-groups"] }
        args += argv
        let err = logFile.map { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o644) } ?? Subprocess.devNull
        defer { if logFile != nil { close(err) } }
        let pid = try Subprocess.spawn(path: runner.which("ip")!, argv: args, stdin: Subprocess.devNull, stdout: logFile == nil ? Subprocess.devNull : err, stderr: err)
        processes.append(pid)
        return pid
    }

    func stop(_ pid: pid_t, signal: Int32 = SIGTERM) -> Int32 {
        kill(pid, signal)
        let status = Subprocess.wait(pid)
        processes.removeAll { $0 == pid }
        return status
    }

    var scratchPath: String { scratch.path }

    /// Dials from a namespace as a uid; returns the answer, or nil with the failure's exit status.
    func dial(from ns: String, uid: UInt32? = nil, gid: UInt32? = nil, _ address: String, source: String? = nil, udp: Bool = false, timeoutMs: Int = 2000) -> (answer: Answer?, status: Int32, error: String) {
        var argv = [Binaries.netcheck, "dial", address, "--timeout-ms", "\(timeoutMs)"]
        if let source { argv += ["--source", source] }
        if udp { argv.append("--udp") }
        let r = run(ns, argv, uid: uid, gid: gid)
        return (r.succeeded ? Answer(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) : nil, r.status, r.stderr)
    }

    /// What a namespace's network configuration looks like, for before/after comparisons.
    /// Tables are listed one by one in name order: a table put back after a failure is the same table,
    /// even if nft now lists it after another one (the hook priorities, not the order, decide).
    func snapshot(_ ns: String) -> String {
        let tables = run(ns, ["nft", "list", "tables"]).stdout.split(separator: "\n").map(String.init).sorted()
        let ruleset = tables.map { line -> String in
            let words = line.split(separator: " ").map(String.init)
            return run(ns, ["nft", "-s", "list"] + words).stdout
        }.joined()
        return "$ nft -s list ruleset (tables sorted)\n" + ruleset + "\n" + [["ip", "-4", "rule"], ["ip", "-6", "rule"], ["ip", "addr"],
         ["ip", "-4", "route", "show", "table", "all"], ["ip", "-6", "route", "show", "table", "all"]]
            .map { "$ \($0.joined(separator: " "))\n" + run(ns, $0).stdout }.joined(separator: "\n")
    }
}

import InterposeCapture

/// Expects two snapshots to be equal, showing only the lines that differ when they are not.
func expectSameSnapshot(_ actual: String, _ expected: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let d = LineDiff.diff(expected: expected.split(separator: "\n").map(String.init), actual: actual.split(separator: "\n").map(String.init))
    #expect(d.isEmpty, "\(what) (- before, + now):\n\(d.joined(separator: "\n"))", sourceLocation: sourceLocation)
}

extension Topology {
    /// The proxy's Prometheus text from :15090 inside a namespace (the app's by default).
    func metrics(_ ns: String? = nil) -> String {
        run(ns ?? app, ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/15090; printf 'GET /stats/prometheus HTTP/1.1\\r\\nhost: x\\r\\nconnection: close\\r\\n\\r\\n' >&3; timeout 2 cat <&3"]).stdout
    }
}

/// The sum of a metric's samples whose line contains every fragment (0 when none).
func metricValue(_ text: String, _ name: String, _ fragments: String...) -> Double {
    text.split(separator: "\n").filter { $0.hasPrefix(name) && fragments.allSatisfy($0.contains) }
        .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
}
