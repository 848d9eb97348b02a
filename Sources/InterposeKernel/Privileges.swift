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
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces)
            guard let v = UInt64(hex, radix: 16) else { return false }
            return v & (1 << UInt64(bit)) != 0
        }
        return false
    }

    public static var canAdministerNetwork: Bool { hasEffective(capability: capNetAdmin) }
}
