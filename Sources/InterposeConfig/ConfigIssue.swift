/// A problem (error) or a note (warning) about the configuration, located as precisely as we can:
/// file, document number, resource, field path and line.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, warning }
    public var severity: Severity
    public var file: String
    /// 1-based index of the YAML document in the file.
    public var document: Int
    /// `Kind namespace/name`, or empty when the document has no usable identity yet.
    public var resource: String
    /// `spec.http[0].route[1].weight`.
    public var path: String
    public var line: Int?
    public var message: String

    public init(severity: Severity, file: String, document: Int, resource: String, path: String, line: Int?, message: String) {
        self.severity = severity
        self.file = file
        self.document = document
        self.resource = resource
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String {
        var where_ = "\(file)"
        if let line { where_ += ":\(line)" }
        where_ += ": document \(document)"
        if !resource.isEmpty { where_ += " (\(resource))" }
        if !path.isEmpty { where_ += " \(path)" }
        return "\(severity.rawValue): \(where_): \(message)"
    }
}

/// Collects issues while a document is read.
public final class Diagnostics: @unchecked Sendable {
    public private(set) var issues: [ConfigIssue] = []
    var file = ""
    var document = 0
    var resource = ""

    public init() {}

    public var errors: [ConfigIssue] { issues.filter { $0.severity == .error } }
    public var warnings: [ConfigIssue] { issues.filter { $0.severity == .warning } }

    func error(_ path: String, _ message: String, line: Int? = nil) {
        issues.append(ConfigIssue(severity: .error, file: file, document: document, resource: resource, path: path, line: line, message: message))
    }

    func warning(_ path: String, _ message: String, line: Int? = nil) {
        issues.append(ConfigIssue(severity: .warning, file: file, document: document, resource: resource, path: path, line: line, message: message))
    }
}
