import Foundation
import LifeboatCore

/// Rollback and cleanup of a restore.
extension ClusterEngine {
  /// Stop every etcd, put every old data dir back, then start every etcd (in that order: see
  /// `Node.rollback`), and wait for the old cluster to be healthy. Exits 7 when all of it
  /// worked, 8 (naming what did not) otherwise.
  func rollBack(_ id: String, cause: LifeboatError) async throws(LifeboatError) -> Never {
    var failures: [LifeboatError] = []
    func phase<R: Sendable>(_ step: String, _ body: @escaping @Sendable (any Node) async throws(LifeboatError) -> R) async -> [R] {
      var done: [R] = []
      for result in await settle(nodes, step, body) {
        switch result {
        case .success(let value): done.append(value)
        case .failure(let error): failures.append(error)
        }
      }
      return done
    }
    failures += await stopAll(nodes).failures()
    if failures.isEmpty {
      for report in await phase("rollback", { (node) async throws(LifeboatError) in try await node.rollback(id) }) {
        progress("rollback: \(report.address): " + (report.actions.isEmpty ? "nothing to undo" : report.actions.joined(separator: ", ")))
      }
    }
    if failures.isEmpty {
      _ = await phase("start") { (node) async throws(LifeboatError) in
        try await node.startEtcd(quotaBackendBytes: nil)
        progress("rollback: \(node.address): etcd started on its old data")
      }
    }
    guard failures.isEmpty else {
      throw LifeboatError(
        .restoreIncomplete,
        "restore failed (\(cause.message)) and rollback did not finish: \(failures.map(\.message).joined(separator: "; ")); old data dirs are kept as <data dir>.lifeboat-old-\(id); bring the node back and run `lifeboat snapshot restore --recover`",
        node: failures[0].node, step: "rollback")
    }
    do throws(LifeboatError) {
      let consistent = try await check.waitConsistent(nodes: nodes)
      progress("rollback: \(nodes.count) members healthy on their old data, HashKV \(consistent.hash) equal at revision \(consistent.revision)")
    } catch {
      throw LifeboatError(
        .restoreIncomplete, "restore failed (\(cause.message)); every old data dir is back, but the cluster is not healthy: \(error.message)",
        step: "rollback")
    }
    removePendingStateFile(id: id)
    let left = await release(id)
    throw LifeboatError(.restoreRolledBack, "restore failed and every node was rolled back: \(cause.message)", node: cause.node, step: cause.step)
      .leaving(left)
  }

  /// Starts etcd on every node where it is not running (after a failed stop phase); returns the
  /// nodes where that failed (or that did not answer).
  func restartStopped() async -> [LifeboatError] {
    let failures = await settle(nodes, "start") { (node) async throws(LifeboatError) in
      guard try await node.health().etcdRunning == false else { return }
      try await node.startEtcd(quotaBackendBytes: nil)
    }.failures()
    for error in failures { progress("could not start etcd again: \(error.message)") }
    return failures
  }

  /// Ends restore `id` on every node: downloads and staging leftovers removed, then the journal
  /// and the lease. Returns where that failed (the lease stays there, for `recover`).
  func release(_ id: String) async -> [LifeboatError] {
    await settle(nodes, "cleanup") { (node) async throws(LifeboatError) in
      try await node.finish(id)
      try await node.releaseLease(id)
    }.failures()
  }
}
