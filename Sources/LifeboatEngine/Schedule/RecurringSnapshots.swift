import EtcdClient
import Foundation
import LifeboatCore
import Logging

/// Recurring snapshots on one agent: the schedule (sleep to each slot, retry a failed run with
/// backoff), the `EtcdLock` that gives each slot to one agent of the cluster, and one call of
/// the recurring-run workflow (`ClusterEngine.recurringRun`). Without quorum there is no lock:
/// each agent snapshots its own member locally as `<time>_<node>_etcd`. While a restore has
/// files on the node, runs pause.
public actor RecurringSnapshots {
  let context: ClusterContext
  let local: LocalNode
  /// The cluster's workflows, over this node (first) and the others through their agents.
  let engine: ClusterEngine
  let clock: @Sendable () -> Date
  let logger: Logger
  private var state: ScheduleState
  private let started: Date
  private let metrics = ScheduleMetrics()
  private var activeRun: Task<Outcome, Never>?
  /// Set once the agent begins to stop (`beginStopping`): no run starts any more.
  private var stopped = false

  public init(
    context: ClusterContext, local: LocalNode, peers: [any Node], clock: @escaping @Sendable () -> Date = { Date() },
    logger: Logger = Logger(label: "lifeboat.schedule")
  ) {
    self.context = context
    self.local = local
    self.engine = ClusterEngine(context: context, nodes: [local] + peers, logger: logger)
    self.clock = clock
    self.logger = logger
    self.started = clock()
    self.state = ScheduleState(enabled: context.config.backup.enabled, schedule: context.config.recurringSchedule.description)
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
      Task { await self.beginStopping() }
    }
  }

  private func loopBody() async {
    await SlotLoop(schedule: context.config.recurringSchedule, started: started, clock: clock).run { next in
      state.nextRun = next
    } attempt: { slot, tries in
      switch await run(slot: slot, manual: false) {
      case .failed: .retry(after: SlotLoop.backoff(tries))
      case .busy: .retry(after: 15)
      case .done, .skipped: .done
      }
    }
  }

  /// No run starts any more (also not one asked for by HTTP while the loop's own run is being
  /// cancelled), and the one in progress is cancelled.
  private func beginStopping() {
    stopped = true
    activeRun?.cancel()
  }

  /// The agent is stopping: no run starts any more (`runNow` is refused), and a run in progress,
  /// also one an HTTP request started, is cancelled; returns once it has cleaned up.
  public func stop() async {
    beginStopping()
    _ = await activeRun?.value
  }

  /// A run now (`POST /v1/schedule/run`): the slot is the current time; it ignores the last
  /// slot's stamp and does not write one (a manual run does not stand in for a scheduled one).
  /// Refused once the agent is stopping.
  public func runNow() async throws(LifeboatError) -> ScheduleState {
    guard !stopped else { throw .unavailable("the agent is stopping: no new run") }
    _ = await run(slot: clock(), manual: true)
    return state
  }

  enum Outcome { case done, failed, skipped, busy }

  /// Runs in a task of its own, so that stopping the agent cancels it even when an HTTP request
  /// started it.
  private func run(slot: Date, manual: Bool) async -> Outcome {
    if state.running { return skip(.skippedOverlap) }
    if local.restoreInProgress() { return skip(.pausedForRestore) }
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
    do throws(LifeboatError) {
      switch try await runSlot(slot: slot, manual: manual) {
      case .saved(let saved, let result, let problem):
        state.lastSnapshot = saved.name
        state.runs += 1
        if let problem, Task.isCancelled {
          // Saved; the stop cut the upload or the copies short, which the next run catches up.
          state.lastResult = .failed(message: "cancelled (the agent is stopping) after saving \(saved.name)", saved: true)
          logger.warning("recurring snapshot \(saved.name) saved, then cancelled: the agent is stopping (\(problem))")
        } else if let problem {
          // Saved and stamped; what failed after it is reported, and the next run catches up.
          record(.failed(message: problem, saved: true))
        } else {
          state.lastResult = result
          metrics.runs.increment()
          state.lastSizeBytes = saved.size
          state.lastSuccess = clock()
          metrics.lastSuccess.record(clock().timeIntervalSince1970)
          metrics.lastSize.record(Double(saved.size))
        }
      case .runElsewhere(let clusterLastSuccess):
        // Another agent ran the slot: the cluster's last success is what this agent reports too.
        state.lastResult = .runByAnotherAgent
        if let clusterLastSuccess { metrics.lastSuccess.record(clusterLastSuccess.timeIntervalSince1970) }
        return .done
      case .busy(let holder):
        // A drill holds the cluster's lock: the slot waits for it.
        state.lastResult = .waiting(holder: holder)
        return .busy
      }
    } catch where error.kind == .restoreInProgress {
      logger.warning("\(error.message)")
      return skip(.pausedForRestore)
    } catch where error.underlying == .cancelled || Task.isCancelled {
      // Stopped with the agent (SIGTERM): no failure to count or alert on, whatever the step
      // the cancellation cut short said.
      state.lastResult = .failed(message: "cancelled (the agent is stopping)", saved: false)
      logger.warning("recurring snapshot cancelled: the agent is stopping")
      outcome = .failed
    } catch {
      record(.failed(message: error.message, saved: false))
      outcome = .failed
    }
    state.lastRun = begin
    state.lastDurationSeconds = clock().timeIntervalSince(begin)
    metrics.lastDuration.record(state.lastDurationSeconds ?? 0)
    if let kept = try? await local.listSnapshots() { metrics.kept.record(Double(kept.count)) }
    return outcome
  }

  private func record(_ result: RunResult) {
    state.failures += 1
    metrics.failures.increment()
    state.lastResult = result
    logger.error("recurring snapshot \(result)")
  }

  private func skip(_ result: RunResult) -> Outcome {
    state.skips += 1
    metrics.skips.increment()
    state.lastResult = result
    logger.warning("recurring snapshot \(result)")
    return .skipped
  }

  enum SlotOutcome: Sendable {
    /// A snapshot was saved; `problem` is what failed after it.
    case saved(NodeSnapshot, RunResult, problem: String?)
    case runElsewhere(lastSuccess: Date?)
    case busy(holder: String)
  }

  /// One slot, through one client of this agent's own member for the whole run.
  nonisolated private func runSlot(slot: Date, manual: Bool) async throws(LifeboatError) -> SlotOutcome {
    let config = context.config
    return try await local.withOwnMember { client, own async throws -> SlotOutcome in
      let status: EtcdMemberStatus
      do { status = try await client.status() } catch {
        throw LifeboatError.unavailable("own member \(own) does not answer: \(error)")
      }
      try Task.checkCancellation()
      let dbSize = UInt64(max(0, status.dbSize))
      guard status.hasLeader else { return try await saveWithoutQuorum(slot: slot, dbSize: dbSize) }
      let lock: EtcdLock
      switch try await EtcdLock.take(
        client: client, cluster: config.clusterName, node: local.node.address, slot: slot, now: clock(), manual: manual,
        schedule: config.recurringSchedule)
      {
      case .held(let last): return .runElsewhere(lastSuccess: last)
      case .busy(let holder): return .busy(holder: holder)
      case .taken(let taken): lock = taken
      }
      let name = SnapshotNaming(safeTimestamp: config.backup.safeTimestamp).recurringName(at: slot)
      let (result, lease) = await lock.holding(logger: logger) { () async throws(LifeboatError) in
        // Failpoint: a run slow to save, holding the lock (the window for overlaps and SIGTERM in
        // the tests). It notices a cancellation only at its end, as a step busy with the disk
        // would: by then the run's etcd client has closed.
        if Failpoints.fire("schedule.slow") { await Task.detached { try? await Task.sleep(for: .seconds(4)) }.value }
        if Task.isCancelled { throw LifeboatError(.failure, "cancelled", underlying: .cancelled) }
        try await checkDisk(dbSize: dbSize)
        return try await engine.recurringRun(name: name, holder: local)
      }
      var problems: [String] = []
      if case .success = result, let problem = await lock.stampSlot(stamp: !manual) { problems.append(problem) }
      await lock.release(lease, logger: logger)
      let report = try result.get()
      problems += report.problems
      if problems.isEmpty { logger.info("recurring snapshot \(report.saved.name) saved, copied to \(engine.nodes.count - 1) nodes") }
      return .saved(
        report.saved, .ok, problem: problems.isEmpty ? nil : "saved \(report.saved.name), but: \(problems.joined(separator: "; "))")
    }
  }

  /// No quorum, so no lock: this agent keeps a snapshot of its own member, locally.
  nonisolated private func saveWithoutQuorum(slot: Date, dbSize: UInt64) async throws(LifeboatError) -> SlotOutcome {
    try await checkDisk(dbSize: dbSize)
    let config = context.config
    let base = SnapshotNaming(safeTimestamp: config.backup.safeTimestamp).recurringName(at: slot).value
    let node = config.nodes.first { $0.address == local.node.address }
    let label = (node?.hostnameOverride?.lowercased() ?? local.node.address)
      .map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "-" }
    let name = base.dropLast("_etcd".count) + "_" + String(label) + "_etcd"
    let saved = try await local.saveSnapshot(NodeSaveRequest(name: String(name), upload: false, ownMemberOnly: true))
    logger.warning("no quorum: saved \(saved.snapshot.name) from this node's own member only")
    return .saved(saved.snapshot, .noQuorum, problem: nil)
  }

  /// Free disk for the expected archive (the last one's size, or the db's when there is none,
  /// and a margin) before a run: a run that would fill the disk is refused instead.
  nonisolated private func checkDisk(dbSize: UInt64) async throws(LifeboatError) {
    let disk = await local.snapshotDiskState()
    let expected = disk.newestArchive > 0 ? disk.newestArchive : dbSize
    let needed = expected + expected / 5 + (64 << 20)
    guard disk.free >= needed else {
      throw .storage("not enough free disk in \(local.node.snapshotDir): \(disk.free) bytes free, \(needed) expected for the next archive")
    }
  }
}
