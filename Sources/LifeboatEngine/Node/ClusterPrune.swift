import Foundation
import LifeboatCore
import SnapshotStores

/// `lifeboat snapshot prune --config cluster.yml`: the config's retention policy applied once to
/// the whole cluster: every etcd node's snapshot directory (through the agents) and the S3
/// bucket (with or without a folder). Decisions are made on the union of what every place holds,
/// so every place keeps the same snapshots.
public struct ClusterPrune: Sendable {
  public let context: ClusterContext
  public let nodes: [any Node]
  /// Prune the config's S3 bucket too (default), or only `nodes`.
  public let includeS3: Bool
  public var progress: @Sendable (String) -> Void

  public init(
    context: ClusterContext, nodes: [any Node], includeS3: Bool = true, progress: @escaping @Sendable (String) -> Void = { _ in }
  ) {
    self.context = context
    self.nodes = nodes
    self.includeS3 = includeS3
    self.progress = progress
  }

  public struct Report: Sendable {
    public var policy: RetentionPolicy
    public var decisions: [RetentionDecision]
    /// Where each snapshot is: node addresses and `s3`.
    public var locations: [String: [String]]
    /// What was deleted where (empty with `dryRun`).
    public var deleted: [String: [String]]
    /// Places that could not be listed or pruned, and why.
    public var failures: [String]
  }

  public func run(dryRun: Bool, includeManual: Bool, now: Date = Date()) async throws(LifeboatError) -> Report {
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
    var reachable: [any Node] = []
    for node in nodes {
      do {
        for s in try await node.listSnapshots() {
          add(try SnapshotName(s.name), created: s.created, verified: s.dbSHA256 != nil, at: node.address)
        }
        reachable.append(node)
      } catch { failures.append("\(node.address): \(error.message)") }
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
    if !dryRun {
      let doomed = decisions.filter { !$0.keep }.map(\.name)
      for node in reachable {
        for name in doomed where locations[name.value, default: []].contains(node.address) {
          do {
            try await node.deleteSnapshot(name)
            deleted[name.value, default: []].append(node.address)
            progress("deleted \(name) on \(node.address)")
          } catch { failures.append("delete \(name) on \(node.address): \(error.message)") }
        }
      }
      if let s3 {
        let inS3 = s3Snapshots.filter { s in doomed.contains(s.name) }
        if !inS3.isEmpty {
          do {
            try await withS3(s3) { (store) async throws(LifeboatError) in
              for s in inS3 {
                // The manifest first: a listed archive without one is never mistaken for complete.
                if s.kind == .archive { try await store.delete(s.name.manifestFileName) }
                try await store.delete(s.object.key)
                deleted[s.name.value, default: []].append("s3")
                progress("deleted \(s.path)")
              }
            }
          } catch { failures.append("\(s3.location): \(error.message)") }
        }
      }
    }
    return Report(policy: policy, decisions: decisions, locations: locations, deleted: deleted, failures: failures)
  }
}
