import Foundation
import LifeboatCore
import SnapshotStores

/// `snapshot prune --config`: the retention policy applied once to the whole cluster, every
/// node's snapshot directory and the S3 bucket (with or without a folder). Decisions are made on
/// the union of what every place holds, so every place keeps the same snapshots.
extension ClusterEngine {
  public struct PruneReport: Sendable {
    public var policy: RetentionPolicy
    public var decisions: [RetentionDecision]
    /// Where each snapshot is: node addresses and `s3`.
    public var locations: [String: [String]]
    /// What was deleted where (empty with `dryRun`).
    public var deleted: [String: [String]]
    /// Places that could not be listed or pruned, and why.
    public var failures: [String]
  }

  /// Prunes `nodes` (this engine's, by default) and, with `includeS3`, the config's bucket.
  public func prune(dryRun: Bool, includeManual: Bool, includeS3: Bool = true, now: Date = Date()) async throws(LifeboatError)
    -> PruneReport
  {
    if !dryRun { _ = try await reachable(refusingDuringRestore: "prune") }
    var candidates: [SnapshotName: RetentionCandidate] = [:]
    var locations: [String: [String]] = [:]
    var failures: [String] = []
    func add(_ name: SnapshotName, created: Date, verified: Bool, at place: String) {
      let taken = RetentionCandidate.recurringTime(name) ?? created
      var candidate = candidates[name] ?? RetentionCandidate(name: name, taken: taken, verified: false)
      candidate.verified = candidate.verified || verified
      candidates[name] = candidate
      locations[name.value, default: []].append(place)
    }
    var listed: [any Node] = []
    for (node, result) in zip(nodes, await settle(nodes, "list") { (node) async throws(LifeboatError) in try await node.listSnapshots() }) {
      switch result {
      case .success(let snapshots):
        for s in snapshots { add(try SnapshotName(s.name), created: s.created, verified: s.dbSHA256 != nil, at: node.address) }
        listed.append(node)
      case .failure(let error): failures.append(error.message)
      }
    }
    let s3 = includeS3 ? try context.s3Configuration() : nil
    var s3Snapshots: [StoredSnapshot] = []
    if let s3 {
      do {
        s3Snapshots = try await withS3(s3) { (store) async throws(LifeboatError) in try await SnapshotCatalog(store: store).list() }
        for s in s3Snapshots { add(s.name, created: s.created, verified: s.manifest != nil && s.manifestProblem == nil, at: "s3") }
      } catch { failures.append("\(s3.location): \(error.message)") }
    }
    let policy = context.config.retentionPolicy
    let decisions = policy.decide(Array(candidates.values), now: now, includeManual: includeManual)
    var deleted: [String: [String]] = [:]
    guard !dryRun else {
      return PruneReport(policy: policy, decisions: decisions, locations: locations, deleted: deleted, failures: failures)
    }
    let doomed = Set(decisions.filter { !$0.keep }.map(\.name))
    // Nodes that share one snapshot directory: deleted once, by the first of them.
    let (writers, sharers) = await byDirectory(listed)
    for node in writers {
      for name in doomed.sorted() where locations[name.value, default: []].contains(node.address) {
        do {
          try await node.deleteSnapshot(name)
          deleted[name.value, default: []].append(node.address)
          progress("deleted \(name) on \(node.address)")
        } catch { failures.append(error.on(node.address, step: "delete \(name)").message) }
      }
    }
    for (address, owner) in sharers {
      for name in doomed where deleted[name.value, default: []].contains(owner) {
        deleted[name.value, default: []].append(address)
      }
    }
    let inS3 = s3Snapshots.filter { doomed.contains($0.name) }
    if let s3, !inS3.isEmpty {
      do {
        try await withS3(s3) { (store) async throws(LifeboatError) in
          for s in inS3 {
            try await SnapshotCatalog(store: store).delete(s)
            deleted[s.name.value, default: []].append("s3")
            progress("deleted \(s.path)")
          }
        }
      } catch { failures.append("\(s3.location): \(error.message)") }
    }
    return PruneReport(policy: policy, decisions: decisions, locations: locations, deleted: deleted, failures: failures)
  }
}
