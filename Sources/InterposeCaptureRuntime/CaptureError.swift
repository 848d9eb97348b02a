/// A reason `interpose-init` stops before (or while) changing anything, phrased for the person running it.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public let exitCode: Int32

    public init(_ message: String, exitCode: Int32 = 1) {
        self.description = message
        self.exitCode = exitCode
    }

    static func missingTool(_ tool: String, package: String, why: String) -> CaptureError {
        CaptureError("\(tool) not found on PATH (\(why)): install the Debian package '\(package)' (apt-get install \(package))", exitCode: 3)
    }

    static let notPrivileged = CaptureError(
        "changing the network configuration needs root or CAP_NET_ADMIN in the effective set; run as root (in a pod: an init container with the NET_ADMIN capability)",
        exitCode: 4)
}
