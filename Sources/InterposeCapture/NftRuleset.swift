/// A small model of the one nft table Interpose owns, rendered to `nft -f` text.
/// Every rule carries a counter and a comment, so `nft list table` explains itself.
public struct NftTable: Equatable, Sendable {
    public static let family = "inet"
    public static let name = "interpose"

    public var comment: String
    public var sets: [NftSet] = []
    public var chains: [NftChain] = []

    /// One atomic transaction: create-if-missing, delete, define. Applying it twice gives the same table.
    public var script: String {
        var out = "table \(Self.family) \(Self.name)\ndelete table \(Self.family) \(Self.name)\n"
        out += definition
        return out
    }

    public var definition: String {
        var out = "table \(Self.family) \(Self.name) {\n\tcomment \"\(comment)\"\n"
        for s in sets { out += s.text }
        for c in chains { out += c.text }
        out += "}\n"
        return out
    }

    public func chain(_ name: String) -> NftChain? { chains.first { $0.name == name } }
}

public struct NftSet: Equatable, Sendable {
    public var name: String
    public var type: String
    public var elements: [String]

    var text: String {
        "\tset \(name) {\n\t\ttype \(type)\n\t\tflags interval\n\t\telements = { \(elements.joined(separator: ", ")) }\n\t}\n"
    }
}

public struct NftChain: Equatable, Sendable {
    public struct Hook: Equatable, Sendable {
        public var type: String
        public var hook: String
        public var priority: Int
    }

    public var name: String
    public var hook: Hook?
    public var rules: [NftRule] = []

    var text: String {
        var out = "\n\tchain \(name) {\n"
        if let h = hook { out += "\t\ttype \(h.type) hook \(h.hook) priority \(h.priority); policy accept;\n" }
        for r in rules { out += "\t\t\(r.text)\n" }
        out += "\t}\n"
        return out
    }
}

public struct NftRule: Equatable, Sendable {
    public var match: String
    public var action: String
    public var comment: String

    public init(_ match: String, _ action: String, _ comment: String) {
        self.match = match
        self.action = action
        self.comment = comment
    }

    public var text: String {
        let m = match.isEmpty ? "" : match + " "
        return "\(m)counter \(action) comment \"\(comment)\""
    }
}
