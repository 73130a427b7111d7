import Foundation
import LifeboatCore
import SnapshotStores

/// `snapshot prune --config`: the retention policy applied once to the whole cluster, every
/// node's snapshot directory and the S3 bucket (with or without a folder). Decisions are made on
/// the union of what every place holds, so every place keeps the same snapshots; unless the
/// bucket has a policy of its own (`lifeboat.s3_keep_*`): then the nodes' policy decides over
/// what the nodes hold, and the bucket's over what the bucket holds.
extension ClusterEngine {
  public struct PruneReport: Sendable {
    public var policy: RetentionPolicy
    public var decisions: [RetentionDecision]
    /// The bucket's own policy and decisions (`lifeboat.s3_keep_*`); nil when it follows the nodes'.
    public var s3Policy: RetentionPolicy?
    public var s3Decisions: [RetentionDecision] = []
    /// Where each snapshot is: node addresses and `s3`.
    public var locations: [String: [String]]
    /// What was deleted where (empty with `dryRun`).
    public var deleted: [String: [String]]
    /// Places that could not be listed or pruned, and why.
    public var failures: [String]
    /// Objects kept under Object Lock ("s3://…/x.zip is locked until …: kept"): not failures.
    public var locked: [String] = []
    /// Unfinished multipart uploads older than a day (a save killed with -9) that were aborted.
    public var abortedUploads: [String] = []
  }

  /// Prunes `nodes` (this engine's, by default) and, with `includeS3`, the config's bucket.
  public func prune(dryRun: Bool, includeManual: Bool, includeS3: Bool = true, now: Date = Date()) async throws(LifeboatError)
    -> PruneReport
  {
    if !dryRun { _ = try await reachable(refusingDuringRestore: "prune") }
    var candidates: [SnapshotName: RetentionCandidate] = [:]
    var nodeCandidates: [SnapshotName: RetentionCandidate] = [:]
    var s3Candidates: [SnapshotName: RetentionCandidate] = [:]
    var locations: [String: [String]] = [:]
    var failures: [String] = []
    func add(_ name: SnapshotName, created: Date, verified: Bool, at place: String) {
      let taken = RetentionCandidate.recurringTime(name) ?? created
      for index in 0..<2 {
        var table = index == 0 ? candidates : (place == "s3" ? s3Candidates : nodeCandidates)
        var candidate = table[name] ?? RetentionCandidate(name: name, taken: taken, verified: false)
        candidate.verified = candidate.verified || verified
        table[name] = candidate
        if index == 0 { candidates = table } else if place == "s3" { s3Candidates = table } else { nodeCandidates = table }
      }
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
    let s3Policy = context.config.s3RetentionPolicy
    let decisions = policy.decide(Array((s3Policy == nil ? candidates : nodeCandidates).values), now: now, includeManual: includeManual)
    let s3Decisions = s3Policy?.decide(Array(s3Candidates.values), now: now, includeManual: includeManual) ?? []
    var deleted: [String: [String]] = [:]
    var locked: [String] = []
    var abortedUploads: [String] = []
    func report() -> PruneReport {
      PruneReport(
        policy: policy, decisions: decisions, s3Policy: s3Policy, s3Decisions: s3Decisions, locations: locations, deleted: deleted,
        failures: failures, locked: locked, abortedUploads: abortedUploads)
    }
    let doomed = Set(decisions.filter { !$0.keep }.map(\.name))
    let doomedInS3 = s3Policy == nil ? doomed : Set(s3Decisions.filter { !$0.keep }.map(\.name))
    guard !dryRun else {
      // What Object Lock will keep, said before anything is deleted.
      if let s3 {
        do {
          try await withS3(s3) { (store) async throws(LifeboatError) in
            for s in s3Snapshots where doomedInS3.contains(s.name) {
              if let object = try await SnapshotCatalog(store: store).lockedObject(of: s, now: now), let lock = object.lock {
                locked.append("\(store.location)/\(object.key) is \(lock.description): it will be kept")
              }
            }
          }
        } catch { failures.append("\(s3.location): \(error.message)") }
      }
      return report()
    }
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
    let inS3 = s3Snapshots.filter { doomedInS3.contains($0.name) }
    if let s3, !inS3.isEmpty {
      do {
        try await withS3(s3) { (store) async throws(LifeboatError) in
          for s in inS3 {
            do throws(LifeboatError) {
              try await SnapshotCatalog(store: store).delete(s, now: now)
              deleted[s.name.value, default: []].append("s3")
              progress("deleted \(s.path)")
            } catch {
              guard error.underlying == .locked else { throw error }
              locked.append(error.message)
              progress(error.message)
            }
          }
        }
      } catch { failures.append("\(s3.location): \(error.message)") }
    }
    if let s3 {
      // What a save killed with -9 left in the bucket: aborted once it is a day old.
      do {
        abortedUploads = try await withS3(s3) { (store) async throws(LifeboatError) in
          try await store.abortUploads(startedBefore: now.addingTimeInterval(-86400))
        }
        for line in abortedUploads { progress("aborted the unfinished upload \(line)") }
      } catch { failures.append("\(s3.location): \(error.message)") }
    }
    return report()
  }
}
