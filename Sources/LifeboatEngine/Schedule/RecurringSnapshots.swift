import EtcdClient
import Foundation
import LifeboatCore
import Logging
import Metrics

/// What `GET /v1/schedule` and `lifeboat status` show.
public struct ScheduleState: Codable, Sendable, Equatable {
  public var enabled: Bool
  public var schedule: String
  public var nextRun: Date?
  public var lastRun: Date?
  /// `ok`, `no-quorum`, `run by another agent`, `paused: ...`, `skipped: ...` or `failed: ...`.
  public var lastResult: String?
  public var lastSnapshot: String?
  public var lastSuccess: Date?
  public var lastDurationSeconds: Double?
  public var lastSizeBytes: UInt64?
  /// Runs this agent carried out, failed, and skipped (a run still in progress, a restore).
  public var runs: Int = 0
  public var failures: Int = 0
  public var skips: Int = 0
  public var running: Bool = false
}

/// Recurring snapshots, run by every agent, once per slot for the whole cluster: the agents
/// take a lease-backed lock in etcd (`/lifeboat/lock/<cluster>`), guarded by the stamp of the
/// last successful slot (`/lifeboat/lock/<cluster>.last`), so one agent runs each slot and the
/// others see it done. The holder checks its disk, saves (one pass, uploaded to S3 once), uploads
/// what earlier runs could not, has every other agent copy the archive (each prunes its own
/// directory), prunes its own directory and S3, and stamps the slot. A failed run is retried
/// with backoff until the next slot. Without quorum there is no lock: each agent snapshots its
/// own member locally as `<time>_<node>_etcd`. While a restore has files on the node, runs pause.
public actor RecurringSnapshots {
  let context: ClusterContext
  let local: LocalNode
  /// The other etcd nodes (through their agents).
  let peers: [any Node]
  let clock: @Sendable () -> Date
  let logger: Logger
  private var state: ScheduleState
  private let started: Date
  private let metrics = Instruments()

  struct Instruments {
    let runs = Counter(label: "lifeboat_snapshot_runs_total")
    let failures = Counter(label: "lifeboat_snapshot_failures_total")
    let skips = Counter(label: "lifeboat_snapshot_skips_total")
    let lastSuccess = Gauge(label: "lifeboat_snapshot_last_success_timestamp_seconds")
    let lastDuration = Gauge(label: "lifeboat_snapshot_last_duration_seconds")
    let lastSize = Gauge(label: "lifeboat_snapshot_last_size_bytes")
    let kept = Gauge(label: "lifeboat_snapshots_kept")
  }

  public init(
    context: ClusterContext, local: LocalNode, peers: [any Node], clock: @escaping @Sendable () -> Date = { Date() },
    logger: Logger = Logger(label: "lifeboat.schedule")
  ) {
    self.context = context
    self.local = local
    self.peers = peers
    self.clock = clock
    self.logger = logger
    self.started = clock()
    let description: String
    switch context.config.recurringSchedule {
    case .interval(let seconds): description = "every \(Int(seconds)) s"
    case .cron(let cron, let zone): description = "cron \(cron) (\(zone.identifier))"
    }
    self.state = ScheduleState(enabled: context.config.backup.enabled, schedule: description)
  }

  public var current: ScheduleState { state }

  /// Runs until cancelled: sleeps to each slot and runs it (the first slot one interval after
  /// start, as RKE's); a failed run is retried after 5 s, 10 s, 20 s ... (at most 5 minutes) as
  /// long as the next slot is further away. Cancelling it also cancels a run started by `runNow`.
  public func loop() async {
    guard state.enabled else { return }
    await withTaskCancellationHandler {
      await loopBody()
    } onCancel: {
      Task { await self.cancelActiveRun() }
    }
  }

  private func loopBody() async {
    let schedule = context.config.recurringSchedule
    var after = started
    while !Task.isCancelled {
      let slot = schedule.nextRun(after: after, start: started)
      state.nextRun = slot
      guard await sleep(until: slot) else { return }
      var backoff: TimeInterval = 5
      while await run(slot: slot, manual: false) == .failed {
        let retry = clock().addingTimeInterval(backoff)
        guard retry < schedule.nextRun(after: slot, start: started) else { break }
        state.nextRun = retry
        guard await sleep(until: retry) else { return }
        backoff = min(backoff * 2, 300)
      }
      after = max(slot, clock())
      state.nextRun = schedule.nextRun(after: after, start: started)
    }
  }

  private func sleep(until date: Date) async -> Bool {
    let wait = date.timeIntervalSince(clock())
    if wait > 0 { try? await Task.sleep(for: .milliseconds(Int64(wait * 1000))) }
    return !Task.isCancelled
  }

  private var activeRun: Task<Outcome, Never>?

  private func cancelActiveRun() { activeRun?.cancel() }

  /// A run now (`POST /v1/schedule/run`): the slot is the current time; it ignores the last
  /// slot's stamp and does not write one (a manual run does not stand in for a scheduled one).
  public func runNow() async -> ScheduleState {
    _ = await run(slot: clock(), manual: true)
    return state
  }

  enum Outcome { case done, failed, skipped }

  /// Runs in a task of its own, so that stopping the agent cancels it even when an HTTP request
  /// started it.
  private func run(slot: Date, manual: Bool) async -> Outcome {
    if state.running {
      return skip("skipped: the previous run is still in progress")
    }
    if local.restoreInProgress() {
      return skip("paused: a restore is in progress")
    }
    state.running = true
    let task = Task { await self.perform(slot: slot, manual: manual) }
    activeRun = task
    let outcome = await task.value
    activeRun = nil
    state.running = false
    return outcome
  }

  private func perform(slot: Date, manual: Bool) async -> Outcome {
    let begin = clock()
    var outcome = Outcome.done
    do {
      let result = try await runUnlocked(slot: slot, manual: manual)
      state.lastResult = result.result
      if let saved = result.saved {
        state.lastSnapshot = saved.name
        state.lastSizeBytes = saved.size
        state.runs += 1
        state.lastSuccess = clock()
        metrics.runs.increment()
        metrics.lastSuccess.record(clock().timeIntervalSince1970)
        metrics.lastSize.record(Double(saved.size))
      } else if let cluster = result.clusterLastSuccess {
        // Another agent ran the slot: the cluster's last success is what this agent reports too.
        metrics.lastSuccess.record(cluster.timeIntervalSince1970)
        return .done
      }
    } catch let failure as RunFailure {
      // The snapshot was saved and the slot stamped; what failed after it is reported, and the
      // next run catches up (uploads), so no retry.
      record(failure.error)
      state.runs += 1
      state.lastSnapshot = failure.saved.name
      outcome = .done
    } catch let error as LifeboatError {
      record(error)
      outcome = .failed
    } catch is CancellationError {
      record(.failure("cancelled (the agent is stopping)"))
      outcome = .failed
    } catch {
      record(.failure("\(error)"))
      outcome = .failed
    }
    state.lastRun = begin
    state.lastDurationSeconds = clock().timeIntervalSince(begin)
    metrics.lastDuration.record(state.lastDurationSeconds ?? 0)
    if let kept = try? await local.listSnapshots() { metrics.kept.record(Double(kept.count)) }
    return outcome
  }

  private func record(_ error: LifeboatError) {
    state.failures += 1
    metrics.failures.increment()
    state.lastResult = "failed: \(error.message)"
    logger.error("recurring snapshot failed: \(error.message)")
  }

  /// A run that saved its snapshot but failed afterwards (copies, uploads, pruning).
  struct RunFailure: Error {
    var saved: NodeSnapshot
    var error: LifeboatError
  }

  private func skip(_ reason: String) -> Outcome {
    state.skips += 1
    metrics.skips.increment()
    state.lastResult = reason
    logger.warning("recurring snapshot \(reason)")
    return .skipped
  }

  struct RunResult {
    var result: String
    var saved: NodeSnapshot?
    var clusterLastSuccess: Date?
  }

  private func runUnlocked(slot: Date, manual: Bool) async throws -> RunResult {
    let config = context.config
    let connection = try context.etcdConnection(certificate: local.node.certificateName)
    guard let index = config.etcdNodes.firstIndex(where: { $0.address == local.node.address }) else {
      throw LifeboatError.usage("\(local.node.address) is not an etcd node")
    }
    let own = connection.endpoints[index]
    let status: EtcdMemberStatus
    do { status = try await EtcdClient.with(endpoint: own, configuration: connection.client) { try await $0.status() } } catch {
      throw LifeboatError.unavailable("own member \(own) does not answer: \(error)")
    }
    if Failpoints.fire("schedule.slow") { try? await Task.sleep(for: .seconds(4)) }
    try Task.checkCancellation()
    guard status.hasLeader else {
      // No quorum: no lock either. Each agent keeps a snapshot of its own member, locally.
      try await checkDisk(dbSize: UInt64(max(0, status.dbSize)))
      let base = SnapshotNaming(safeTimestamp: config.backup.safeTimestamp).recurringName(at: slot).value
      let node = config.nodes.first { $0.address == local.node.address }
      let label = (node?.hostnameOverride?.lowercased() ?? local.node.address)
        .map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "-" }
      let name = base.dropLast("_etcd".count) + "_" + String(label) + "_etcd"
      let saved = try await local.saveSnapshot(NodeSaveRequest(name: String(name), upload: false, ownMemberOnly: true))
      logger.warning("no quorum: saved \(saved.snapshot.name) from this node's own member only")
      return RunResult(result: "no-quorum", saved: saved.snapshot)
    }
    let lock: Lock
    switch try await takeLock(slot: slot, manual: manual, endpoint: own, connection: connection) {
    case .held(let last): return RunResult(result: "run by another agent", saved: nil, clusterLastSuccess: last)
    case .taken(let taken): lock = taken
    }
    // Renew the lock under a fresh lease every minute while the run lasts (a lease of 3
    // minutes: a crashed holder blocks runs only that long).
    let renewal = Task { [lock] in
      var current = lock.lease
      while !Task.isCancelled {
        try? await Task.sleep(for: .seconds(60))
        if Task.isCancelled { break }
        if let next = await renew(lock, current: current, endpoint: own, connection: connection) { current = next }
      }
      return current
    }
    let saved: NodeSnapshot
    var problems: [String]
    do throws(LifeboatError) {
      (saved, problems) = try await holdingLock(slot: slot, dbSize: UInt64(max(0, status.dbSize)))
    } catch {
      renewal.cancel()
      await release(await renewal.value, endpoint: own, connection: connection)
      throw error
    }
    renewal.cancel()
    let lease = await renewal.value
    if !manual {
      // The slot is done (its snapshot exists): stamp it while still holding the lock.
      do {
        let stamped = try await EtcdClient.with(endpoint: own, configuration: connection.client) { c in
          try await c.putIfValue(lock.lockKey, equals: lock.holder, puts: [(lock.stampKey, lock.stamp, 0)])
        }
        if !stamped { problems.append("the lock was lost before the slot could be stamped") }
      } catch { problems.append("could not stamp the slot: \(error)") }
    }
    await release(lease, endpoint: own, connection: connection)
    if !problems.isEmpty {
      throw RunFailure(saved: saved, error: .storage("saved \(saved.name), but: \(problems.joined(separator: "; "))"))
    }
    logger.info("recurring snapshot \(saved.name) saved, copied to \(peers.count) nodes")
    return RunResult(result: "ok", saved: saved)
  }

  /// Free disk for the expected archive (the last one's size, or the db's when there is none,
  /// and a margin) before a run: a run that would fill the disk is refused instead.
  private func checkDisk(dbSize: UInt64) async throws(LifeboatError) {
    let disk = await local.snapshotDiskState()
    let expected = disk.newestArchive > 0 ? disk.newestArchive : dbSize
    let needed = expected + expected / 5 + (64 << 20)
    guard disk.free >= needed else {
      throw .storage("not enough free disk in \(local.node.snapshotDir): \(disk.free) bytes free, \(needed) expected for the next archive")
    }
  }

  /// Save, upload, copies, prune. Throws only when no snapshot was saved; problems after the
  /// save are returned.
  private func holdingLock(slot: Date, dbSize: UInt64) async throws(LifeboatError) -> (NodeSnapshot, [String]) {
    let config = context.config
    try await checkDisk(dbSize: dbSize)
    let name = SnapshotNaming(safeTimestamp: config.backup.safeTimestamp).recurringName(at: slot)
    var problems: [String] = []
    var saved: NodeSaveReport
    do throws(LifeboatError) {
      saved = try await local.saveSnapshot(NodeSaveRequest(name: name.value, upload: config.backup.s3 != nil))
    } catch {
      // S3 refused before anything was written (the save checks the bucket first; a storage
      // error): keep the snapshot locally all the same; the next run uploads it.
      let written = ((try? await local.listSnapshots()) ?? []).contains { $0.name == name.value }
      guard config.backup.s3 != nil, error.kind == .storage, !written else { throw error }
      saved = try await local.saveSnapshot(NodeSaveRequest(name: name.value, upload: false))
      saved.uploadError = error.message
    }
    if let uploadError = saved.uploadError { problems.append("upload: \(uploadError)") } else if config.backup.s3 != nil {
      // Uploads of earlier runs that never reached S3.
      do throws(LifeboatError) {
        let caught = try await local.uploadMissing()
        if !caught.isEmpty { logger.info("uploaded earlier snapshots that had not reached S3: \(caught.joined(separator: ", "))") }
      } catch { problems.append("catching up uploads: \(error.message)") }
    }
    for peer in peers {
      do throws(LifeboatError) { _ = try await peer.copySnapshot(name, from: local.node.agentURL, applyRetention: true) } catch {
        problems.append("copy to \(peer.address): \(error.message)")
      }
    }
    do throws(LifeboatError) {
      let pruned = try await ClusterPrune(context: context, nodes: [local], includeS3: saved.uploadError == nil)
        .run(dryRun: false, includeManual: false)
      problems += pruned.failures
    } catch { problems.append("prune: \(error.message)") }
    // Copies an earlier run could not deliver (a node that was down): every recurring snapshot
    // this node keeps and a reachable peer lacks.
    let kept = ((try? await local.listSnapshots()) ?? []).filter {
      $0.dbSHA256 != nil && $0.name != name.value && RetentionCandidate.recurringTime((try? SnapshotName($0.name)) ?? name) != nil
    }
    if !kept.isEmpty {
      for peer in peers {
        guard let theirs = try? await peer.listSnapshots() else { continue }
        let have = Set(theirs.map(\.name))
        for missing in kept where !have.contains(missing.name) {
          do throws(LifeboatError) {
            _ = try await peer.copySnapshot(try SnapshotName(missing.name), from: local.node.agentURL, applyRetention: true)
            logger.info("copied \(missing.name) to \(peer.address), which missed it")
          } catch { problems.append("catching up \(missing.name) on \(peer.address): \(error.message)") }
        }
      }
    }
    return (saved.snapshot, problems)
  }

  private func renew(_ lock: Lock, current: Int64, endpoint: EtcdEndpoint, connection: EtcdConnection) async -> Int64? {
    do {
      return try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { c -> Int64? in
        let next = try await c.grantLease(ttl: Lock.ttl)
        guard try await c.putIfValue(lock.lockKey, equals: lock.holder, puts: [(lock.lockKey, lock.holder, next)]) else {
          try? await c.revokeLease(next)
          return nil
        }
        try? await c.revokeLease(current)
        return next
      }
    } catch {
      logger.warning("could not renew the snapshot lock: \(error)")
      return nil
    }
  }

  /// Revokes the lease (the lock key goes with it), in a task of its own so that a cancelled
  /// run still releases its lock.
  private func release(_ lease: Int64, endpoint: EtcdEndpoint, connection: EtcdConnection) async {
    let logger = self.logger
    await Task.detached {
      do { try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { try await $0.revokeLease(lease) } } catch {
        logger.warning("could not release the snapshot lock (it expires with its lease): \(error)")
      }
    }.value
  }

  struct Lock: Sendable {
    static let ttl: Int64 = 180
    var lease: Int64
    var lockKey: String
    var holder: String
    var stampKey: String
    var stamp: String
  }

  enum LockAttempt { case taken(Lock), held(lastSuccess: Date?) }

  /// The lock, unless another agent holds it or already ran this slot: for cron schedules (whose
  /// slots are the same times on every agent) the stamp is at or after the slot; for intervals
  /// (each agent counts from its own start) the stamp is less than half an interval old.
  private func takeLock(slot: Date, manual: Bool, endpoint: EtcdEndpoint, connection: EtcdConnection) async throws -> LockAttempt {
    let lockKey = "/lifeboat/lock/\(context.config.clusterName)"
    let stampKey = lockKey + ".last"
    let schedule = context.config.recurringSchedule
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let stamp = formatter.string(from: slot)
    let holder = local.node.address + "@" + formatter.string(from: clock())
    do {
      return try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { client -> LockAttempt in
        let existing = try await client.range(prefix: stampKey).first { String(decoding: $0.key, as: UTF8.self) == stampKey }
        let last = existing.flatMap { formatter.date(from: String(decoding: $0.value, as: UTF8.self)) }
        if !manual, let last {
          switch schedule {
          case .cron: if last >= slot { return .held(lastSuccess: last) }
          case .interval(let seconds): if slot.timeIntervalSince(last) < seconds / 2 { return .held(lastSuccess: last) }
          }
        }
        let lease = try await client.grantLease(ttl: Lock.ttl)
        let taken = try await client.takeLock(
          lockKey: lockKey, holder: holder, lease: lease, stampKey: stampKey,
          stampModRevision: manual ? (existing?.modRevision ?? 0) : (existing?.modRevision ?? 0))
        if !taken {
          try? await client.revokeLease(lease)
          return .held(lastSuccess: last)
        }
        return .taken(Lock(lease: lease, lockKey: lockKey, holder: holder, stampKey: stampKey, stamp: stamp))
      }
    } catch {
      throw LifeboatError.unavailable("cannot take the snapshot lock in etcd: \(error)")
    }
  }
}
