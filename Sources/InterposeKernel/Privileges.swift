import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who this process is, as far as changing the network configuration goes.
public enum Privileges {
    public static let capNetAdmin = 12

    public static var isRoot: Bool { geteuid() == 0 }

    /// True when CAP_NET_ADMIN is in the effective set (read from /proc/self/status).
    public static func hasEffective(capability bit: Int) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return isRoot }
        guard let hex = statusField("CapEff", in: status), let v = UInt64(hex, radix: 16) else { return false }
        return v & (1 << UInt64(bit)) != 0
    }

    /// The value of one `Name:` line of /proc/self/status, trimmed.
    static func statusField(_ name: String, in status: String) -> String? {
        let prefix = name + ":"
        for line in status.split(separator: "\n") where line.hasPrefix(prefix) {
            return line.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    public static var canAdministerNetwork: Bool { hasEffective(capability: capNetAdmin) }
}

import CInterposeLinux

extension Privileges {
    public static let capNetRaw = 13

    public struct DropError: Error, CustomStringConvertible {
        public let description: String
    }

    /// How many threads this process has (from /proc/self/status).
    public static var threadCount: Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 1 }
        return statusField("Threads", in: status).flatMap { Int($0) } ?? 1
    }

    /// Root becomes `uid`/`gid` with no supplementary groups, keeping only the named capabilities in
    /// its permitted and effective sets. Capability sets are per thread, so this must happen while
    /// the process has one thread: it refuses otherwise rather than leave other threads privileged.
    public static func drop(toUser uid: UInt32, group gid: UInt32, keepNetAdmin: Bool, keepNetRaw: Bool) throws(DropError) {
        let threads = threadCount
        guard threads == 1 else {
            throw DropError(description: "cannot drop privileges safely: \(threads) threads already exist (capabilities are per thread)")
        }
        var step: UnsafePointer<CChar>?
        if cinterpose_drop_privileges(uid, gid, keepNetAdmin ? 1 : 0, keepNetRaw ? 1 : 0, &step) != 0 {
            let e = errno
            throw DropError(description: "cannot drop privileges to uid \(uid) gid \(gid): \(step.map { String(cString: $0) } ?? "?") failed: \(String(cString: strerror(e)))")
        }
    }
}
