import Foundation

/// Which snapshots to keep. By default RKE's rule: recurring snapshots younger than
/// `retention × interval_hours` are kept. With any `keep_*` count set, restic's rule instead:
/// the newest `keepLast`, and the newest of each of the last `keepHourly` hours, `keepDaily`
/// days and `keepWeekly` ISO weeks (UTC) that have one. Either way the newest verified snapshot
/// is never deleted, and only Lifeboat's or RKE's recurring names are candidates unless
/// `includeManual` (one-time snapshots and names nobody scheduled stay).
public struct RetentionPolicy: Sendable, Equatable {
  /// RKE: `retention × interval_hours`.
  public var maxAge: TimeInterval?
  public var keepLast: Int?
  public var keepHourly: Int?
  public var keepDaily: Int?
  public var keepWeekly: Int?

  public init(maxAge: TimeInterval? = nil, keepLast: Int? = nil, keepHourly: Int? = nil, keepDaily: Int? = nil, keepWeekly: Int? = nil) {
    self.maxAge = maxAge
    self.keepLast = keepLast
    self.keepHourly = keepHourly
    self.keepDaily = keepDaily
    self.keepWeekly = keepWeekly
  }

  /// RKE's rule for a backup config.
  public static func rke(retention: Int, intervalHours: Int) -> RetentionPolicy {
    RetentionPolicy(maxAge: TimeInterval(retention * intervalHours) * 3600)
  }

  var countsBased: Bool { keepLast != nil || keepHourly != nil || keepDaily != nil || keepWeekly != nil }

  public var summary: String {
    if countsBased {
      return [("last", keepLast), ("hourly", keepHourly), ("daily", keepDaily), ("weekly", keepWeekly)]
        .compactMap { name, n in n.map { "keep \(name) \($0)" } }.joined(separator: ", ")
    }
    return maxAge.map { "keep recurring snapshots younger than \(Int($0 / 3600)) h (RKE: retention × interval_hours)" } ?? "keep everything"
  }
}

/// One snapshot as retention sees it.
public struct RetentionCandidate: Sendable, Equatable {
  public var name: SnapshotName
  /// When it was taken: from a recurring name, else its manifest or file time.
  public var taken: Date
  /// The archive verified at save and its manifest present.
  public var verified: Bool

  public init(name: SnapshotName, taken: Date, verified: Bool) {
    self.name = name
    self.taken = taken
    self.verified = verified
  }

  /// A recurring name (`<RFC 3339 UTC>_etcd`, `:` or `-` in the time, or a no-quorum
  /// `<time>_<node>_etcd`): the time it encodes.
  public static func recurringTime(_ name: SnapshotName) -> Date? {
    let value = name.value
    guard value.hasSuffix("_etcd"), let underscore = value.firstIndex(of: "_") else { return nil }
    var time = String(value[..<underscore])
    // `2026-11-25T10-00-00Z` (safe_timestamp) -> `2026-11-25T10:00:00Z`
    if let t = time.firstIndex(of: "T") {
      let clock = time[time.index(after: t)...]
      if clock.count >= 8, !clock.contains(":") {
        var chars = Array(clock)
        if chars.count >= 8 { chars[2] = ":"; chars[5] = ":" }
        time = String(time[...t]) + String(chars)
      }
    }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: time)
  }
}

public struct RetentionDecision: Sendable, Equatable {
  public var name: SnapshotName
  public var keep: Bool
  /// Why, for `prune --dry-run`.
  public var reason: String
}

extension RetentionPolicy {
  /// Decides for every candidate, newest first. `now` is injected (tests use a fixed clock).
  public func decide(_ snapshots: [RetentionCandidate], now: Date, includeManual: Bool = false) -> [RetentionDecision] {
    let sorted = snapshots.sorted { $0.taken != $1.taken ? $0.taken > $1.taken : $0.name > $1.name }
    let newestVerified = sorted.first(where: \.verified)?.name
    var calendar = Calendar(identifier: .iso8601)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    var kept = (last: 0, hours: Set<String>(), days: Set<String>(), weeks: Set<String>())
    var decisions: [RetentionDecision] = []
    for snapshot in sorted {
      let recurring = RetentionCandidate.recurringTime(snapshot.name) != nil
      if !recurring && !includeManual {
        decisions.append(.init(name: snapshot.name, keep: true, reason: "not a recurring snapshot (prune --include-manual to include)"))
        continue
      }
      var reasons: [String] = []
      if countsBased {
        let c = calendar.dateComponents([.year, .month, .day, .hour, .yearForWeekOfYear, .weekOfYear], from: snapshot.taken)
        let hour = "\(c.year!)-\(c.month!)-\(c.day!)T\(c.hour!)"
        let day = "\(c.year!)-\(c.month!)-\(c.day!)"
        let week = "\(c.yearForWeekOfYear!)-W\(c.weekOfYear!)"
        if let n = keepLast, kept.last < n { kept.last += 1; reasons.append("last \(n)") }
        if let n = keepHourly, !kept.hours.contains(hour), kept.hours.count < n { kept.hours.insert(hour); reasons.append("hourly \(n)") }
        if let n = keepDaily, !kept.days.contains(day), kept.days.count < n { kept.days.insert(day); reasons.append("daily \(n)") }
        if let n = keepWeekly, !kept.weeks.contains(week), kept.weeks.count < n { kept.weeks.insert(week); reasons.append("weekly \(n)") }
      } else if let maxAge {
        if now.timeIntervalSince(snapshot.taken) < maxAge { reasons.append("younger than \(Int(maxAge / 3600)) h") }
      } else {
        reasons.append("no retention set")
      }
      if reasons.isEmpty, snapshot.name == newestVerified { reasons.append("the newest verified snapshot is never deleted") }
      decisions.append(
        .init(name: snapshot.name, keep: !reasons.isEmpty, reason: reasons.isEmpty ? "outside the policy (\(summary))" : reasons.joined(separator: ", ")))
    }
    return decisions
  }
}
