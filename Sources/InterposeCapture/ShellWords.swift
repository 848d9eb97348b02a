/// Splits and quotes command lines the way `iptables -S` prints them (double quotes around words with spaces).
public enum ShellWords {
    public static func split(_ line: String) -> [String] {
        var words: [String] = []
        var current = ""
        var inQuotes = false
        var hasWord = false
        for c in line {
            if c == "\"" { inQuotes.toggle(); hasWord = true; continue }
            if c == " " && !inQuotes {
                if hasWord { words.append(current); current = ""; hasWord = false }
                continue
            }
            current.append(c)
            hasWord = true
        }
        if hasWord { words.append(current) }
        return words
    }

    static func quoteForListing(_ word: String) -> String {
        word.contains(" ") ? "\"\(word)\"" : word
    }

    /// A command shown to a person: words with spaces quoted with single quotes.
    public static func display(_ argv: [String]) -> String {
        argv.map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }.joined(separator: " ")
    }
}
