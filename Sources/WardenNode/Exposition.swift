/// Reading the shims' metrics files (Prometheus text format, as swift-prometheus writes
/// them): their samples for `warden status`, and all of them as one exposition for
/// `warden metrics`, with each family's HELP and TYPE once.
public enum Exposition {
    public struct Sample: Equatable, Sendable {
        public let name: String
        public let labels: [String: String]
        public let value: Double
    }

    /// The samples of one file; comments and lines that do not parse are skipped.
    public static func samples(_ text: String) -> [Sample] {
        text.split(separator: "\n").compactMap { line -> Sample? in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " ") else { return nil }
            guard let value = Double(line[line.index(after: space)...]) else { return nil }
            let series = line[..<space]
            guard let open = series.firstIndex(of: "{") else {
                return Sample(name: String(series), labels: [:], value: value)
            }
            return Sample(name: String(series[..<open]), labels: labels(series[series.index(after: open)...].dropLast()), value: value)
        }
    }

    /// `a="x",b="y \"q\""` → [a: x, b: y "q"].
    static func labels(_ text: Substring) -> [String: String] {
        var result: [String: String] = [:]
        var index = text.startIndex
        while index < text.endIndex {
            guard let equals = text[index...].firstIndex(of: "=") else { break }
            let key = text[index..<equals].trimmingPrefix(",")
            var cursor = text.index(equals, offsetBy: 2, limitedBy: text.endIndex) ?? text.endIndex  // past ="
            var value = ""
            while cursor < text.endIndex, text[cursor] != "\"" {
                if text[cursor] == "\\", text.index(after: cursor) < text.endIndex {
                    cursor = text.index(after: cursor)
                    value.append(text[cursor] == "n" ? "\n" : text[cursor])
                } else {
                    value.append(text[cursor])
                }
                cursor = text.index(after: cursor)
            }
            result[String(key)] = value
            index = cursor < text.endIndex ? text.index(after: cursor) : cursor
        }
        return result
    }

    /// One exposition from many: families in name order, each with its HELP and TYPE once
    /// and the samples of every file (their label sets differ by namespace and pod).
    public static func merge(_ texts: [String]) -> String {
        var order: [String] = []
        var families: [String: (help: String?, type: String?, samples: [Substring])] = [:]
        for text in texts {
            var current: String?
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ", maxSplits: 3)
                if words.count >= 3, words[0] == "#", words[1] == "HELP" || words[1] == "TYPE" {
                    let name = String(words[2])
                    if families[name] == nil {
                        families[name] = (nil, nil, [])
                        order.append(name)
                    }
                    let rest = words.count > 3 ? String(words[3]) : ""
                    if words[1] == "HELP", families[name]?.help == nil { families[name]?.help = rest }
                    if words[1] == "TYPE", families[name]?.type == nil { families[name]?.type = rest }
                    current = name
                } else if !line.hasPrefix("#"), let current {
                    families[current]?.samples.append(line)
                }
            }
        }
        var out = ""
        for name in order.sorted() {
            guard let family = families[name] else { continue }
            if let help = family.help { out += "# HELP \(name) \(help)\n" }
            if let type = family.type { out += "# TYPE \(name) \(type)\n" }
            for sample in family.samples { out += sample + "\n" }
        }
        return out
    }
}
