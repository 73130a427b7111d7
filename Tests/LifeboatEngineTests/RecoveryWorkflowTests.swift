import Foundation
import LifeboatCore
import LifeboatEngine
import Testing
import TestSupport

/// One restore at a time, and `restore --recover` over fake nodes left as a crash would leave
/// them.
@Suite struct RecoveryWorkflowTests {
  static func snapCluster() throws -> FakeCluster {
    let cluster = try FakeCluster(count: 3)
    cluster.nodes[0].update { $0.snapshots["snap"] = FakeNode.snapshot("snap") }
    return cluster
  }

  @Test func aSecondRestoreIsRefusedAndChangesNothing() async throws {
    let cluster = try Self.snapCluster()
    let other = RestoreLease(id: "20261130T000000Z-00000001", snapshot: "other", origin: "ops-host (PID 7)")
    try await cluster.nodes[1].takeLease(other)
    let engine = cluster.engine()
    let plan = try await engine.plan(RestoreOptions(name: try SnapshotName("snap")))
    do {
      _ = try await engine.restore(plan, options: RestoreOptions(name: try SnapshotName("snap")))
      Issue.record("a restore ran while another held a node")
    } catch {
      #expect(error.kind == .restoreInProgress)
      #expect(error.message.contains(other.id) && error.message.contains("ops-host"), "names the other restore: \(error.message)")
    }
    #expect(cluster.nodes[0].current.lease == nil, "the lease taken on the first node was given back")
    #expect(cluster.nodes[1].current.lease == other)
    #expect(cluster.log.of(.fetch).isEmpty && cluster.log.of(.stop).isEmpty, "nothing else happened")
  }

  @Test func saveAndPruneAreRefusedWhileARestoreHoldsANode() async throws {
    let cluster = try Self.snapCluster()
    try await cluster.nodes[2].takeLease(RestoreLease(id: "20261130T000000Z-00000002", snapshot: "snap"))
    for attempt in ["save", "prune"] {
      do {
        if attempt == "save" {
          _ = try await cluster.engine().save(name: try SnapshotName("during"))
        } else {
          _ = try await cluster.engine().prune(dryRun: false, includeManual: true)
        }
        Issue.record("\(attempt) ran during a restore")
      } catch {
        #expect(error.kind == .restoreInProgress, "\(attempt): \(error.message)")
        #expect(error.node == "10.0.0.3")
      }
    }
    #expect(cluster.log.of(.save).isEmpty && cluster.log.of(.delete).isEmpty)
  }

  @Test func nothingToRecover() async throws {
    let cluster = try Self.snapCluster()
    let report = try await cluster.engine().recover()
    #expect(report.outcome == .nothingToRecover)
    #expect(cluster.log.of(.stop).isEmpty, "a clear cluster is not touched")
  }

  /// The command died after every node swapped (one etcd even started): recovery finishes.
  @Test func everyNodeHoldingTheRestoredDataIsFinished() async throws {
    let cluster = try Self.snapCluster()
    let id = "20261130T000000Z-0000000a"
    for (i, node) in cluster.nodes.enumerated() {
      node.update { s in
        s.lease = RestoreLease(id: id, snapshot: "snap")
        s.journal = id
        s.fetched = "snap"
        s.etcdRunning = i == 0
        if i < 2 {
          s.aside = "old"
          s.data = "snap"
        } else {
          s.staged = "snap"  // staged, its swap never ran
        }
      }
    }
    let report = try await cluster.engine().recover()
    #expect(report.outcome == .finished(snapshot: "snap"))
    #expect(report.id == id)
    for node in cluster.nodes {
      #expect(node.current.data == "snap" && node.current.etcdRunning, "\(node.address) serves the snapshot")
      #expect(node.current.lease == nil && node.current.journal == nil, "\(node.address) released")
    }
    #expect(cluster.log.of(.swap) == ["swap 10.0.0.3"], "only the node that had not swapped swaps")
    #expect(cluster.log.span(.stop)!.upperBound < cluster.log.span(.swap)!.lowerBound, "every etcd stops first")
  }

  /// The restore's check passed, then one agent died before its cleanup (the others released):
  /// the restore was finished. Rolling that one node back would split the cluster's data.
  @Test func aRestoreThatPassedItsCheckIsCleanedUpNeverPartlyRolledBack() async throws {
    let cluster = try Self.snapCluster()
    let id = "20261130T000000Z-0000000e"
    for (i, node) in cluster.nodes.enumerated() {
      node.update { s in
        s.aside = "old"
        s.data = "snap"
        s.etcdRunning = true
        if i == 1 {
          s.lease = RestoreLease(id: id, snapshot: "snap")
          s.journal = id
          s.journalSteps = ["fetch.done", "stage.done", "swap.done", "start.done", "check.done"]
        }
      }
    }
    let report = try await cluster.engine().recover()
    #expect(report.outcome == .finished(snapshot: "snap"))
    #expect(cluster.log.of(.rollback).isEmpty && cluster.log.of(.stop).isEmpty, "nothing is stopped or moved back")
    for node in cluster.nodes {
      #expect(node.current.data == "snap" && node.current.etcdRunning, "\(node.address) serves the snapshot")
      #expect(node.current.lease == nil && node.current.journal == nil, "\(node.address) released")
    }
  }

  /// A lease whose command still runs on this host (its PID alive) is a running restore.
  @Test func aRestoreThatStillRunsIsNotRecovered() async throws {
    let cluster = try Self.snapCluster()
    // A process that looks like the holder: its command line names lifeboat.
    let sleeper = Process()
    sleeper.executableURL = URL(fileURLWithPath: "/bin/sh")
    sleeper.arguments = ["-c", "sleep 30; true", "lifeboat-holder"]
    try sleeper.run()
    defer { sleeper.terminate() }
    // A PID now used by another program is not the holder.
    let other = Process()
    other.executableURL = URL(fileURLWithPath: "/bin/sleep")
    other.arguments = ["30"]
    try other.run()
    defer { other.terminate() }
    #expect(RestoreLease(id: "20261130T000000Z-0000000f", snapshot: "snap", pid: other.processIdentifier).holderRunsHere == false)
    let id = "20261130T000000Z-0000000f"
    let lease = RestoreLease(id: id, snapshot: "snap", origin: "this host (PID \(sleeper.processIdentifier))", pid: sleeper.processIdentifier)
    for node in cluster.nodes { node.update { $0.lease = lease } }
    do {
      _ = try await cluster.engine().recover()
      Issue.record("a running restore was recovered")
    } catch {
      #expect(error.kind == .restoreInProgress, "\(error.message)")
      #expect(error.message.contains("is running, not interrupted"), "\(error.message)")
    }
    #expect(cluster.log.of(.stop).isEmpty && cluster.log.of(.rollback).isEmpty, "nothing was touched")
    #expect(cluster.nodes.allSatisfy { $0.current.lease == lease })
    // Another host's lease renewed a moment ago is taken for running too.
    let remote = RestoreLease(id: id, snapshot: "snap", origin: "ops (PID 1)", host: "another-host", pid: 1)
    #expect(remote.holderRunsHere == nil)
    #expect(RestoreLease(id: id, snapshot: "snap", pid: 999_999_999).holderRunsHere == false, "a PID that no longer runs")
  }

  @Test func leasesFromRequestBodiesArePrintableAndShort() {
    let id = "20261130T000000Z-00000010"
    #expect(throws: LifeboatError.self) { try RestoreLease(id: id, snapshot: "../x\u{1B}[2J").validate() }
    #expect(throws: LifeboatError.self) { try RestoreLease(id: id, snapshot: "s", origin: String(repeating: "o", count: 800)).validate() }
    #expect(throws: LifeboatError.self) { try RestoreLease(id: "../x", snapshot: "s").validate() }
    #expect(throws: LifeboatError.self) { try RestoreLease(id: id, snapshot: "s", pid: -3).validate() }
    #expect((try? RestoreLease(id: id, snapshot: "rke_etcd_snapshot_2026").validate()) != nil)
  }

  /// Found by a review: every node staged, but no data dir moved (the command died before its
  /// swap) and the cluster took writes meanwhile. Finishing would lose them: every node keeps
  /// its data, nothing is stopped, the staging is removed.
  @Test func stagedButNeverSwappedKeepsEveryNodesData() async throws {
    let cluster = try Self.snapCluster()
    let id = "20261130T000000Z-00000011"
    for node in cluster.nodes {
      node.update { s in
        s.lease = RestoreLease(id: id, snapshot: "snap", pid: 999_999_999)
        s.journal = id
        s.journalSteps = ["fetch.done", "stage.begun", "stage.done"]
        s.fetched = "snap"
        s.staged = "snap"
        s.data = "old"
        s.etcdRunning = true
      }
    }
    let report = try await cluster.engine().recover()
    #expect(report.outcome == .rolledBack(snapshot: "snap"))
    #expect(cluster.log.of(.stop).isEmpty && cluster.log.of(.swap).isEmpty, "nothing stopped or swapped")
    for node in cluster.nodes {
      #expect(node.current.data == "old" && node.current.etcdRunning)
      #expect(node.current.lease == nil && node.current.journal == nil && node.current.staged == nil, "\(node.address) cleaned up")
    }
  }

  /// One node never got the staged data (its agent died during stage): every node goes back.
  @Test func aNodeWithoutTheRestoredDataRollsEveryNodeBack() async throws {
    let cluster = try Self.snapCluster()
    let id = "20261130T000000Z-0000000b"
    for (i, node) in cluster.nodes.enumerated() {
      node.update { s in
        s.lease = RestoreLease(id: id, snapshot: "snap")
        s.journal = id
        s.fetched = "snap"
        if i == 0 {
          s.aside = "old"
          s.data = "snap"
          s.etcdRunning = false
        } else if i == 1 {
          s.staged = "snap"
        }
      }
    }
    let report = try await cluster.engine().recover()
    #expect(report.outcome == .rolledBack(snapshot: "snap"))
    for node in cluster.nodes {
      #expect(node.current.data == "old" && node.current.aside == nil && node.current.etcdRunning, "\(node.address) on its old data")
      #expect(node.current.lease == nil && node.current.journal == nil)
    }
    // Three phases: every stop, then every rollback, then every start.
    let log = cluster.log
    #expect(log.span(.stop)!.upperBound < log.span(.rollback)!.lowerBound)
    #expect(log.span(.rollback)!.upperBound < log.span(.start)!.lowerBound)
  }

  @Test func finishingThatFailsFallsBackToTheOldData() async throws {
    let cluster = try Self.snapCluster()
    let id = "20261130T000000Z-0000000c"
    for node in cluster.nodes {
      node.update { s in
        s.lease = RestoreLease(id: id, snapshot: "snap")
        s.journal = id
        s.aside = "old"
        s.data = "snap"
        s.etcdRunning = false
      }
    }
    let check = FakeClusterCheck(nodes: cluster.nodes, failRestoredCheck: .verification("HashKV differ"))
    let report = try await cluster.engine(check: check).recover()
    #expect(report.outcome == .rolledBack(snapshot: "snap"))
    #expect(cluster.nodes.allSatisfy { $0.current.data == "old" && $0.current.etcdRunning })
  }

  @Test func aNodeThatDoesNotAnswerStopsTheRecoveryWithExit8() async throws {
    let cluster = try Self.snapCluster()
    cluster.nodes[1].update { $0.lease = RestoreLease(id: "20261130T000000Z-0000000d", snapshot: "snap") }
    cluster.nodes[2].failAlways(.status)
    do {
      _ = try await cluster.engine().recover()
      Issue.record("recovered without hearing from every node")
    } catch {
      #expect(error.kind == .restoreIncomplete)
      #expect(error.node == "10.0.0.3")
    }
    #expect(cluster.log.of(.stop).isEmpty, "nothing was touched")
    #expect(cluster.nodes[1].current.lease != nil, "the lease stays")
  }
}
