import Foundation
import LifeboatCore
import LifeboatEngine
import Testing
import TestSupport

/// Save-and-copy, prune and catch-up decisions of `ClusterEngine` over fake nodes.
@Suite struct SaveAndPruneWorkflowTests {
  @Test func saveRunsOnTheFirstReachableNodeAndEveryOtherNodeCopies() async throws {
    let cluster = try FakeCluster(count: 3)
    cluster.nodes[0].failAlways(.health)
    let report = try await cluster.engine().save(name: try SnapshotName("manual1"))
    #expect(report.savedOn == "10.0.0.2")
    #expect(report.copies.sorted() == ["10.0.0.2", "10.0.0.3"])
    #expect(report.failures.map(\.node) == ["10.0.0.1"], "the unreachable node is reported")
    #expect(cluster.nodes[2].current.snapshots["manual1"] != nil)
    #expect(cluster.nodes[0].current.snapshots.isEmpty)
    #expect(cluster.nodes[2].current.prunedAfter.isEmpty, "a one-time save never prunes")
  }

  @Test func aCopyThatFailsIsReportedWithItsNodeAndTheOthersStillCopy() async throws {
    let cluster = try FakeCluster(count: 3)
    cluster.nodes[1].failOnce(.receive)
    let report = try await cluster.engine().save(name: try SnapshotName("manual2"))
    #expect(report.copies.sorted() == ["10.0.0.1", "10.0.0.3"])
    #expect(report.failures.count == 1)
    #expect(report.failures.first?.node == "10.0.0.2")
    #expect(report.failures.first?.step == "copy")
  }

  @Test func noReachableNodeIsAnUnavailableError() async throws {
    let cluster = try FakeCluster(count: 2)
    for node in cluster.nodes { node.failAlways(.health) }
    await #expect(throws: LifeboatError.self) { _ = try await cluster.engine().save(name: nil) }
    do {
      _ = try await cluster.engine().save(name: nil)
    } catch let error as LifeboatError {
      #expect(error.kind == .unavailable)
    }
  }

  static func recurring(_ day: Int, hour: Int = 0) -> String {
    String(format: "2026-11-%02dT%02d:00:00Z_etcd", day, hour)
  }

  /// A recurring name `hours` before now (RKE's default retention keeps it).
  static func recent(_ hours: Int) -> String {
    let hour = (Date().timeIntervalSince1970 / 3600).rounded(.down) * 3600
    return ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: hour - Double(hours) * 3600)) + "_etcd"
  }

  /// keep_last 2 over the union of every node: the same two stay everywhere, manual names stay,
  /// and a node that cannot be listed is reported and left alone.
  @Test func pruneDecidesOnTheUnionAndDeletesEverywhere() async throws {
    let cluster = try FakeCluster(count: 3, lifeboat: ["keep_last: 2"])
    let now = ISO8601DateFormatter().date(from: "2026-11-30T00:00:00Z")!
    for (i, node) in cluster.nodes.enumerated() {
      node.update { s in
        for day in [20, 21, 22] where !(i == 1 && day == 22) {
          s.snapshots[Self.recurring(day)] = FakeNode.snapshot(Self.recurring(day))
        }
        s.snapshots["rke_etcd_snapshot_manual"] = FakeNode.snapshot("rke_etcd_snapshot_manual")
      }
    }
    cluster.nodes[2].failAlways(.list)
    let dry = try await cluster.engine().prune(dryRun: true, includeManual: false, now: now)
    #expect(dry.deleted.isEmpty)
    #expect(cluster.log.of(.delete).isEmpty, "a dry run deletes nothing")
    let doomed = dry.decisions.filter { !$0.keep }.map(\.name.value)
    #expect(doomed == [Self.recurring(20)])
    #expect(dry.locations[Self.recurring(22)] == ["10.0.0.1"])

    let report = try await cluster.engine().prune(dryRun: false, includeManual: false, now: now)
    #expect(report.deleted[Self.recurring(20)]?.sorted() == ["10.0.0.1", "10.0.0.2"])
    #expect(report.failures.count == 1 && report.failures[0].contains("10.0.0.3"), "\(report.failures)")
    #expect(cluster.nodes[0].current.snapshots.keys.sorted() == [Self.recurring(21), Self.recurring(22), "rke_etcd_snapshot_manual"])
    #expect(cluster.nodes[2].current.snapshots.count == 4, "the node that could not be listed is untouched")
  }

  @Test func theNewestVerifiedSnapshotIsNeverPruned() async throws {
    let cluster = try FakeCluster(count: 1, lifeboat: ["keep_last: 1"])
    let now = ISO8601DateFormatter().date(from: "2026-11-30T00:00:00Z")!
    cluster.nodes[0].update { s in
      s.snapshots[Self.recurring(20)] = FakeNode.snapshot(Self.recurring(20))
      s.snapshots[Self.recurring(21)] = FakeNode.snapshot(Self.recurring(21), verified: false)
    }
    _ = try await cluster.engine().prune(dryRun: false, includeManual: false, now: now)
    #expect(cluster.nodes[0].current.snapshots[Self.recurring(20)] != nil, "the only verified one stays")
  }

  /// The recurring run's catch-up: a node that missed kept recurring snapshots gets them, with
  /// its own pruning; one-time and unverified snapshots are not pushed.
  @Test func peersThatMissedRecurringSnapshotsCatchUp() async throws {
    let cluster = try FakeCluster(count: 3)
    cluster.nodes[0].update { s in
      s.snapshots[Self.recent(3)] = FakeNode.snapshot(Self.recent(3))
      s.snapshots[Self.recent(2)] = FakeNode.snapshot(Self.recent(2), verified: false)
      s.snapshots["rke_etcd_snapshot_manual"] = FakeNode.snapshot("rke_etcd_snapshot_manual")
    }
    cluster.nodes[1].update { $0.snapshots[Self.recent(3)] = FakeNode.snapshot(Self.recent(3)) }
    let engine = cluster.engine()
    let run = try await engine.recurringRun(name: try SnapshotName(Self.recent(1)), holder: cluster.nodes[0])
    #expect(run.problems.isEmpty, "\(run.problems)")
    #expect(run.saved.name == Self.recent(1))
    #expect(cluster.nodes[2].current.snapshots.keys.sorted() == [Self.recent(3), Self.recent(1)])
    #expect(cluster.nodes[1].current.snapshots.keys.sorted() == [Self.recent(3), Self.recent(1)])
    #expect(cluster.nodes[2].current.prunedAfter.sorted() == [Self.recent(3), Self.recent(1)], "each copy prunes its own node")
  }

  @Test func aRecurringRunThatCannotCopyReportsTheNodeButKeepsTheSnapshot() async throws {
    let cluster = try FakeCluster(count: 2)
    cluster.nodes[1].failAlways(.receive)
    let run = try await cluster.engine().recurringRun(name: try SnapshotName(Self.recent(1)), holder: cluster.nodes[0])
    #expect(run.problems.contains { $0.contains("copy on 10.0.0.2") }, "\(run.problems)")
    #expect(cluster.nodes[0].current.snapshots[Self.recent(1)] != nil)
  }
}
