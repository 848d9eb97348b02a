import Foundation

/// Reads facts about the host (read-only): IPv6, sshd's listening ports, the network namespace's id.
public struct HostInspector: Sendable {
    public let runner: CommandRunner

    public init(runner: CommandRunner) { self.runner = runner }

    /// IPv6 is usable when the kernel has it and it is not disabled for the namespace.
    public func ipv6Enabled() -> Bool {
        guard FileManager.default.fileExists(atPath: "/proc/net/if_inet6") else { return false }
        let disabled = (try? String(contentsOfFile: "/proc/sys/net/ipv6/conf/all/disable_ipv6", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return disabled != "1"
    }

    /// TCP ports that a process named `sshd` listens on, read from `ss -Hltnp`. Empty when none or unknown.
    public func sshdPorts() -> [UInt16] {
        let r = runner.run(["ss", "-Hltnp"])
        guard r.succeeded else { return [] }
        var ports: Set<UInt16> = []
        for line in r.stdout.split(separator: "\n") where line.contains("\"sshd\"") {
            let cols = line.split(separator: " ", omittingEmptySubsequences: true)
            // State Recv-Q Send-Q Local:Port Peer:Port Process
            guard cols.count >= 4, let colon = cols[3].lastIndex(of: ":"),
                  let port = UInt16(cols[3][cols[3].index(after: colon)...]) else { continue }
            ports.insert(port)
        }
        return ports.sorted()
    }

    /// The inode of this process's network namespace, to name per-namespace state files.
    public func networkNamespaceID() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net"))?
            .filter { $0.isNumber } ?? "unknown"
    }
}
