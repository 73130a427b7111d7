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
  /// long as the next slot is further away.
  public func loop() async {
    guard state.enabled else { return }
    let schedule = context.config.recurringSchedule
    var after = started
    while !Task.isCancelled {
      let slot = schedule.nextRun(after: after, start: started)
      state.nextRun = slot
      guard await sleep(until: slot) else { return }
      var backoff: TimeInterval = 5
      while await run(slot: slot) == .failed {
        let retry = clock().addingTimeInterval(backoff)
        guard retry < schedule.nextRun(after: slot, start: started) else { break }
        state.nextRun = retry
        guard await sleep(until: retry) else { return }
        backoff = min(backoff * 2, 300)
      }
      after = max(slot, clock())
    }
  }

  private func sleep(until date: Date) async -> Bool {
    let wait = date.timeIntervalSince(clock())
    if wait > 0 { try? await Task.sleep(for: .milliseconds(Int64(wait * 1000))) }
    return !Task.isCancelled
  }

  /// A run now (`POST /v1/schedule/run`): the slot is the current time.
  public func runNow() async -> ScheduleState {
    _ = await run(slot: clock())
    return state
  }

  enum Outcome { case done, failed, skipped }

  private func run(slot: Date) async -> Outcome {
    if state.running {
      return skip("skipped: the previous run is still in progress")
    }
    if local.restoreInProgress() {
      return skip("paused: a restore is in progress")
    }
    state.running = true
    defer { state.running = false }
    let begin = clock()
    var outcome = Outcome.done
    do throws(LifeboatError) {
      let result = try await runUnlocked(slot: slot)
      state.lastResult = result.result
      if let saved = result.saved {
        state.lastSnapshot = saved.name
        state.lastSizeBytes = saved.size
        state.runs += 1
        state.lastSuccess = clock()
        metrics.runs.increment()
        metrics.lastSuccess.record(clock().timeIntervalSince1970)
        metrics.lastSize.record(Double(saved.size))
      }
    } catch {
      state.failures += 1
      metrics.failures.increment()
      state.lastResult = "failed: \(error.message)"
      logger.error("recurring snapshot failed: \(error.message)")
      outcome = .failed
    }
    state.lastRun = begin
    state.lastDurationSeconds = clock().timeIntervalSince(begin)
    metrics.lastDuration.record(state.lastDurationSeconds ?? 0)
    if let kept = try? await local.listSnapshots() { metrics.kept.record(Double(kept.count)) }
    return outcome
  }

  private func skip(_ reason: String) -> Outcome {
    state.skips += 1
    metrics.skips.increment()
    state.lastResult = reason
    logger.warning("recurring snapshot \(reason)")
    return .skipped
  }

  private func runUnlocked(slot: Date) async throws(LifeboatError) -> (result: String, saved: NodeSnapshot?) {
    let config = context.config
    let connection = try context.etcdConnection(certificate: local.node.certificateName)
    guard let index = config.etcdNodes.firstIndex(where: { $0.address == local.node.address }) else {
      throw .usage("\(local.node.address) is not an etcd node")
    }
    let own = connection.endpoints[index]
    let status: EtcdMemberStatus
    do { status = try await EtcdClient.with(endpoint: own, configuration: connection.client) { try await $0.status() } } catch {
      throw .unavailable("own member \(own) does not answer: \(error)")
    }
    if Failpoints.fire("schedule.slow") { try? await Task.sleep(for: .seconds(4)) }
    guard status.hasLeader else {
      // No quorum: no lock either. Each agent keeps a snapshot of its own member, locally.
      try await checkDisk()
      let base = SnapshotNaming(safeTimestamp: config.backup.safeTimestamp).recurringName(at: slot).value
      let node = config.nodes.first { $0.address == local.node.address }
      let label = (node?.hostnameOverride?.lowercased() ?? local.node.address)
        .map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "-" }
      let name = base.dropLast("_etcd".count) + "_" + String(label) + "_etcd"
      let saved = try await local.saveSnapshot(NodeSaveRequest(name: String(name), upload: false, ownMemberOnly: true))
      logger.warning("no quorum: saved \(saved.snapshot.name) from this node's own member only")
      return ("no-quorum", saved.snapshot)
    }
    guard let lock = try await takeLock(slot: slot, endpoint: own, connection: connection) else {
      return ("run by another agent", nil)
    }
    do throws(LifeboatError) {
      let saved = try await holdingLock(slot: slot)
      // The slot is done: stamp it before the lock goes, so no other agent runs it again.
      do {
        try await EtcdClient.with(endpoint: own, configuration: connection.client) { c in
          _ = try await c.put(lock.stampKey, Array(lock.stamp.utf8))
        }
      } catch { logger.warning("could not stamp the slot: \(error)") }
      await release(lock.lease, endpoint: own, connection: connection)
      return ("ok", saved)
    } catch {
      await release(lock.lease, endpoint: own, connection: connection)
      throw error
    }
  }

  /// Free disk for the expected archive (the last one's size and a margin) before a run: a run
  /// that would fill the disk is refused instead.
  private func checkDisk() async throws(LifeboatError) {
    let disk = await local.snapshotDiskState()
    let needed = disk.newestArchive + disk.newestArchive / 5 + (64 << 20)
    guard disk.free >= needed else {
      throw .storage("not enough free disk in \(local.node.snapshotDir): \(disk.free) bytes free, \(needed) expected for the next archive")
    }
  }

  private func holdingLock(slot: Date) async throws(LifeboatError) -> NodeSnapshot {
    let config = context.config
    try await checkDisk()
    let name = SnapshotNaming(safeTimestamp: config.backup.safeTimestamp).recurringName(at: slot)
    var problems: [String] = []
    var saved: NodeSaveReport
    do throws(LifeboatError) {
      saved = try await local.saveSnapshot(NodeSaveRequest(name: name.value, upload: config.backup.s3 != nil))
    } catch {
      // S3 refused before anything was written (the save checks the bucket first): keep the
      // snapshot locally all the same; the next run uploads it.
      let written = ((try? await local.listSnapshots()) ?? []).contains { $0.name == name.value }
      guard config.backup.s3 != nil, !written else { throw error }
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
      do throws(LifeboatError) { _ = try await peer.copySnapshot(name, from: local.node.agentURL) } catch {
        problems.append("copy to \(peer.address): \(error.message)")
      }
    }
    let pruned = try await ClusterPrune(context: context, nodes: [local], includeS3: saved.uploadError == nil)
      .run(dryRun: false, includeManual: false)
    problems += pruned.failures
    if !problems.isEmpty { throw .storage("saved \(name) locally, but: \(problems.joined(separator: "; "))") }
    logger.info("recurring snapshot \(name) saved, copied to \(peers.count) nodes")
    return saved.snapshot
  }

  private func release(_ lease: Int64, endpoint: EtcdEndpoint, connection: EtcdConnection) async {
    do { try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { try await $0.revokeLease(lease) } } catch {
      logger.warning("could not release the snapshot lock (it expires with its lease): \(error)")
    }
  }

  struct Lock { var lease: Int64; var stampKey: String; var stamp: String }

  /// The lock, if no other agent holds it and the last successful slot is more than half a
  /// period before `slot`; nil otherwise.
  private func takeLock(slot: Date, endpoint: EtcdEndpoint, connection: EtcdConnection) async throws(LifeboatError) -> Lock? {
    let lockKey = "/lifeboat/lock/\(context.config.clusterName)"
    let stampKey = lockKey + ".last"
    let period = context.config.recurringSchedule.nextRun(after: slot, start: slot).timeIntervalSince(slot)
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let stamp = formatter.string(from: slot)
    let holder = local.node.address
    let ttl = Int64(context.config.backup.timeoutSeconds + 60)
    do {
      return try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { client -> Lock? in
        let existing = try await client.range(prefix: stampKey).first { String(decoding: $0.key, as: UTF8.self) == stampKey }
        if let existing, let last = formatter.date(from: String(decoding: existing.value, as: UTF8.self)),
          slot.timeIntervalSince(last) < period / 2
        {
          return nil
        }
        let lease = try await client.grantLease(ttl: ttl)
        let taken = try await client.takeLock(
          lockKey: lockKey, holder: holder, lease: lease, stampKey: stampKey, stampModRevision: existing?.modRevision ?? 0)
        if !taken { try? await client.revokeLease(lease) }
        return taken ? Lock(lease: lease, stampKey: stampKey, stamp: stamp) : nil
      }
    } catch {
      throw .unavailable("cannot take the snapshot lock in etcd: \(error)")
    }
  }
}
