import EtcdClient
import Foundation
import LifeboatCore
import SnapshotStores

/// `snapshot restore`: plan, then the steps below, each a function from one typed state to the
/// next. The restore lease is taken on every node first (one restore at a time). Nothing changes
/// before `stop`; a failed stop starts again what was stopped; from `swap` on (the point of no
/// return) a failure rolls every node back in three phases. Every node journals its steps, so a
/// crash anywhere leaves what `recover` needs.
extension ClusterEngine {
  public func restore(_ plan: RestorePlan, options: RestoreOptions) async throws(LifeboatError) -> RestoreReport {
    let lease = RestoreLease(id: plan.id, snapshot: plan.name.value)
    try await takeLeases(lease)
    // While this command runs it renews the lease every few seconds, so that `recover` from
    // another host can tell a running restore from an interrupted one.
    let renewal = Task { [nodes] in
      var renew = lease
      renew.renewal = true
      while !Task.isCancelled {
        try? await Task.sleep(for: Self.leaseRenewal)
        for node in nodes where !Task.isCancelled { try? await node.takeLease(renew) }
      }
    }
    defer { renewal.cancel() }
    let staged: RestoreState.Staged
    do throws(LifeboatError) {
      try await preflight(plan)
      let fetched = try await fetch(plan, useLocalState: options.useLocalState)
      // The state file to install waits next to the current one from now on, so that a recovery
      // that finishes this restore (every node staged) installs it too.
      if let bytes = fetched.stateFile { try writePendingStateFile(bytes, id: plan.id) }
      Failpoints.crash("cli", at: "fetch.done")
      staged = try await stage(fetched)
      Failpoints.crash("cli", at: "stage.done")
      try Self.checkCancellation()
    } catch {
      // Interrupted or failed before any etcd stopped: clean up even when interrupted. What a
      // node could not clean up stays for `recover`, the pending state file with it.
      let left = await shielded { await release(plan.id) }
      if left.isEmpty { removePendingStateFile(id: plan.id) }
      // An interrupt shows as whatever the step in flight made of it: say what it was.
      let cause = Task.isCancelled ? LifeboatError(.failure, "interrupted", underlying: .cancelled) : error
      throw cause.prefixed("restore refused, nothing changed").leaving(left)
    }
    // From the first stop on, an interrupt no longer stops the restore: it finishes, or rolls
    // every node back, as it would without one (a half-done restore is the worst outcome).
    return try await Interruption.deferring("the restore is past its first stop and runs to its end (finished or rolled back)") {
      () async throws(LifeboatError) -> RestoreReport in
      try await shielded { () async throws(LifeboatError) -> RestoreReport in try await finishFromStop(staged) }
    }
  }

  /// Stop, swap, start, check and complete: run to the end whatever the caller's task does.
  private func finishFromStop(_ staged: RestoreState.Staged) async throws(LifeboatError) -> RestoreReport {
    let plan = staged.fetched.plan
    let stopped: RestoreState.Stopped
    do throws(LifeboatError) {
      stopped = try await stop(staged)
      Failpoints.crash("cli", at: "swap.stopped")
    } catch {
      let restarted = await restartStopped()
      let left = restarted.isEmpty ? await release(plan.id) : restarted
      if left.isEmpty { removePendingStateFile(id: plan.id) }
      let outcome =
        restarted.isEmpty
        ? "restore stopped before any data dir moved; etcd started again where it was stopped"
        : "restore stopped before any data dir moved, but etcd could not be started again everywhere"
      throw error.prefixed(outcome).leaving(left)
    }
    // The point of no return: data dirs move from here on.
    let checked: RestoreState.Checked
    do throws(LifeboatError) {
      let swapped = try await swap(stopped)
      Failpoints.crash("cli", at: "swap.moved")
      let started = try await start(swapped)
      Failpoints.crash("cli", at: "swap.started")
      checked = try await verify(started)
      Failpoints.crash("cli", at: "check.done")
    } catch {
      progress("failed: \(error.message); rolling back every node")
      try await rollBack(plan.id, cause: error)
    }
    return try await complete(checked)
  }

  /// An interrupt before the first stop ends the restore there, as a failure that cleans up.
  static func checkCancellation() throws(LifeboatError) {
    if Task.isCancelled { throw LifeboatError(.failure, "interrupted", underlying: .cancelled) }
  }

  /// How often a running restore renews its lease, and how long `recover` waits after the last
  /// renewal before it takes a lease held from another host for abandoned.
  static let leaseRenewal: Duration = .seconds(3)
  static let leaseAbandonedAfter: Double = 20

  /// The lease on every node, in config order, or on none (those taken are given back).
  func takeLeases(_ lease: RestoreLease) async throws(LifeboatError) {
    var taken: [any Node] = []
    for node in nodes {
      do throws(LifeboatError) {
        try await node.takeLease(lease)
        taken.append(node)
      } catch {
        for held in taken { try? await held.releaseLease(lease.id) }
        throw error.on(node.address, step: "lease")
      }
    }
    progress("lease: restore \(lease.id) holds every node")
  }

  // MARK: - Plan

  public func plan(_ options: RestoreOptions, id: String = RestoreID.new()) async throws(LifeboatError) -> RestorePlan {
    let runtime = context.config.lifeboat.runtime.kind.rawValue
    if !options.fromS3 {
      // The first node (in config order) that has exactly this name serves it.
      var unreachable: [String] = []
      for node in nodes {
        let snapshots: [NodeSnapshot]
        do { snapshots = try await node.listSnapshots() } catch {
          unreachable.append(error.message)
          continue
        }
        if let found = snapshots.first(where: { $0.name == options.name.value }) {
          if let problem = found.manifestProblem { throw LifeboatError.verification(problem).on(node.address) }
          var plan = RestorePlan(
            id: id, name: options.name, source: .node(node.address), server: node.address, members: members, runtime: runtime,
            archiveSize: found.size, archiveSHA256: found.archiveSHA256, dbSHA256: found.dbSHA256, dbSize: found.dbSize,
            revision: found.revision)
          if found.encrypted == true {
            // encrypt_local: the identity must open the node's copy here, before any node changes;
            // the serving node gets it with its fetch and decrypts as it reads.
            guard let text = options.ageIdentities else {
              throw .usage("\(options.name) on \(node.address) is encrypted (age): give --age-identity with a key it was encrypted to")
            }
            let identities = try AgeIdentity.parse(text, origin: "--age-identity")
            _ = try await AgeDecryptingSource(base: try await node.openSnapshot(options.name).archive, identities: identities)
            plan.ageIdentities = text
          }
          return plan
        }
      }
      if context.config.backup.s3 == nil {
        // Nodes that did not answer may hold it: that is not "not found".
        if !unreachable.isEmpty {
          throw .unavailable(
            "snapshot \(options.name) is on no reachable etcd node and no S3 is configured; unreachable: \(unreachable.joined(separator: ", "))")
        }
        throw .notFound("snapshot \(options.name) is on no etcd node and no S3 is configured")
      }
    }
    guard let s3 = try context.s3Configuration() else {
      throw .usage("\(context.config.path) has no s3backupconfig: cannot restore from S3")
    }
    let identities = try options.ageIdentities.map { (text) throws(LifeboatError) in
      try AgeIdentity.parse(text, origin: "--age-identity")
    }
    let (found, plainSize) = try await withS3(s3) { (store) async throws(LifeboatError) in
      let catalog = SnapshotCatalog(store: store, identities: identities ?? [])
      let found = try await catalog.find(options.name)
      // An encrypted archive: the identity must open its header (and the header's MAC hold)
      // here, before any node is touched.
      let size = found.encrypted ? try await catalog.source(of: found).size : found.size
      return (found, size)
    }
    if let problem = found.manifestProblem { throw .verification(problem) }
    var plan = RestorePlan(
      id: id, name: options.name, source: .s3(found.path), server: members[0].address, members: members, runtime: runtime,
      archiveSize: plainSize, archiveSHA256: found.manifest?.archiveSHA256, dbSHA256: found.manifest?.dbSHA256,
      dbSize: found.manifest?.dbSize, revision: found.manifest?.revision)
    plan.ageIdentities = found.encrypted ? options.ageIdentities : nil
    return plan
  }

  /// `--dry-run`: the archive the plan would restore, read in full and checked as the restore
  /// would (structure, CRC-32, etcd's trailer, manifest), where it is. Returns the checks made.
  public func checkArchive(_ plan: RestorePlan) async throws(LifeboatError) -> String {
    let report: VerifyReport
    switch plan.source {
    case .node(let address):
      guard let node = nodes.first(where: { $0.address == address }) else { throw .usage("\(address) is not an etcd node") }
      if plan.encrypted, let text = plan.ageIdentities {
        // The node cannot decrypt: read its copy through its agent and check it here.
        let identities = try AgeIdentity.parse(text, origin: "--age-identity")
        let (stored, manifest) = try await node.openSnapshot(plan.name)
        let sealed = HashingSource(stored)
        let plain = try await AgeDecryptingSource(base: sealed, identities: identities)
        let snapshot = SnapshotCatalog.described(
          plan.name, kind: .archive, object: StoredObject(key: plan.name.encryptedArchiveFileName, size: plain.size, modified: Date()),
          location: address, manifest: manifest)
        report = try await SnapshotVerifier().verify(snapshot, sealed: sealed, plain: plain)
      } else {
        report = try await node.verifySnapshot(plan.name)
      }
    case .s3:
      guard let s3 = try context.s3Configuration() else { throw .usage("\(context.config.path) has no s3backupconfig") }
      let identities = try plan.ageIdentities.map { (text) throws(LifeboatError) in
        try AgeIdentity.parse(text, origin: "--age-identity")
      }
      report = try await withS3(s3) { (store) async throws(LifeboatError) in
        let catalog = SnapshotCatalog(store: store, identities: identities ?? [])
        return try await SnapshotVerifier().verify(try await catalog.find(plan.name), in: catalog)
      }
    }
    return "checked (" + report.checks.joined(separator: "; ") + ")"
  }

  // MARK: - Steps before the point of no return

  /// Every node reachable and ready: disk, restore tool, TLS material.
  func preflight(_ plan: RestorePlan) async throws(LifeboatError) {
    let dbEstimate = plan.dbSize ?? plan.archiveSize.multipliedReportingOverflow(by: 4).partialValue
    let preflights = try await onEach(nodes, "preflight") { (node) async throws(LifeboatError) in
      _ = try await node.health()
      return try await node.preflight(dbSize: dbEstimate, archiveSize: plan.archiveSize)
    }
    let problems = preflights.flatMap { p in p.problems.map { "\(p.address): \($0)" } }
    guard problems.isEmpty else { throw .unavailable("preflight failed: \(problems.joined(separator: "; "))") }
    progress("preflight: \(nodes.count) nodes reachable, disk, restore tool and TLS material present")
  }

  /// The serving node obtains the archive; every other node downloads it from that node's agent;
  /// each unzips and hashes it in the same pass. All databases must be equal (and match the
  /// manifest); the archive's state file comes back with the serving node's report.
  func fetch(_ plan: RestorePlan, useLocalState: Bool) async throws(LifeboatError) -> RestoreState.Fetched {
    guard let server = nodes.first(where: { $0.address == plan.server }) else {
      throw .usage("the serving node \(plan.server) is not an etcd node")
    }
    let first = try await onEach([server], "fetch") { (node) async throws(LifeboatError) in
      try await node.fetch(
        FetchRequest(
          id: plan.id, name: plan.name.value, origin: plan.source.origin, expectedArchiveSHA256: plan.archiveSHA256,
          expectedDBSHA256: plan.dbSHA256, wantStateFile: !useLocalState, ageIdentities: plan.ageIdentities))
    }[0]
    progress("fetch: \(server.address) has \(plan.name) (db sha256 \(first.dbSHA256), revision \(first.revision))")
    let peer = agentURL(of: server)
    let others = try await onEach(nodes.filter { $0.address != server.address }, "fetch") { (node) async throws(LifeboatError) in
      let report = try await node.fetch(
        FetchRequest(
          id: plan.id, name: plan.name.value, origin: .peer(peer), expectedArchiveSHA256: first.archiveSHA256,
          expectedDBSHA256: first.dbSHA256))
      progress("fetch: \(node.address) downloaded from \(plan.server), db sha256 \(report.dbSHA256)")
      return report
    }
    let reports = [first] + others
    guard Set(reports.map(\.dbSHA256)).count == 1 else {
      throw .verification("the nodes' copies differ: \(reports.map { "\($0.address) \($0.dbSHA256)" }.joined(separator: ", "))")
    }
    if let expected = plan.dbSHA256 ?? first.manifest?.dbSHA256, expected != first.dbSHA256 {
      throw .verification("the database's SHA-256 is \(first.dbSHA256), the manifest says \(expected)")
    }
    progress("verify: every node holds the same database (sha256 \(first.dbSHA256), etcd trailer \(first.trailer))")
    // The archive's state file is checked now, before anything stops: a missing or broken one
    // must not surface after the data was replaced.
    if let bytes = first.stateFile?.bytes {
      do throws(LifeboatError) {
        _ = try RKEState.parse(Data(bytes), path: "the state file in \(plan.name)").certificate("kube-ca")
      } catch {
        throw .verification("\(error.message) (use --use-local-state to keep the local one)")
      }
    }
    return RestoreState.Fetched(plan: plan, reports: reports, stateFile: first.stateFile?.bytes)
  }

  /// Every node restores the database into a staging dir next to its data dir.
  func stage(_ fetched: RestoreState.Fetched) async throws(LifeboatError) -> RestoreState.Staged {
    let request = StageRequest(id: fetched.plan.id, initialCluster: context.config.initialCluster, token: ClusterConfig.clusterToken)
    _ = try await onEach(nodes, "stage") { (node) async throws(LifeboatError) in
      try await node.stage(request)
      progress("stage: \(node.address) restored the snapshot into its staging dir")
    }
    return RestoreState.Staged(fetched: fetched)
  }

  /// Every etcd stops (all before any data dir moves: see `Node.rollback`).
  func stop(_ staged: RestoreState.Staged) async throws(LifeboatError) -> RestoreState.Stopped {
    for (node, result) in zip(nodes, await stopAll(nodes)) {
      if case .failure(let error) = result { throw error }
      progress("swap: etcd stopped on \(node.address)")
    }
    return RestoreState.Stopped(staged: staged)
  }

  // MARK: - Steps after the point of no return (rolled back on failure)

  func swap(_ stopped: RestoreState.Stopped) async throws(LifeboatError) -> RestoreState.Swapped {
    let id = stopped.staged.fetched.plan.id
    let swaps = try await onEach(nodes, "swap") { (node) async throws(LifeboatError) in try await node.swap(id) }
    var old: [String: String] = [:]
    for s in swaps { old[s.address] = s.oldDataDir }
    let kept = Set(swaps.compactMap { $0.oldDataDir.map { ($0 as NSString).lastPathComponent } }).sorted()
    progress("swap: old data dirs kept as \(kept.joined(separator: ", "))")
    return RestoreState.Swapped(stopped: stopped, oldDataDirs: old)
  }

  /// Every etcd starts on the restored data, with a backend quota of at least 1.5x the db.
  func start(_ swapped: RestoreState.Swapped) async throws(LifeboatError) -> RestoreState.Swapped {
    let quota = Self.quota(forDB: swapped.stopped.staged.fetched.dbSize)
    _ = try await onEach(nodes, "start") { (node) async throws(LifeboatError) in
      try await node.startEtcd(quotaBackendBytes: quota)
      progress("swap: etcd started on \(node.address)")
    }
    return swapped
  }

  func verify(_ swapped: RestoreState.Swapped) async throws(LifeboatError) -> RestoreState.Checked {
    let revision = swapped.stopped.staged.fetched.snapshotRevision
    let result = try await self.check.checkRestored(snapshotRevision: revision, nodes: nodes)
    // And on every node, the etcd serving is the one on the restored data dir. An agent lost
    // now (its etcd passed the cluster check) is no reason to undo a good restore: it is left
    // to `recover`, which confirms it once the agent is back.
    let confirmations = await settle(nodes, "check") { (node) async throws(LifeboatError) in
      try await node.confirmRestored(swapped.stopped.staged.fetched.plan.id)
    }.failures()
    if let wrong = confirmations.first(where: { $0.underlying != .unreachable }) { throw wrong }
    progress("check: \(members.count) members healthy, HashKV \(result.hash) equal at revision \(result.revision) (snapshot revision \(revision))")
    return RestoreState.Checked(
      swapped: swapped, hash: result.hash, revision: result.revision, unconfirmed: confirmations.map { "not confirmed: \($0.message)" })
  }

  /// After a good check: Lifeboat's lock keys that came back with the snapshot go, the archive's
  /// state file is installed, downloads are removed, the hooks run.
  func complete(_ checked: RestoreState.Checked) async throws(LifeboatError) -> RestoreReport {
    let fetched = checked.swapped.stopped.staged.fetched
    let plan = fetched.plan
    var removed: Int64 = 0
    do { removed = try await self.check.removeLockKeys() } catch {
      logger.warning("could not remove Lifeboat's lock keys: \(error.message)")
    }
    var stateFile: (installed: String, backup: String?)?
    if let installed = try installPendingStateFile(id: plan.id) {
      stateFile = installed
      progress("state file: installed the archive's state file as \(installed.installed)" + (installed.backup.map { ", old one kept as \($0)" } ?? ""))
    }
    let left = await release(plan.id)
    if !left.isEmpty { progress("cleanup: \(left.map(\.message).joined(separator: "; "))") }
    var report = RestoreReport(
      plan: plan, revision: checked.revision, hash: checked.hash, oldDataDirs: checked.swapped.oldDataDirs, stateFile: stateFile,
      lockKeysRemoved: removed)
    report.cleanupLeft = checked.unconfirmed + left.map(\.message)
    try await runHooks(plan)
    return report
  }

  /// `<state file>.<id>.pending`: the archive's state file, written (0600) before the point of
  /// no return, installed after a good check (or by recovery that finishes), removed by rollback.
  func pendingStateFile(id: String) -> String { "\(context.config.stateFilePath).\(id).pending" }

  func writePendingStateFile(_ bytes: [UInt8], id: String) throws(LifeboatError) {
    try AtomicFile.write(bytes, to: pendingStateFile(id: id), mode: 0o600, overwrite: true)
  }

  func removePendingStateFile(id: String) {
    try? FileManager.default.removeItem(atPath: pendingStateFile(id: id))
  }

  /// Moves the pending state file into place, the current one kept as `<state file>.<id>.bak`.
  func installPendingStateFile(id: String) throws(LifeboatError) -> (installed: String, backup: String?)? {
    let pending = pendingStateFile(id: id)
    guard FileManager.default.fileExists(atPath: pending) else { return nil }
    let path = context.config.stateFilePath
    var backup: String?
    if FileManager.default.fileExists(atPath: path) {
      let target = "\(path).\(id).bak"
      guard let old = FileManager.default.contents(atPath: path) else { throw .storage("cannot read \(path)") }
      if !FileManager.default.fileExists(atPath: target) {
        try AtomicFile.write([UInt8](old), to: target, mode: 0o600, overwrite: false)
      }
      backup = target
    }
    guard Foundation.rename(pending, path) == 0 else {
      throw .storage("cannot move \(pending) to \(path): \(String(cString: strerror(errno)))")
    }
    try syncDirectory(of: path)
    return (path, backup)
  }

  func runHooks(_ plan: RestorePlan) async throws(LifeboatError) {
    for hook in context.config.lifeboat.postRestoreHooks {
      let result = try await ProcessRunner.run(
        "/bin/sh", ["-c", hook],
        environment: ["LIFEBOAT_SNAPSHOT": plan.name.value, "LIFEBOAT_CONFIG": context.config.path, "LIFEBOAT_RESTORE_ID": plan.id],
        timeout: .seconds(3600))
      guard result.status == 0 else {
        throw LifeboatError(
          .failure, "restored, but the post-restore hook `\(hook)` exited \(result.status): \(result.lastLine)", step: "hook",
          underlying: .process)
      }
      progress("hook: `\(hook)` done")
    }
  }
}
