import Foundation
import LifeboatCore

/// `snapshot restore --recover`: brings a cluster that an interrupted restore left (a killed
/// agent or command, a rebooted node) to one consistent state, from every node's lease, journal
/// and disk. It finishes the restore when every node holds the restored data (staged or already
/// swapped in), and rolls every node back otherwise (or when finishing fails); three phases
/// either way: stop every etcd (orphans found by their port included), move data dirs, start
/// every etcd. It ends healthy on one dataset, or fails with exit 8 keeping the lease.
extension ClusterEngine {
  public struct RecoveryReport: Sendable {
    public enum Outcome: Sendable, Equatable {
      /// Nothing of a restore was left anywhere.
      case nothingToRecover
      /// The cluster runs the snapshot's data: the restore was finished.
      case finished(snapshot: String)
      /// The cluster runs its old data: the restore was undone.
      case rolledBack(snapshot: String)
    }
    public var outcome: Outcome
    public var id: String?
    /// What was found on each node, one line each.
    public var found: [String]
  }

  public func recover() async throws(LifeboatError) -> RecoveryReport {
    let statuses: [NodeRestoreStatus]
    do throws(LifeboatError) {
      statuses = try await onEach(nodes, "status") { (node) async throws(LifeboatError) in try await node.restoreStatus() }
    } catch {
      throw LifeboatError(.restoreIncomplete, "cannot recover while a node does not answer: \(error.message)", node: error.node)
    }
    let found = statuses.map(Self.describe)
    for line in found { progress("found: \(line)") }
    // A restore that still runs is not recovered: its command finishes or rolls back itself.
    for status in statuses {
      guard let lease = status.lease else { continue }
      // A running restore renews its lease every few seconds: one idle for longer is abandoned,
      // whatever process now has its PID. On the holder's own host a dead PID needs no wait.
      let fresh = (status.leaseIdleSeconds ?? .infinity) < Self.leaseAbandonedAfter
      let live = fresh && lease.holderRunsHere != false
      if live {
        let wait = lease.holderRunsHere == true
          ? "its command still runs (PID \(lease.pid ?? 0)): wait for it, or stop it first"
          : "its command renewed the lease \(Int(status.leaseIdleSeconds ?? 0)) s ago: wait for it; if it is gone, run --recover again in \(Int(Self.leaseAbandonedAfter)) s"
        throw LifeboatError(.restoreInProgress, "\(lease.line) is running, not interrupted; \(wait)", node: status.address)
      }
    }
    let ids = Set(statuses.compactMap { $0.lease?.id } + statuses.flatMap { $0.journals.map(\.id) }).sorted()
    guard let id = ids.last else {
      return RecoveryReport(outcome: .nothingToRecover, id: nil, found: found)
    }
    // Older interrupted restores first (their data dirs were put back, or they never swapped).
    for older in ids.dropLast() { _ = try await recover(older, statuses) }
    return RecoveryReport(outcome: try await recover(id, statuses), id: id, found: found)
  }

  private func recover(_ id: String, _ statuses: [NodeRestoreStatus]) async throws(LifeboatError) -> RecoveryReport.Outcome {
    let journals = statuses.map { $0.journals.first { $0.id == id } }
    let name = journals.compactMap { $0?.name }.first ?? statuses.compactMap { $0.lease?.snapshot }.first ?? "?"
    let revision = journals.compactMap { $0?.revision }.max() ?? 0
    let complete = journals.allSatisfy { j in j.map { $0.swapped || $0.staged } ?? false }
    // The restore's cluster check passed (a node recorded `check.done`, which follows the check
    // of every member) and no rollback began: the restore was finished, and only its cleanup was
    // cut short. Nodes without a journal were released after that check. Never roll back part of
    // such a cluster.
    let checked = journals.contains { $0?.steps.contains("check.done") == true }
    let rollingBack = journals.contains { $0?.steps.contains("rollback.begun") == true }
    if checked, !rollingBack {
      progress("restore \(id) of \(name) passed its check: making sure every etcd runs, then cleaning up")
      try await startWhereStopped(quotaBackendBytes: Self.quota(forDB: journals.compactMap { $0?.dbSize }.max() ?? 0))
      let result = try await check.checkRestored(snapshotRevision: revision, nodes: nodes)
      try await checkDataDirs()
      progress("check: \(members.count) members healthy, HashKV \(result.hash) equal at revision \(result.revision)")
      if let installed = try installPendingStateFile(id: id) { progress("state file: installed \(installed.installed)") }
      try await finishRecovery(id)
      return .finished(snapshot: name)
    }
    // No data dir moved anywhere (the swap is the point of no return): every node still holds
    // its own data, and the cluster may have served and taken writes since (the command died
    // while staging, or its stop failed and it started etcd again). Finishing would lose those
    // writes: only start what is stopped and remove what the restore left.
    let swappedAnywhere = journals.contains { j in j.map { $0.swapped || $0.steps.contains { $0.hasPrefix("swap.") } } ?? false }
    if !swappedAnywhere {
      progress("restore \(id) of \(name) stopped before any data dir moved: every node keeps its data; removing what it left")
      return try await rollBackEveryNode(id, name: name, journals: journals, data: "their own data")
    }
    progress("restore \(id) of \(name): " + (complete ? "every node holds the restored data: finishing it" : "rolling every node back"))
    try await stopEveryEtcd()
    if complete {
      do throws(LifeboatError) {
        let pending = zip(nodes, journals).filter { !($0.1?.swapped ?? true) }.map(\.0)
        try await phase(pending, "swap") { (node) async throws(LifeboatError) in _ = try await node.swap(id) }
        try await phase(nodes, "start") { (node) async throws(LifeboatError) in
          try await node.startEtcd(quotaBackendBytes: Self.quota(forDB: journals.compactMap { $0?.dbSize }.max() ?? 0))
        }
        let result = try await check.checkRestored(snapshotRevision: revision, nodes: nodes)
        try await phase(nodes, "check") { (node) async throws(LifeboatError) in try await node.confirmRestored(id) }
        progress("check: \(members.count) members healthy on the snapshot's data, HashKV \(result.hash) at revision \(result.revision)")
        do { _ = try await check.removeLockKeys() } catch { logger.warning("could not remove Lifeboat's lock keys: \(error.message)") }
        if let installed = try installPendingStateFile(id: id) { progress("state file: installed \(installed.installed)") }
        try await finishRecovery(id)
        return .finished(snapshot: name)
      } catch {
        progress("finishing failed: \(error.message); rolling every node back")
        try await stopEveryEtcd()
      }
    }
    return try await rollBackEveryNode(id, name: name, journals: journals, data: "their old data")
  }

  /// Every node with a journal rolled back (from its disk: with nothing aside, only the staging
  /// goes), etcd started where it is stopped, every member healthy with HashKV equal and serving
  /// its data dir; then cleanup.
  private func rollBackEveryNode(
    _ id: String, name: String, journals: [NodeRestoreStatus.Journal?], data: String
  ) async throws(LifeboatError) -> RecoveryReport.Outcome {
    let withJournal = zip(nodes, journals).filter { $0.1 != nil }.map(\.0)
    try await phase(withJournal, "rollback") { (node) async throws(LifeboatError) in
      let report = try await node.rollback(id)
      progress("rollback: \(node.address): " + (report.actions.isEmpty ? "nothing to undo" : report.actions.joined(separator: ", ")))
    }
    try await startWhereStopped(quotaBackendBytes: nil)
    // Healthy is not enough: every member must serve the same data (HashKV equal).
    do throws(LifeboatError) {
      let result = try await check.waitConsistent(nodes: nodes)
      progress("check: \(members.count) members healthy on \(data), HashKV \(result.hash) equal at revision \(result.revision)")
    } catch {
      throw LifeboatError(.restoreIncomplete, "every node is back on \(data), but the cluster is not healthy: \(error.message)")
    }
    try await checkDataDirs()
    removePendingStateFile(id: id)
    try await finishRecovery(id)
    return .rolledBack(snapshot: name)
  }

  private func startWhereStopped(quotaBackendBytes: Int64?) async throws(LifeboatError) {
    try await phase(nodes, "start") { (node) async throws(LifeboatError) in
      guard try await node.health().etcdRunning != true else { return }
      try await node.startEtcd(quotaBackendBytes: quotaBackendBytes)
      progress("start: etcd started on \(node.address)")
    }
  }

  /// Every node's etcd serves from its data dir (never an old or staged one).
  private func checkDataDirs() async throws(LifeboatError) {
    try await phase(nodes, "check") { (node) async throws(LifeboatError) in
      if let problem = try await node.health().dataDirProblem { throw LifeboatError.verification(problem) }
    }
  }

  private func stopEveryEtcd() async throws(LifeboatError) {
    try requireAll(await stopAll(nodes).failures(), "stop")
  }

  /// Runs a recovery phase on `subset`; any failure ends the recovery with exit 8.
  private func phase(
    _ subset: [any Node], _ step: String, _ body: @escaping @Sendable (any Node) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    try requireAll(await settle(subset, step, body).failures(), step)
  }

  private func requireAll(_ failures: [LifeboatError], _ step: String) throws(LifeboatError) {
    guard failures.isEmpty else {
      throw LifeboatError(
        .restoreIncomplete, "recovery stopped: \(failures.map(\.message).joined(separator: "; ")); the lease stays",
        node: failures[0].node, step: step)
    }
  }

  private func finishRecovery(_ id: String) async throws(LifeboatError) {
    let left = await release(id)
    guard left.isEmpty else {
      throw LifeboatError(.restoreIncomplete, "the cluster is healthy, but cleanup failed: \(left.map(\.message).joined(separator: "; "))")
    }
  }

  static func describe(_ s: NodeRestoreStatus) -> String {
    var parts: [String] = []
    if let lease = s.lease { parts.append("lease of \(lease.line)") }
    for j in s.journals {
      parts.append("journal of restore \(j.id) (\(j.name)): \(j.steps.last ?? "empty")" + (j.swapped ? ", swapped" : j.staged ? ", staged" : ""))
    }
    if let etcd = s.etcd { parts.append("etcd PID \(etcd.pid)" + (etcd.dataDir.map { " on \($0)" } ?? "")) } else { parts.append("etcd not running") }
    if let problem = s.dataDirProblem { parts.append("WRONG DATA DIR: \(problem)") }
    return "\(s.address): " + (s.isClear && s.dataDirProblem == nil ? "clear; " : "") + parts.joined(separator: "; ")
  }

  /// The backend quota a restored member starts with: at least 2 GiB, and 1.5x the db.
  static func quota(forDB size: UInt64) -> Int64 {
    let db = Int64(clamping: size)
    return max(Int64(2) << 30, db.addingReportingOverflow(db / 2).partialValue)
  }
}
