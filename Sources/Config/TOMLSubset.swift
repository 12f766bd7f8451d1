/// A strict reader for the subset of TOML that warden.toml uses: `[table]` headers, and
/// `key = value` lines whose value is a basic or literal string, an integer, a float or a
/// boolean; `#` comments. Anything else (arrays, inline tables, multi-line strings, dates)
/// is refused with the line it is on, never guessed at.
struct TOMLSubset {
    enum Value: Equatable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case boolean(Bool)

        /// "a string", "an integer", … for error messages.
        var typeName: String {
            switch self {
            case .string: "a string"
            case .integer: "an integer"
            case .float: "a float"
            case .boolean: "a boolean"
            }
        }

        /// The value as runsc takes it on its command line.
        var flagText: String {
            switch self {
            case .string(let text): text
            case .integer(let number): String(number)
            case .float(let number): String(number)
            case .boolean(let flag): flag ? "true" : "false"
            }
        }
    }

    struct Entry: Equatable {
        /// Dotted path: "runsc", "deadlines.kill_grace".
        var key: String
        var value: Value
        var line: Int
    }

    struct ParseError: Error, Equatable {
        var line: Int
        var message: String
    }

    /// Entries in file order. Duplicate keys and tables are errors, as in TOML.
    static func parse(_ text: String) throws(ParseError) -> [Entry] {
        var entries: [Entry] = []
        var seenKeys: [String: Int] = [:]
        var seenTables: Set<String> = []
        var table = ""
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            line = trimmed(line)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") {
                guard !line.hasPrefix("[["), let close = line.firstIndex(of: "]") else {
                    throw ParseError(line: lineNumber, message: "unsupported table header \(line)")
                }
                let name = trimmed(line[line.index(after: line.startIndex)..<close])
                let rest = trimmed(line[line.index(after: close)...])
                guard !rest.isEmpty ? rest.hasPrefix("#") : true else {
                    throw ParseError(line: lineNumber, message: "unexpected text after table header: \(rest)")
                }
                guard isBareKey(name) else {
                    throw ParseError(line: lineNumber, message: "unsupported table name [\(name)]")
                }
                guard seenTables.insert(String(name)).inserted else {
                    throw ParseError(line: lineNumber, message: "table [\(name)] defined twice")
                }
                table = String(name)
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw ParseError(line: lineNumber, message: "expected key = value, found \(line)")
            }
            var key = trimmed(line[..<equals])
            let quoted = key.count >= 2 && key.first == "\"" && key.last == "\""
            if quoted { key = key.dropFirst().dropLast() }
            guard quoted ? !key.isEmpty && !key.contains("\"") : isBareKey(key) else {
                throw ParseError(line: lineNumber, message: "unsupported key \(key) (dotted keys are not supported)")
            }
            let path = table.isEmpty ? String(key) : "\(table).\(key)"
            if let first = seenKeys[path] {
                throw ParseError(line: lineNumber, message: "key \(path) already set on line \(first)")
            }
            seenKeys[path] = lineNumber
            let value = try parseValue(trimmed(line[line.index(after: equals)...]), line: lineNumber)
            entries.append(Entry(key: path, value: value, line: lineNumber))
        }
        return entries
    }

    private static func parseValue(_ text: Substring, line: Int) throws(ParseError) -> Value {
        guard let first = text.first else { throw ParseError(line: line, message: "missing value") }
        if first == "\"" || first == "'" {
            let (string, rest) = try parseString(text, line: line)
            let after = trimmed(rest)
            guard after.isEmpty || after.hasPrefix("#") else {
                throw ParseError(line: line, message: "unexpected text after string: \(after)")
            }
            return .string(string)
        }
        var token = text
        if let hash = token.firstIndex(of: "#") { token = token[..<hash] }
        token = trimmed(token)
        switch token {
        case "true": return .boolean(true)
        case "false": return .boolean(false)
        default: break
        }
        let digits = String(token.filter { $0 != "_" })
        if let number = Int64(digits) { return .integer(number) }
        if digits.contains("."), let number = Double(digits) { return .float(number) }
        throw ParseError(line: line, message: "unsupported value \(token) (use a string, integer, float or boolean)")
    }

    private static func parseString(_ text: Substring, line: Int) throws(ParseError) -> (String, Substring) {
        let quote = text.first!
        if text.hasPrefix(String(repeating: quote, count: 3)) {
            throw ParseError(line: line, message: "multi-line strings are not supported")
        }
        var result = ""
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let character = text[index]
            if character == quote { return (result, text[text.index(after: index)...]) }
            if character == "\\" && quote == "\"" {
                index = text.index(after: index)
                guard index < text.endIndex else { break }
                switch text[index] {
                case "\"": result.append("\"")
                case "\\": result.append("\\")
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "r": result.append("\r")
                default: throw ParseError(line: line, message: "unsupported escape \\\(text[index]) in string")
                }
            } else {
                result.append(character)
            }
            index = text.index(after: index)
        }
        throw ParseError(line: line, message: "unterminated string")
    }

    static func isBareKey(_ key: Substring) -> Bool {
        !key.isEmpty && key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
    }

    static func trimmed(_ text: Substring) -> Substring {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        var result = text.drop(while: blank)
        while let last = result.last, blank(last) { result = result.dropLast() }
        return result
    }
}

