import EtcdClient
import Foundation
import LifeboatCore
import Logging
import SnapshotStores

/// What the operator asked for.
public struct RestoreOptions: Sendable {
  public var name: SnapshotName
  /// Take the archive from the config's S3 bucket even when a node has it locally.
  public var fromS3 = false
  /// Keep the local state file even when the archive holds one.
  public var useLocalState = false
  /// Stop after printing the plan.
  public var dryRun = false
  public init(name: SnapshotName) { self.name = name }
}

/// The resolved plan, printed before anything happens.
public struct RestorePlan: Sendable {
  public var id: String
  public var name: SnapshotName
  /// `local on <node>` or `s3://bucket/folder/<name>.zip`.
  public var origin: String
  /// The node that obtains the archive and serves it to the others.
  public var server: String
  public var members: [EtcdNode]
  public var runtime: String
  public var archiveSize: UInt64
  /// From the snapshot's manifest, when it has one (RKE archives have none).
  public var archiveSHA256: String?
  public var dbSHA256: String?
  public var dbSize: UInt64?
  public var revision: Int64?

  public var lines: [String] {
    var lines = [
      "restore \(name) (id \(id))",
      "  from:    \(origin)"
        + (dbSHA256.map { ", revision \(revision ?? 0), db \(dbSize ?? 0) bytes, sha256 \($0)" }
          ?? " (no manifest: every node's copies must agree with the serving node's)"),
      "  served by the agent on \(server) to the others over mutual TLS",
      "  runtime: \(runtime)",
    ]
    for m in members { lines.append("  member \(m.memberName) on \(m.address): peer \(m.peerURL), data dir \(m.dataDir)") }
    return lines
  }
}

/// What a finished restore did.
public struct RestoreReport: Sendable {
  public var plan: RestorePlan
  public var revision: Int64
  public var hash: UInt32
  /// Where each node's old data dir is now.
  public var oldDataDirs: [String: String]
  /// The state file installed from the archive and where the old one went.
  public var stateFile: (installed: String, backup: String?)?
  /// Lifeboat lock keys removed after the restore.
  public var lockKeysRemoved: Int64
}

/// Restores a whole cluster from one snapshot, in the order of DESIGN.md "Restore": plan,
/// preflight, fetch (one node serves the others; every node verifies), stage, swap, check,
/// then the state file and hooks. Nothing changes before the swap; a failure in swap or check
/// rolls every node back.
public struct ClusterRestore: Sendable {
  public let context: ClusterContext
  /// One per etcd node, in the config's order.
  public let nodes: [any Node]
  public var logger: Logger
  /// Progress lines, as they happen.
  public var progress: @Sendable (String) -> Void

  public init(
    context: ClusterContext, nodes: [any Node], logger: Logger = Logger(label: "lifeboat.restore"),
    progress: @escaping @Sendable (String) -> Void = { _ in }
  ) {
    self.context = context
    self.nodes = nodes
    self.logger = logger
    self.progress = progress
  }

  var members: [EtcdNode] { context.config.etcdNodes }

  // MARK: - 1. Plan

  public func plan(_ options: RestoreOptions, id: String = ClusterRestore.newID()) async throws(LifeboatError) -> RestorePlan {
    let runtime = context.config.lifeboat.runtime.kind.rawValue
    if !options.fromS3 {
      // The first node (in config order) that has exactly this name serves it.
      var unreachable: [String] = []
      for (index, node) in nodes.enumerated() {
        let snapshots: [NodeSnapshot]
        do { snapshots = try await node.listSnapshots() } catch {
          unreachable.append("\(node.address) (\(error.message))")
          continue
        }
        if let found = snapshots.first(where: { $0.name == options.name.value }) {
          return RestorePlan(
            id: id, name: options.name, origin: "local on \(node.address)", server: members[index].address,
            members: members, runtime: runtime, archiveSize: found.size, archiveSHA256: found.archiveSHA256,
            dbSHA256: found.dbSHA256, dbSize: found.dbSize, revision: found.revision)
        }
      }
      if context.config.backup.s3 == nil {
        let extra = unreachable.isEmpty ? "" : "; unreachable: \(unreachable.joined(separator: ", "))"
        throw .notFound("snapshot \(options.name) is on no etcd node and no S3 is configured\(extra)")
      }
    }
    guard let s3 = try context.s3Configuration() else {
      throw .usage("\(context.config.path) has no s3backupconfig: cannot restore from S3")
    }
    let found = try await withS3(s3) { (store) async throws(LifeboatError) in
      try await SnapshotCatalog(store: store).find(options.name)
    }
    if let problem = found.manifestProblem { throw .verification(problem) }
    return RestorePlan(
      id: id, name: options.name, origin: found.path, server: members[0].address, members: members, runtime: runtime,
      archiveSize: found.size, archiveSHA256: found.manifest?.archiveSHA256, dbSHA256: found.manifest?.dbSHA256,
      dbSize: found.manifest?.dbSize, revision: found.manifest?.revision)
  }

  public static func newID(_ date: Date = Date()) -> String {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
    return formatter.string(from: date)
  }

  // MARK: - 2.–8.

  public func run(_ plan: RestorePlan, options: RestoreOptions) async throws(LifeboatError) -> RestoreReport {
    guard let serverIndex = members.firstIndex(where: { $0.address == plan.server }) else {
      throw .usage("the serving node \(plan.server) is not an etcd node")
    }
    // 2. Preflight: every node reachable and ready; nothing changed yet.
    let dbEstimate = plan.dbSize ?? plan.archiveSize * 4
    let preflights = try await onEveryNode("preflight") { (node) async throws(LifeboatError) in
      _ = try await node.health()
      return try await node.preflight(dbSize: dbEstimate, archiveSize: plan.archiveSize)
    }
    let problems = preflights.flatMap { p in p.problems.map { "\(p.address): \($0)" } }
    guard problems.isEmpty else { throw .unavailable("preflight failed, nothing changed: \(problems.joined(separator: "; "))") }
    progress("preflight: \(nodes.count) nodes reachable, disk, restore tool and TLS material present")

    // 3. Fetch: the server first, then every other node from it; all digests must agree.
    let server = nodes[serverIndex]
    let origin: SnapshotOrigin = plan.origin.hasPrefix("local on ") ? .local : .s3
    var reports: [FetchReport] = []
    var archiveStateFile: [UInt8]?
    do throws(LifeboatError) {
      let first = try await server.fetch(
        FetchRequest(id: plan.id, name: plan.name.value, origin: origin, expectedArchiveSHA256: plan.archiveSHA256,
          expectedDBSHA256: plan.dbSHA256))
      progress("fetch: \(server.address) has \(plan.name) (db sha256 \(first.dbSHA256), revision \(first.revision))")
      let peer = members[serverIndex].agentURL
      let others = nodes.enumerated().filter { $0.offset != serverIndex }.map(\.element)
      reports = try await onEach(others, "fetch") { (node) async throws(LifeboatError) in
        let report = try await node.fetch(
          FetchRequest(id: plan.id, name: plan.name.value, origin: .peer(peer), expectedArchiveSHA256: first.archiveSHA256,
            expectedDBSHA256: first.dbSHA256))
        progress("fetch: \(node.address) downloaded from \(plan.server), db sha256 \(report.dbSHA256)")
        return report
      }
      reports.insert(first, at: 0)
      let digests = Set(reports.map(\.dbSHA256))
      guard digests.count == 1 else {
        let list = reports.map { "\($0.address) \($0.dbSHA256)" }.joined(separator: ", ")
        throw LifeboatError.verification("the nodes' copies differ: \(list)")
      }
      if let expected = plan.dbSHA256 ?? first.manifest?.dbSHA256, expected != first.dbSHA256 {
        throw LifeboatError.verification("the database's SHA-256 is \(first.dbSHA256), the manifest says \(expected)")
      }
      progress("verify: every node holds the same database (sha256 \(first.dbSHA256), etcd trailer \(first.trailer))")
      // The archive's state file is read and checked now, before anything stops: a missing
      // or broken one must not surface after the data was replaced.
      if !options.useLocalState, let bytes = try await server.fetchedStateFile(plan.id) {
        do throws(LifeboatError) {
          let parsed = try RKEState.parse(Data(bytes), path: "the state file in \(plan.name)")
          _ = try parsed.certificate("kube-ca")
        } catch {
          throw LifeboatError.verification("\(error.message) (use --use-local-state to keep the local one)")
        }
        archiveStateFile = bytes
      }

      // 4. Stage.
      let initialCluster = context.config.initialCluster
      _ = try await onEveryNode("stage") { (node) async throws(LifeboatError) in
        try await node.stage(StageRequest(id: plan.id, initialCluster: initialCluster, token: ClusterConfig.clusterToken))
        progress("stage: \(node.address) restored the snapshot into its staging dir")
      }
    } catch {
      await cleanUp(plan.id)
      throw LifeboatError(error.kind, "restore refused, nothing changed: \(error.message)")
    }
    let snapshotRevision = reports[0].revision
    let dbSize = reports[0].dbSize

    // 5. Swap and 6. check; any failure rolls every node back.
    var oldDirs: [String: String] = [:]
    let check: (hash: UInt32, revision: Int64)
    var swapBegan = false
    do throws(LifeboatError) {
      do throws(LifeboatError) {
        _ = try await onEveryNode("stop") { (node) async throws(LifeboatError) in
          try await node.stopEtcd()
          progress("swap: etcd stopped on \(node.address)")
        }
      } catch {
        // No data dir moved yet: start what was stopped, and report that nothing changed.
        await restartStopped()
        await cleanUp(plan.id)
        throw LifeboatError(error.kind, "restore stopped before any data dir moved; etcd started again where it was stopped: \(error.message)")
      }
      swapBegan = true
      let swaps = try await onEveryNode("swap") { (node) async throws(LifeboatError) in try await node.swap(plan.id) }
      for s in swaps { oldDirs[s.address] = s.oldDataDir }
      progress("swap: old data dirs kept as \(Set(swaps.compactMap { $0.oldDataDir.map { ($0 as NSString).lastPathComponent } }).sorted().joined(separator: ", "))")
      let quota = max(Int64(2) << 30, Int64(dbSize) + Int64(dbSize) / 2)
      _ = try await onEveryNode("start") { (node) async throws(LifeboatError) in
        try await node.startEtcd(quotaBackendBytes: quota)
        progress("swap: etcd started on \(node.address)")
      }
      check = try await checkCluster(snapshotRevision: snapshotRevision)
      progress("check: \(members.count) members healthy, HashKV \(check.hash) equal at revision \(check.revision) (snapshot revision \(snapshotRevision))")
    } catch {
      guard swapBegan else { throw error }
      progress("failed: \(error.message); rolling back every node")
      try await rollBack(plan.id, cause: error)
    }

    // 8. After a good check.
    var removed: Int64 = 0
    do {
      removed = try await EtcdClient.with(
        endpoint: try context.etcdConnection(certificate: "kube-admin").endpoints[0],
        configuration: try context.etcdConnection(certificate: "kube-admin").client
      ) { client in try await client.deletePrefix(Self.lockPrefix) }
    } catch {
      logger.warning("could not remove Lifeboat's lock keys: \(error)")
    }
    var stateFile: (installed: String, backup: String?)?
    if let bytes = archiveStateFile {
      stateFile = try installStateFile(bytes, id: plan.id)
      progress("state file: installed the archive's state file as \(stateFile!.installed)" + (stateFile!.backup.map { ", old one kept as \($0)" } ?? ""))
    }
    await cleanUp(plan.id)
    let report = RestoreReport(
      plan: plan, revision: check.revision, hash: check.hash, oldDataDirs: oldDirs, stateFile: stateFile,
      lockKeysRemoved: removed)
    try runHooks(plan)
    return report
  }

  /// Lifeboat's own lock keys (recurring snapshots), which a restored snapshot brings back.
  public static let lockPrefix = "/lifeboat/lock/"

  // MARK: - Check

  /// Every member healthy with a leader, the member list as planned, `HashKV` equal on every
  /// member at one revision, that revision no lower than the snapshot's.
  func checkCluster(snapshotRevision: Int64) async throws(LifeboatError) -> (hash: UInt32, revision: Int64) {
    let connection = try context.etcdConnection(certificate: "kube-admin")
    let deadline = ContinuousClock.now + .seconds(context.config.lifeboat.healthTimeoutSeconds)
    var problem = "no answer yet"
    while ContinuousClock.now < deadline {
      do {
        return try await checkOnce(connection, snapshotRevision: snapshotRevision)
      } catch let error where error.kind == .verification {
        throw error
      } catch {
        problem = error.message
      }
      // An etcd that exited will not come back by waiting: fail now, naming the node.
      for node in nodes {
        if let health = try? await node.health(), health.etcdRunning == false {
          throw .unavailable("etcd exited on \(node.address) after the swap (see its etcd log)")
        }
      }
      try? await Task.sleep(for: .milliseconds(500))
    }
    throw .unavailable("the restored cluster did not become healthy within \(context.config.lifeboat.healthTimeoutSeconds) s: \(problem)")
  }

  private func checkOnce(_ connection: EtcdConnection, snapshotRevision: Int64) async throws(LifeboatError) -> (hash: UInt32, revision: Int64) {
    var statuses: [EtcdMemberStatus] = []
    for endpoint in connection.endpoints {
      do {
        let status = try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { c in try await c.status() }
        guard status.hasLeader else { throw LifeboatError.unavailable("\(endpoint) has no leader") }
        statuses.append(status)
      } catch let error as LifeboatError { throw error } catch { throw .unavailable("\(endpoint): \(error)") }
    }
    let list: [EtcdMember]
    do {
      list = try await EtcdClient.with(endpoint: connection.endpoints[0], configuration: connection.client) { c in try await c.memberList() }
    } catch { throw .unavailable("member list: \(error)") }
    let planned = Set(members.map { "\($0.memberName)=\($0.peerURL)" })
    let actual = Set(list.map { "\($0.name)=\($0.peerURLs.sorted().joined(separator: ","))" })
    guard planned == actual else {
      if list.contains(where: { $0.name.isEmpty }) { throw .unavailable("members still joining") }
      throw .verification("the member list is \(actual.sorted()), planned \(planned.sorted())")
    }
    let revision = statuses.map(\.revision).min() ?? 0
    guard revision >= snapshotRevision else {
      throw .verification("the restored revision \(revision) is lower than the snapshot's \(snapshotRevision)")
    }
    var hashes: [UInt32] = []
    for endpoint in connection.endpoints {
      do {
        let h = try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { c in try await c.hashKV(revision: revision) }
        hashes.append(h.hash)
      } catch { throw .unavailable("HashKV on \(endpoint): \(error)") }
    }
    guard Set(hashes).count == 1 else {
      throw .verification("the members' HashKV at revision \(revision) differ: \(hashes)")
    }
    return (hashes[0], revision)
  }

  // MARK: - Rollback and cleanup

  /// Stop every etcd, put every old data dir back, then start every etcd (in that order: see
  /// `Node.rollback`), and wait for the old cluster to be healthy.
  private func rollBack(_ id: String, cause: LifeboatError) async throws(LifeboatError) -> Never {
    var failures: [String] = []
    func collect(_ step: String, _ body: @escaping @Sendable (any Node) async throws(LifeboatError) -> String?) async {
      await withTaskGroup(of: String?.self) { group in
        for node in nodes {
          group.addTask {
            do throws(LifeboatError) {
              if let line = try await body(node) { progress("rollback: \(node.address): \(line)") }
              return nil
            } catch { return "\(step) on \(node.address): \(error.message)" }
          }
        }
        for await failure in group { if let failure { failures.append(failure) } }
      }
    }
    await collect("stop") { (node) async throws(LifeboatError) in
      try await node.stopEtcd()
      return nil
    }
    if failures.isEmpty {
      await collect("rollback") { (node) async throws(LifeboatError) in
        let report = try await node.rollback(id)
        return report.actions.isEmpty ? "nothing to undo" : report.actions.joined(separator: ", ")
      }
    }
    if failures.isEmpty {
      await collect("start") { (node) async throws(LifeboatError) in
        try await node.startEtcd(quotaBackendBytes: nil)
        return "etcd started on its old data"
      }
    }
    guard failures.isEmpty else {
      throw LifeboatError(
        .restoreIncomplete,
        "restore failed (\(cause.message)) and rollback did not finish: \(failures.joined(separator: "; ")); old data dirs are kept as <data dir>.lifeboat-old-\(id)")
    }
    do throws(LifeboatError) {
      try await waitHealthy()
    } catch {
      throw LifeboatError(
        .restoreIncomplete,
        "restore failed (\(cause.message)); every old data dir is back, but the cluster is not healthy: \(error.message)")
    }
    await cleanUp(id)
    throw LifeboatError(.restoreRolledBack, "restore failed and every node was rolled back: \(cause.message)")
  }

  /// Starts etcd on every node where it is not running (after a failed stop phase).
  private func restartStopped() async {
    await withTaskGroup(of: Void.self) { group in
      for node in nodes {
        group.addTask {
          guard let health = try? await node.health(), health.etcdRunning == false else { return }
          do throws(LifeboatError) { try await node.startEtcd(quotaBackendBytes: nil) } catch {
            progress("could not start etcd again on \(node.address): \(error.message)")
          }
        }
      }
    }
  }

  /// Every member answers with a leader (after a rollback).
  func waitHealthy() async throws(LifeboatError) {
    let connection = try context.etcdConnection(certificate: "kube-admin")
    let selector = MemberSelector(connection: connection)
    let deadline = ContinuousClock.now + .seconds(context.config.lifeboat.healthTimeoutSeconds)
    var problem = "no answer"
    while ContinuousClock.now < deadline {
      guard let current = await selector.clusterProblem() else { return }
      problem = current
      try? await Task.sleep(for: .milliseconds(500))
    }
    throw .unavailable(problem)
  }

  private func cleanUp(_ id: String) async {
    await withTaskGroup(of: Void.self) { group in
      for node in nodes {
        group.addTask { do { try await node.finish(id) } catch { logger.debug("cleanup on \(node.address): \(error)") } }
      }
    }
  }

  // MARK: - State file and hooks

  func installStateFile(_ bytes: [UInt8], id: String) throws(LifeboatError) -> (installed: String, backup: String?) {
    let path = context.config.stateFilePath
    var backup: String?
    if FileManager.default.fileExists(atPath: path) {
      let target = "\(path).\(id).bak"
      guard let old = FileManager.default.contents(atPath: path) else { throw .storage("cannot read \(path)") }
      try AtomicFile.write([UInt8](old), to: target, mode: 0o600, overwrite: false)
      backup = target
    }
    try AtomicFile.write(bytes, to: path, mode: 0o600, overwrite: true)
    return (path, backup)
  }

  func runHooks(_ plan: RestorePlan) throws(LifeboatError) {
    for hook in context.config.lifeboat.postRestoreHooks {
      let result = try ProcessRunner.run(
        "/bin/sh", ["-c", hook],
        environment: ["LIFEBOAT_SNAPSHOT": plan.name.value, "LIFEBOAT_CONFIG": context.config.path, "LIFEBOAT_RESTORE_ID": plan.id])
      guard result.status == 0 else {
        throw .failure("restored, but the post-restore hook `\(hook)` exited \(result.status): \(result.lastLine)")
      }
      progress("hook: `\(hook)` done")
    }
  }

  // MARK: - Fan-out

  private func onEveryNode<R: Sendable>(
    _ step: String, _ body: @escaping @Sendable (any Node) async throws(LifeboatError) -> R
  ) async throws(LifeboatError) -> [R] {
    try await onEach(nodes, step, body)
  }

  /// Runs `body` on every node at once; results in node order; the first failure (in node order)
  /// is thrown once all have finished.
  private func onEach<R: Sendable>(
    _ subset: [any Node], _ step: String, _ body: @escaping @Sendable (any Node) async throws(LifeboatError) -> R
  ) async throws(LifeboatError) -> [R] {
    let results = await withTaskGroup(of: (Int, Result<R, LifeboatError>).self) { group in
      for (index, node) in subset.enumerated() {
        group.addTask {
          do throws(LifeboatError) { return (index, .success(try await body(node))) } catch { return (index, .failure(error)) }
        }
      }
      var all: [(Int, Result<R, LifeboatError>)] = []
      for await r in group { all.append(r) }
      return all.sorted { $0.0 < $1.0 }.map(\.1)
    }
    var values: [R] = []
    for (index, result) in results.enumerated() {
      switch result {
      case .success(let value): values.append(value)
      case .failure(let error):
        let node = subset[index].address
        throw LifeboatError(error.kind, error.message.hasPrefix(node) ? "\(step): \(error.message)" : "\(step) on \(node): \(error.message)")
      }
    }
    return values
  }
}
