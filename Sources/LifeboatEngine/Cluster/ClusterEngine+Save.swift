import Foundation
import LifeboatCore

/// `snapshot save --config`: one snapshot, from one healthy member, written by the first
/// reachable node into its snapshot dir (uploaded once when S3 is configured), then copied by
/// every other node from it, verified against the manifest: every etcd node holds the same bytes
/// under the same name. The copy and catch-up steps serve the recurring run too.
extension ClusterEngine {
  public struct SaveReport: Sendable {
    public var saved: NodeSaveReport
    public var savedOn: String
    /// Nodes that hold a verified copy (the saving node included).
    public var copies: [String]
    /// Nodes that could not get a copy (or did not answer), and why.
    public var failures: [LifeboatError]
    /// Nodes that share one snapshot directory (a shared mount): one line each.
    public var shared: [String] = []
  }

  public func save(name: SnapshotName?, upload: Bool = true, compression: Compression? = nil) async throws(LifeboatError) -> SaveReport {
    var (up, down) = try await reachable(refusingDuringRestore: "save", sameEncryption: true)
    let request = NodeSaveRequest(
      name: name?.value, upload: upload && context.config.backup.s3 != nil,
      // The caller's cluster.yml decides, not the one the agent read when it started.
      compression: compression ?? context.config.lifeboat.compression)
    // The first agent that takes the save; one that is stopping refused it before doing anything
    // and counts as down (it answered the health check a moment before).
    var saving: (node: any Node, report: NodeSaveReport)?
    while saving == nil, !up.isEmpty {
      let first = up.removeFirst()
      do {
        saving = (first, try await first.saveSnapshot(request))
      } catch where error.underlying == .stopping {
        progress("\(first.address) is stopping: the next node saves")
        down.append(error.on(first.address, step: "save"))
      }
    }
    guard let (first, saved) = saving else {
      throw .unavailable("no agent answers: \(down.map(\.message).joined(separator: "; "))")
    }
    progress("saved \(saved.snapshot.name) on \(first.address) from \(saved.member) (\(saved.endpoint))")
    if let remote = saved.remote { progress("uploaded \(remote)") }
    let copied = await copy(try SnapshotName(saved.snapshot.name), from: first, to: up, pruneAfter: false)
    return SaveReport(
      saved: saved, savedOn: first.address, copies: [first.address] + copied.copies, failures: down + copied.failures,
      shared: copied.shared)
  }

  /// Has every node of `targets` receive `name` from `source`'s agent, all at once. Nodes whose
  /// snapshot directory is one already written (a shared mount: the same `.lifeboat-dir-id`)
  /// hold the same bytes already: counted as copies, never written twice.
  func copy(_ name: SnapshotName, from source: any Node, to targets: [any Node], pruneAfter: Bool) async
    -> (copies: [String], failures: [LifeboatError], shared: [String])
  {
    let peer = agentURL(of: source)
    let (writers, sharers) = await byDirectory([source] + targets)
    var copies: [String] = []
    var failures: [LifeboatError] = []
    let writing = targets.filter { t in writers.contains { $0.address == t.address } }
    let results = await settle(writing, "copy") { (node) async throws(LifeboatError) in
      try await node.receiveSnapshot(name, from: peer, pruneAfter: pruneAfter)
    }
    for (node, result) in zip(writing, results) {
      switch result {
      case .success:
        copies.append(node.address)
        progress("copied to \(node.address)")
      case .failure(let error): failures.append(error)
      }
    }
    var shared: [String] = []
    for (node, owner) in sharers where owner == source.address || copies.contains(owner) {
      copies.append(node)
      shared.append("\(node) shares its snapshot directory with \(owner): the copy is there already")
      progress(shared.last!)
    }
    return (copies, failures, shared)
  }

  /// Splits `nodes` (in order) into the first node of each snapshot directory and the others,
  /// each with the address of the node it shares with. Nodes that do not answer stay writers.
  func byDirectory(_ nodes: [any Node]) async -> (writers: [any Node], sharers: [(String, String)]) {
    let healths = await settle(nodes, "health") { (node) async throws(LifeboatError) in try await node.health() }
    var owner: [String: String] = [:]
    var writers: [any Node] = []
    var sharers: [(String, String)] = []
    for (node, result) in zip(nodes, healths) {
      if case .success(let health) = result, let id = health.snapshotDirID {
        if let first = owner[id] {
          sharers.append((node.address, first))
          continue
        }
        owner[id] = node.address
      }
      writers.append(node)
    }
    return (writers, sharers)
  }

  /// Copies to every reachable target the verified recurring snapshots `source` keeps and the
  /// target lacks (a node that was down during an earlier run). Returns what failed.
  func catchUpPeers(from source: any Node, to targets: [any Node]) async -> [LifeboatError] {
    guard let kept = try? await source.listSnapshots().filter({ s in
      s.dbSHA256 != nil && (try? SnapshotName(s.name)).flatMap(RetentionCandidate.recurringTime) != nil
    }), !kept.isEmpty else { return [] }
    var failures: [LifeboatError] = []
    for target in targets {
      guard let theirs = try? await target.listSnapshots() else { continue }
      let have = Set(theirs.map(\.name))
      for missing in kept where !have.contains(missing.name) {
        do throws(LifeboatError) {
          _ = try await target.receiveSnapshot(try SnapshotName(missing.name), from: agentURL(of: source), pruneAfter: true)
          logger.info("copied \(missing.name) to \(target.address), which missed it")
        } catch { failures.append(error.on(target.address, step: "catching up \(missing.name)")) }
      }
    }
    return failures
  }
}
