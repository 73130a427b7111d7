import Foundation
import LifeboatCore
import Testing

@Suite struct RetentionTests {
  static let utc = TimeZone(identifier: "UTC")!
  static func date(_ text: String) -> Date {
    let f = ISO8601DateFormatter()
    return f.date(from: text)!
  }
  static func recurring(_ time: String, verified: Bool = true, safe: Bool = false) -> RetentionCandidate {
    let name = try! SnapshotName((safe ? time.replacingOccurrences(of: ":", with: "-") : time) + "_etcd")
    return RetentionCandidate(name: name, taken: date(time), verified: verified)
  }
  static func kept(_ decisions: [RetentionDecision]) -> [String] { decisions.filter(\.keep).map(\.name.value) }

  @Test func recurringNamesAreReadInBothForms() {
    #expect(RetentionCandidate.recurringTime(try! SnapshotName("2026-11-25T10:00:00Z_etcd")) == Self.date("2026-11-25T10:00:00Z"))
    #expect(RetentionCandidate.recurringTime(try! SnapshotName("2026-11-25T10-00-00Z_etcd")) == Self.date("2026-11-25T10:00:00Z"))
    #expect(RetentionCandidate.recurringTime(try! SnapshotName("2026-11-25T10:00:00Z_node1_etcd")) == Self.date("2026-11-25T10:00:00Z"))
    #expect(RetentionCandidate.recurringTime(try! SnapshotName("rke_etcd_snapshot_2026-11-25T10:00:00+01:00")) == nil)
    #expect(RetentionCandidate.recurringTime(try! SnapshotName("before-upgrade")) == nil)
  }

  @Test func rkesAgeRuleWithAnInjectedClock() {
    // interval 12 h, retention 6: 72 h of history.
    let policy = RetentionPolicy.rke(retention: 6, intervalHours: 12)
    let now = Self.date("2026-11-25T12:00:00Z")
    let snapshots = [
      Self.recurring("2026-11-25T00:00:00Z"), Self.recurring("2026-11-22T13:00:00Z", safe: true),
      Self.recurring("2026-11-22T11:00:00Z"), Self.recurring("2026-11-01T00:00:00Z"),
      RetentionCandidate(name: try! SnapshotName("rke_etcd_snapshot_2020-01-01T00:00:00Z"), taken: Self.date("2020-01-01T00:00:00Z"), verified: true),
    ]
    let decisions = policy.decide(snapshots, now: now)
    #expect(Self.kept(decisions) == ["2026-11-25T00:00:00Z_etcd", "2026-11-22T13-00-00Z_etcd", "rke_etcd_snapshot_2020-01-01T00:00:00Z"])
    // With --include-manual the old one-time snapshot goes too.
    #expect(!Self.kept(policy.decide(snapshots, now: now, includeManual: true)).contains("rke_etcd_snapshot_2020-01-01T00:00:00Z"))
  }

  @Test func theNewestVerifiedSnapshotIsNeverDeleted() {
    let policy = RetentionPolicy.rke(retention: 1, intervalHours: 1)
    let now = Self.date("2026-11-25T12:00:00Z")
    let decisions = policy.decide(
      [Self.recurring("2026-11-20T00:00:00Z", verified: false), Self.recurring("2026-11-19T00:00:00Z"), Self.recurring("2026-11-18T00:00:00Z")],
      now: now)
    #expect(Self.kept(decisions) == ["2026-11-19T00:00:00Z_etcd"])
    #expect(decisions.first { $0.keep }?.reason.contains("newest verified") == true)
  }

  @Test func countsAsResticKeepsThem() {
    let snapshots = [
      "2026-11-25T11:30:00Z", "2026-11-25T11:00:00Z", "2026-11-25T10:00:00Z", "2026-11-24T23:00:00Z", "2026-11-24T10:00:00Z",
      "2026-11-23T10:00:00Z", "2026-11-16T10:00:00Z",
    ].map { Self.recurring($0) }
    let now = Self.date("2026-11-25T12:00:00Z")
    #expect(Self.kept(RetentionPolicy(keepLast: 2).decide(snapshots, now: now)) == ["2026-11-25T11:30:00Z_etcd", "2026-11-25T11:00:00Z_etcd"])
    #expect(
      Self.kept(RetentionPolicy(keepHourly: 3).decide(snapshots, now: now))
        == ["2026-11-25T11:30:00Z_etcd", "2026-11-25T10:00:00Z_etcd", "2026-11-24T23:00:00Z_etcd"])
    #expect(
      Self.kept(RetentionPolicy(keepDaily: 2, keepWeekly: 2).decide(snapshots, now: now))
        == ["2026-11-25T11:30:00Z_etcd", "2026-11-24T23:00:00Z_etcd", "2026-11-16T10:00:00Z_etcd"])
  }

  @Test func intervalSchedulesCountFromTheStart() {
    let start = Self.date("2026-11-25T00:00:00Z")
    let schedule = Schedule.interval(12 * 3600)
    #expect(schedule.nextRun(after: start, start: start) == Self.date("2026-11-25T12:00:00Z"), "the first run one interval after start, as RKE")
    #expect(schedule.nextRun(after: Self.date("2026-11-25T12:00:00Z"), start: start) == Self.date("2026-11-26T00:00:00Z"))
    #expect(schedule.nextRun(after: Self.date("2026-11-26T05:00:00Z"), start: start) == Self.date("2026-11-26T12:00:00Z"))
  }

  @Test func cronSchedules() throws {
    let every6h = Schedule.cron(try CronExpression("0 */6 * * *"), Self.utc)
    let start = Self.date("2026-11-25T00:00:00Z")
    #expect(every6h.nextRun(after: Self.date("2026-11-25T05:59:00Z"), start: start) == Self.date("2026-11-25T06:00:00Z"))
    #expect(every6h.nextRun(after: Self.date("2026-11-25T06:00:00Z"), start: start) == Self.date("2026-11-25T12:00:00Z"))
    #expect(every6h.nextRun(after: Self.date("2026-11-25T18:30:00Z"), start: start) == Self.date("2026-11-26T00:00:00Z"))
    // Mondays and Fridays at 02:30 in Berlin (CET, UTC+1 in November).
    let berlin = Schedule.cron(try CronExpression("30 2 * * mon,fri"), TimeZone(identifier: "Europe/Berlin")!)
    #expect(berlin.nextRun(after: Self.date("2026-11-25T12:00:00Z"), start: start) == Self.date("2026-11-27T01:30:00Z"))
    // Both day fields restricted: either matches (the 1st, or any Sunday).
    let either = try CronExpression("0 0 1 * 0")
    #expect(either.next(after: Self.date("2026-11-25T00:00:00Z"), in: Self.utc) == Self.date("2026-11-29T00:00:00Z"))
    #expect(either.next(after: Self.date("2026-11-29T00:00:00Z"), in: Self.utc) == Self.date("2026-12-01T00:00:00Z"))
    for bad in ["* * * *", "60 * * * *", "*/0 * * * *", "5-1 * * * *", "0 0 * foo *", "0 0 31 2 *"] {
      #expect(throws: LifeboatError.self) { try CronExpression(bad) }
    }
  }

  @Test func configChoosesScheduleAndPolicy() throws {
    let base = "nodes: [{address: 10.0.0.1, role: [etcd]}]\nservices: {etcd: {backup_config: {interval_hours: 6, retention: 4}}}\n"
    let rke = try ClusterConfig.parse(base, path: "cluster.yml")
    #expect(rke.recurringSchedule == .interval(6 * 3600))
    #expect(rke.retentionPolicy == .rke(retention: 4, intervalHours: 6))
    let own = try ClusterConfig.parse(
      base + "lifeboat: {schedule: \"0 */6 * * *\", timezone: Europe/Berlin, keep_last: 2, keep_daily: 7}\n", path: "cluster.yml")
    #expect(own.recurringSchedule == .cron(try CronExpression("0 */6 * * *"), TimeZone(identifier: "Europe/Berlin")!))
    #expect(own.retentionPolicy == RetentionPolicy(keepLast: 2, keepDaily: 7))
    #expect(throws: LifeboatError.self) { try ClusterConfig.parse(base + "lifeboat: {schedule: \"every day\"}\n", path: "cluster.yml") }
    #expect(throws: LifeboatError.self) { try ClusterConfig.parse(base + "lifeboat: {keep_last: 0}\n", path: "cluster.yml") }
  }
}
