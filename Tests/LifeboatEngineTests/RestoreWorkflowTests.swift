import Foundation
import LifeboatCore
import LifeboatEngine
import Testing
import TestSupport

/// `ClusterEngine.restore` over fake nodes: each step failing on the serving node and on another
/// node ends with exactly the right nodes changed, the right exit code, and rollback in three
/// phases (stop all, move back all, start all).
@Suite struct RestoreWorkflowTests {
  /// A 3-node fake cluster whose first node holds `snap`.
  static func cluster() throws -> FakeCluster {
    let cluster = try FakeCluster(count: 3)
    cluster.nodes[0].update { $0.snapshots["snap"] = FakeNode.snapshot("snap") }
    return cluster
  }

  static func restore(_ cluster: FakeCluster, check: FakeClusterCheck? = nil) async throws -> Result<RestoreReport, LifeboatError> {
    let engine = cluster.engine(check: check)
    let plan = try await engine.plan(RestoreOptions(name: try SnapshotName("snap")))
    do throws(LifeboatError) {
      return .success(try await engine.restore(plan, options: RestoreOptions(name: try SnapshotName("snap"))))
    } catch { return .failure(error) }
  }

  /// Where each node's data is, whether its etcd runs, and that no restore files are left.
  static func expectUnchanged(_ cluster: FakeCluster, _ comment: String) {
    for node in cluster.nodes {
      let s = node.current
      #expect(s.data == "old" && s.aside == nil, "\(comment): \(node.address) holds \(s.data ?? "nothing")")
      #expect(s.etcdRunning, "\(comment): etcd runs on \(node.address)")
      #expect(s.fetched == nil && s.staged == nil, "\(comment): downloads removed on \(node.address)")
    }
  }

  @Test func aGoodRestoreRunsEveryStepInOrderAndEndsOnTheSnapshot() async throws {
    let cluster = try Self.cluster()
    let report = try await Self.restore(cluster).get()
    #expect(report.plan.source == .node("10.0.0.1"))
    #expect(report.revision == 42)
    #expect(report.oldDataDirs.count == 3)
    for node in cluster.nodes {
      #expect(node.current.data == "snap" && node.current.aside == "old" && node.current.etcdRunning)
    }
    // The serving node fetches first (from its own directory), then the others from it.
    let fetches = cluster.log.of(.fetch)
    #expect(fetches.first == "fetch 10.0.0.1 local")
    #expect(fetches.dropFirst().allSatisfy { $0.hasSuffix("peer(\"https://10.0.0.1:2382\")") }, "\(fetches)")
    // Phases never overlap: every stop before any swap, every swap before any start.
    let log = cluster.log
    for (before, after) in [(FakeNode.Step.stage, FakeNode.Step.stop), (.stop, .swap), (.swap, .start)] {
      #expect(log.span(before)!.upperBound < log.span(after)!.lowerBound, "\(before) before \(after): \(log.all)")
    }
    #expect(log.of(.rollback).isEmpty)
    // The leader stops last (a leader stopped first waits in vain to hand over leadership).
    #expect(log.of(.stop).last == "stop 10.0.0.3", "\(log.of(.stop))")
  }

  /// Steps before the point of no return: nothing changes, whatever node fails.
  @Test(arguments: [FakeNode.Step.preflight, .fetch, .stage], [0, 2])
  func aFailureBeforeTheSwapChangesNothing(step: FakeNode.Step, node index: Int) async throws {
    let cluster = try Self.cluster()
    cluster.nodes[index].failOnce(step)
    guard case .failure(let error) = try await Self.restore(cluster) else {
      Issue.record("\(step) failing on node \(index) must fail the restore"); return
    }
    #expect(error.kind == .failure)
    #expect(error.node == cluster.nodes[index].address, "the error names the node: \(error.message)")
    #expect(error.message.contains("nothing changed"))
    Self.expectUnchanged(cluster, "\(step) on node \(index)")
    #expect(cluster.log.of(.stop).isEmpty && cluster.log.of(.swap).isEmpty)
  }

  @Test(arguments: [0, 2])
  func aFailedStopStartsAgainWhatWasStopped(node index: Int) async throws {
    let cluster = try Self.cluster()
    cluster.nodes[index].failOnce(.stop)
    guard case .failure(let error) = try await Self.restore(cluster) else { Issue.record("must fail"); return }
    #expect(error.kind == .failure)
    #expect(error.message.contains("before any data dir moved"))
    Self.expectUnchanged(cluster, "stop on node \(index)")
    #expect(cluster.log.of(.swap).isEmpty && cluster.log.of(.rollback).isEmpty)
  }

  /// After the point of no return: every node is rolled back, in three phases, and the nodes
  /// that had swapped (and only they) move their data back.
  @Test(arguments: [FakeNode.Step.swap, .start], [0, 2])
  func aFailureAfterTheSwapRollsEveryNodeBack(step: FakeNode.Step, node index: Int) async throws {
    let cluster = try Self.cluster()
    cluster.nodes[index].failOnce(step)
    guard case .failure(let error) = try await Self.restore(cluster) else { Issue.record("must fail"); return }
    #expect(error.kind == .restoreRolledBack, "\(error.message)")
    #expect(error.message.contains(cluster.nodes[index].address))
    Self.expectUnchanged(cluster, "\(step) on node \(index)")
    Self.expectThreePhases(cluster)
    let moved = cluster.log.all.filter { $0.hasPrefix("rollback ") }.count
    #expect(moved == 3, "rollback asked on every node")
  }

  @Test func aFailedCheckRollsEveryNodeBack() async throws {
    let cluster = try Self.cluster()
    let check = FakeClusterCheck(nodes: cluster.nodes, failRestoredCheck: .verification("the members' HashKV differ"))
    guard case .failure(let error) = try await Self.restore(cluster, check: check) else { Issue.record("must fail"); return }
    #expect(error.kind == .restoreRolledBack)
    #expect(error.message.contains("HashKV"))
    Self.expectUnchanged(cluster, "check")
    Self.expectThreePhases(cluster)
  }

  /// A rollback that cannot finish says so (exit 8) and names the node; the others are back.
  @Test(arguments: [0, 2])
  func aRollbackThatFailsOnANodeIsIncomplete(node index: Int) async throws {
    let cluster = try Self.cluster()
    cluster.nodes[1].failOnce(.start)
    cluster.nodes[index].failOnce(.rollback)
    guard case .failure(let error) = try await Self.restore(cluster) else { Issue.record("must fail"); return }
    #expect(error.kind == .restoreIncomplete)
    #expect(error.node == cluster.nodes[index].address, "\(error.message)")
    #expect(error.message.contains("lifeboat-old"), "says where the old data is")
    for (i, node) in cluster.nodes.enumerated() where i != index {
      #expect(node.current.data == "old", "\(node.address) was moved back")
    }
    #expect(cluster.nodes[index].current.aside == "old", "the failed node's old data is kept aside, not lost")
  }

  @Test func copiesThatDifferAreRefusedBeforeAnythingChanges() async throws {
    let cluster = try Self.cluster()
    cluster.nodes[2].update { $0.corruptCopy = true }
    guard case .failure(let error) = try await Self.restore(cluster) else { Issue.record("must fail"); return }
    #expect(error.kind == .verification)
    #expect(error.node == "10.0.0.3")
    Self.expectUnchanged(cluster, "corrupt copy")
  }

  @Test func theSnapshotIsServedByTheFirstNodeThatHasIt() async throws {
    let cluster = try FakeCluster(count: 3)
    cluster.nodes[2].update { $0.snapshots["snap"] = FakeNode.snapshot("snap") }
    cluster.nodes[0].failAlways(.list)
    let plan = try await cluster.engine().plan(RestoreOptions(name: try SnapshotName("snap")))
    #expect(plan.source == .node("10.0.0.3"))
    #expect(plan.server == "10.0.0.3")
    #expect(plan.lines.contains { $0.contains("from:    local on 10.0.0.3") })
    await #expect(throws: LifeboatError.self) {
      _ = try await cluster.engine().plan(RestoreOptions(name: try SnapshotName("sna")))
    }
  }

  /// Stop on every node, then rollback on every node, then start on every node.
  static func expectThreePhases(_ cluster: FakeCluster) {
    let log = cluster.log.all
    guard let firstRollback = log.firstIndex(where: { $0.hasPrefix("rollback ") }),
      let lastRollback = log.lastIndex(where: { $0.hasPrefix("rollback ") })
    else { Issue.record("no rollback: \(log)"); return }
    let stops = log[..<firstRollback].suffix(3).filter { $0.hasPrefix("stop ") }
    #expect(stops.count == 3, "every etcd stopped right before the rollback: \(log)")
    let after = log[(lastRollback + 1)...]
    #expect(after.filter { $0.hasPrefix("start ") }.count == 3, "every etcd started after every rollback: \(log)")
    #expect(!log[firstRollback...lastRollback].contains { $0.hasPrefix("start ") }, "no start among the rollbacks")
  }
}
