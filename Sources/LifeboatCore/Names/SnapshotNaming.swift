import Foundation

/// RKE's snapshot names (see docs/ARCHITECTURE.md and RKE's own behaviour):
/// one-time `rke_etcd_snapshot_<RFC 3339 local time with offset>`, recurring
/// `<RFC 3339 UTC time>_etcd`; with `safeTimestamp` every `:` becomes `-`.
public struct SnapshotNaming: Sendable {
  public var safeTimestamp: Bool
  public var timeZone: TimeZone

  public init(safeTimestamp: Bool = false, timeZone: TimeZone = .current) {
    self.safeTimestamp = safeTimestamp
    self.timeZone = timeZone
  }

  /// The name RKE gives a one-time snapshot taken at `date`.
  public func oneTimeName(at date: Date) -> SnapshotName {
    make("rke_etcd_snapshot_" + Self.rfc3339(date, in: timeZone))
  }

  /// The name RKE gives a recurring snapshot taken at `date` (always UTC).
  public func recurringName(at date: Date) -> SnapshotName {
    make(Self.rfc3339(date, in: TimeZone(identifier: "UTC")!) + "_etcd")
  }

  private func make(_ raw: String) -> SnapshotName {
    let value = safeTimestamp ? raw.replacingOccurrences(of: ":", with: "-") : raw
    // Built only from digits, letters, `_`, `-`, `:` and `+`: always a valid name.
    return try! SnapshotName(value)
  }

  /// Go's `time.RFC3339` layout: `2006-01-02T15:04:05Z07:00` (whole seconds, `Z` for UTC).
  public static func rfc3339(_ date: Date, in zone: TimeZone) -> String {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = zone
    let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    let base = String(
      format: "%04d-%02d-%02dT%02d:%02d:%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    let offset = zone.secondsFromGMT(for: date)
    if offset == 0 { return base + "Z" }
    let sign = offset < 0 ? "-" : "+"
    let minutes = abs(offset) / 60
    return base + String(format: "%@%02d:%02d", sign, minutes / 60, minutes % 60)
  }
}
