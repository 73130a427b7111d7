import Foundation

/// When recurring snapshots run: every `interval` (the first run one interval after start, as
/// RKE does), or at the times of a cron expression in a time zone (UTC unless set).
public enum Schedule: Sendable, Equatable, CustomStringConvertible {
  case interval(TimeInterval)
  case cron(CronExpression, TimeZone)

  /// "every 3600 s" or "cron 0 */6 * * * (UTC)".
  public var description: String {
    switch self {
    case .interval(let seconds): "every \(Int(seconds)) s"
    case .cron(let cron, let zone): "cron \(cron) (\(zone.identifier))"
    }
  }

  /// The first run after `date`; `start` is when the schedule began (interval schedules count from it).
  public func nextRun(after date: Date, start: Date) -> Date {
    switch self {
    case .interval(let seconds):
      guard date >= start else { return start.addingTimeInterval(seconds) }
      let elapsed = date.timeIntervalSince(start)
      let periods = (elapsed / seconds).rounded(.down) + 1
      return start.addingTimeInterval(periods * seconds)
    case .cron(let expression, let zone):
      return expression.next(after: date, in: zone)
    }
  }
}

/// A standard five-field cron expression: minute hour day-of-month month day-of-week, each `*`,
/// `*/n`, `a`, `a-b`, `a-b/n` or a comma list of those; months and days may be named (`jan`,
/// `mon`); day-of-week 0 and 7 are Sunday. When both day fields are restricted, either matches.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
  public let minutes: Set<Int>
  public let hours: Set<Int>
  public let daysOfMonth: Set<Int>
  public let months: Set<Int>
  public let daysOfWeek: Set<Int>
  let domRestricted: Bool
  let dowRestricted: Bool
  public let description: String

  public init(_ text: String) throws(LifeboatError) {
    let fields = text.split(whereSeparator: \.isWhitespace).map(String.init)
    guard fields.count == 5 else { throw .usage("cron expression '\(text)': expected 5 fields (minute hour day month weekday)") }
    minutes = try Self.field(fields[0], 0...59, "minute", text)
    hours = try Self.field(fields[1], 0...23, "hour", text)
    daysOfMonth = try Self.field(fields[2], 1...31, "day of month", text)
    months = try Self.field(fields[3], 1...12, "month", text, names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], firstName: 1)
    daysOfWeek = Set(try Self.field(fields[4], 0...7, "day of week", text, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"], firstName: 0).map { $0 % 7 })
    domRestricted = fields[2] != "*"
    dowRestricted = fields[4] != "*"
    description = fields.joined(separator: " ")
    // `0 0 31 2 *` never comes: say so now rather than sleep forever.
    let probe = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01
    if next(after: probe, in: TimeZone(identifier: "UTC")!) == .distantFuture {
      throw .usage("cron expression '\(text)' never matches a date")
    }
  }

  private static func field(
    _ raw: String, _ range: ClosedRange<Int>, _ what: String, _ text: String, names: [String] = [], firstName: Int = 0
  ) throws(LifeboatError) -> Set<Int> {
    func value(_ s: Substring) throws(LifeboatError) -> Int {
      if let n = Int(s), range.contains(n) { return n }
      if let index = names.firstIndex(of: s.lowercased()) { return index + firstName }
      throw .usage("cron expression '\(text)': bad \(what) '\(s)' (\(range.lowerBound)-\(range.upperBound))")
    }
    var result = Set<Int>()
    for part in raw.split(separator: ",", omittingEmptySubsequences: false) {
      let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
      guard pieces.count <= 2, !pieces[0].isEmpty else { throw .usage("cron expression '\(text)': bad \(what) '\(part)'") }
      var step = 1
      if pieces.count == 2 {
        guard let s = Int(pieces[1]), s > 0 else { throw .usage("cron expression '\(text)': bad step in '\(part)'") }
        step = s
      }
      var low = range.lowerBound
      var high = range.upperBound
      if pieces[0] != "*" {
        let bounds = pieces[0].split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count <= 2 else { throw .usage("cron expression '\(text)': bad \(what) '\(part)'") }
        low = try value(bounds[0])
        high = bounds.count == 2 ? try value(bounds[1]) : (pieces.count == 2 ? range.upperBound : low)
        guard low <= high else { throw .usage("cron expression '\(text)': empty range '\(part)'") }
      }
      result.formUnion(stride(from: low, through: high, by: step))
    }
    return result
  }

  /// The first matching minute strictly after `date`, in `zone`.
  public func next(after date: Date, in zone: TimeZone) -> Date {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = zone
    let startOfDay = calendar.startOfDay(for: date)
    for dayOffset in 0..<(366 * 8) {
      guard let day = calendar.date(byAdding: .day, value: dayOffset, to: startOfDay) else { break }
      let c = calendar.dateComponents([.year, .month, .day, .weekday], from: day)
      guard months.contains(c.month!) else { continue }
      let domMatch = daysOfMonth.contains(c.day!)
      let dowMatch = daysOfWeek.contains(c.weekday! - 1)
      let dayMatches = domRestricted && dowRestricted ? (domMatch || dowMatch) : (domMatch && dowMatch)
      guard dayMatches else { continue }
      for hour in hours.sorted() {
        for minute in minutes.sorted() {
          var parts = c
          parts.hour = hour
          parts.minute = minute
          parts.second = 0
          parts.weekday = nil
          // A time skipped by a DST change does not exist: `date(from:)` moves it; skip those.
          guard let candidate = calendar.date(from: parts),
            calendar.component(.hour, from: candidate) == hour, calendar.component(.minute, from: candidate) == minute
          else { continue }
          if candidate > date { return candidate }
        }
      }
    }
    return .distantFuture
  }
}
