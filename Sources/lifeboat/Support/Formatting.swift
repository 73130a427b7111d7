import Foundation

/// Sizes as people read them: 1.5 MiB, 812 KiB, 17 B.
func formatBytes(_ bytes: UInt64) -> String {
  let units = ["B", "KiB", "MiB", "GiB", "TiB"]
  var value = Double(bytes)
  var unit = 0
  while value >= 1024 && unit < units.count - 1 {
    value /= 1024
    unit += 1
  }
  return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}

func formatDuration(_ duration: Duration) -> String {
  let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
  return String(format: "%.2f s", seconds)
}

func formatDate(_ date: Date) -> String {
  let formatter = ISO8601DateFormatter()
  formatter.timeZone = .current
  return formatter.string(from: date)
}

/// Prints rows as left-aligned columns separated by two spaces.
func table(_ rows: [[String]]) -> String {
  guard let first = rows.first else { return "" }
  var widths = [Int](repeating: 0, count: first.count)
  for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
  return rows.map { row in
    row.enumerated().map { i, cell in
      i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
    }.joined(separator: "  ")
  }.joined(separator: "\n")
}

func printJSON<T: Encodable>(_ value: T) throws {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
  encoder.dateEncodingStrategy = .iso8601
  print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
