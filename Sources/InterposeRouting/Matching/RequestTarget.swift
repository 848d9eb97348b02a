/// The request target as routing and policy see it, normalized the way Istio's `MERGE_SLASHES` path
/// normalization does (Envoy `normalize_path` + `merge_slashes`): the absolute form reduced to its path,
/// `.` and `..` segments removed (RFC 3986 5.2.4, `%2e` counted as a dot), runs of `/` merged. Without
/// it, `/./admin/x`, `/api/../admin/x` or `//admin/x` would slip past a rule on `/admin/*`.
public func normalizedRequestTarget(_ uri: String) -> String {
    if isNormalOriginForm(uri) { return uri }
    var target = Substring(uri)
    // Absolute form (`GET http://host/path`): only the path and query count.
    if target.hasPrefix("http://") || target.hasPrefix("https://") {
        let afterScheme = target[target.index(target.firstIndex(of: ":")!, offsetBy: 3)...]
        target = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }).map { afterScheme[$0...] } ?? "/"
        if target.hasPrefix("?") { target = "/" + target }
    }
    let queryStart = target.firstIndex(of: "?") ?? target.endIndex
    let path = target[..<queryStart]
    // Fast path: nothing to do for the usual request.
    if !path.contains("//") && !path.contains("/.") && !path.contains("%2e") && !path.contains("%2E") && target.count == uri.count {
        return uri
    }
    var out: [Substring] = []
    for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
        let s = segment.replacingOccurrencesOfDotEscapes()
        if s == "." { continue }
        if s == ".." { if !out.isEmpty { out.removeLast() }; continue }
        out.append(segment)
    }
    let trailing = path.hasSuffix("/") || path.hasSuffix("/.") || path.hasSuffix("/..")
    var normalized = "/" + out.joined(separator: "/")
    if trailing && !out.isEmpty { normalized += "/" }
    return normalized + target[queryStart...]
}

/// The usual request target, checked in one pass over its bytes: origin form (`/...`) with no `//`,
/// no `/.` and no `%2e` in the path. Such a target is already normal.
@inline(__always)
func isNormalOriginForm(_ uri: String) -> Bool {
    var uri = uri
    return uri.withUTF8 { bytes -> Bool in
        guard bytes.first == UInt8(ascii: "/") else { return false }
        var previous: UInt8 = 0
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b == UInt8(ascii: "?") { return true }
            if previous == UInt8(ascii: "/") && (b == UInt8(ascii: "/") || b == UInt8(ascii: ".")) { return false }
            if b == UInt8(ascii: "%") && i + 2 < n && bytes[i + 1] == UInt8(ascii: "2") && bytes[i + 2] | 0x20 == UInt8(ascii: "e") { return false }
            previous = b
            i += 1
        }
        return true
    }
}

extension Substring {
    /// `%2e`/`%2E` read as `.`, only to recognize dot segments.
    fileprivate func replacingOccurrencesOfDotEscapes() -> String {
        guard contains("%") else { return String(self) }
        var s = String(self)
        for escape in ["%2e", "%2E"] { s = s.split(separator: escape, omittingEmptySubsequences: false).joined(separator: ".") }
        return s
    }
}
