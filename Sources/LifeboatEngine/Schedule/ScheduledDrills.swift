import EtcdClient
import Foundation
import LifeboatCore
import Logging
import SnapshotStores

/// Scheduled restore drills on one agent (`lifeboat.drill`): at each slot one agent of the
/// cluster takes the cluster's lock (the recurring snapshots' own, so a drill never runs beside
/// a snapshot run), drills the newest snapshot of its own snapshot directory with
/// `SnapshotDrill` (a throwaway etcd on loopback, at lower CPU priority), and writes the result
/// to etcd (`DrillRecord`, with the slot's stamp) while it still holds the lock. Every agent
/// reports the cluster's last drill; `status` fails while it is a failed one. No quorum, no
/// lock, no drill; while a restore has files on the node, drills pause; a slot whose lock a
/// snapshot run holds is tried again every 15 s.
public actor ScheduledDrills {
  let context: ClusterContext
  let local: LocalNode
  let clock: @Sendable () -> Date
  let logger: Logger
  private var state: DrillState
  private let started: Date
  private let metrics = DrillMetrics()
  private var activeRun: Task<SlotLoop.Next, Never>?
  /// Set once the agent begins to stop (`beginStopping`): no drill starts any more.
  private var stopped = false

  public init(
    context: ClusterContext, local: LocalNode, clock: @escaping @Sendable () -> Date = { Date() },
    logger: Logger = Logger(label: "lifeboat.drill")
  ) {
    self.context = context
    self.local = local
    self.clock = clock
    self.logger = logger
    self.started = clock()
    let schedule = context.config.drillSchedule
    self.state = DrillState(enabled: schedule != nil, schedule: schedule?.description ?? "off")
  }

  public var current: DrillState { state }

  /// Runs until cancelled (the first slot one interval after start); cancelling it also cancels
  /// a drill in progress, which stops its etcd and removes its scratch directory.
  public func loop() async {
    // What a drill killed with this agent left (its etcd keeps running, with the cluster's
    // data): removed at start, not only by the next drill.
    await makeDrill().removeAbandoned(in: context.config.drillScratchDir(local.node))
    guard let schedule = context.config.drillSchedule else { return }
    await withTaskCancellationHandler {
      await SlotLoop(schedule: schedule, started: started, clock: clock).run { next in
        state.nextRun = next
      } attempt: { slot, _ in
        await run(slot: slot, manual: false)
      }
    } onCancel: {
      Task { await self.beginStopping() }
    }
  }

  /// A drill now (`POST /v1/drill/run`): it takes the lock but neither checks nor writes the
  /// slot's stamp; its result is the cluster's last drill like any other. Refused once the
  /// agent is stopping.
  public func runNow() async throws(LifeboatError) -> DrillState {
    guard !stopped else { throw .unavailable("the agent is stopping: no new drill") }
    _ = await run(slot: clock(), manual: true)
    return state
  }

  /// The agent is stopping: no drill starts any more, and one in progress (also one an HTTP
  /// request started) is cancelled, which stops its etcd; returns once it has cleaned up.
  public func stop() async {
    beginStopping()
    _ = await activeRun?.value
  }

  /// No run starts any more (also not one asked for by HTTP while the loop's own run is being
  /// cancelled), and the one in progress is cancelled.
  private func beginStopping() {
    stopped = true
    activeRun?.cancel()
  }

  private func run(slot: Date, manual: Bool) async -> SlotLoop.Next {
    state.lastAttempt = clock()
    if state.running {
      state.lastResult = .skipped(reason: "the previous drill is still in progress")
      return .done
    }
    if local.restoreInProgress() {
      state.lastResult = .skipped(reason: "a restore is in progress")
      return .done
    }
    state.running = true
    let task = Task { await self.perform(slot: slot, manual: manual) }
    activeRun = task
    let next = await task.value
    activeRun = nil
    state.running = false
    return next
  }

  private func perform(slot: Date, manual: Bool) async -> SlotLoop.Next {
    do throws(LifeboatError) {
      switch try await drillSlot(slot: slot, manual: manual) {
      case .drilled(let record, let problem):
        state.last = record
        state.runs += 1
        metrics.runs.increment()
        metrics.duration.record(record.durationSeconds)
        if let success = record.lastSuccess { metrics.lastSuccess.record(success.timeIntervalSince1970) }
        if record.passed {
          state.lastResult = .passed
          logger.info("drill of \(record.snapshot ?? "-") passed in \(String(format: "%.1f", record.durationSeconds)) s")
        } else {
          state.failures += 1
          metrics.failures.increment()
          state.lastResult = .failed(message: record.failure ?? "unknown")
          logger.error("drill of \(record.snapshot ?? "-") failed: \(record.failure ?? "unknown")")
        }
        if let problem { logger.warning("\(problem)") }
      case .runElsewhere(let record):
        state.lastResult = .runByAnotherAgent
        if let record {
          state.last = record
          if let success = record.lastSuccess { metrics.lastSuccess.record(success.timeIntervalSince1970) }
        }
      case .busy(let holder):
        state.lastResult = .waiting(holder: holder)
        return .retry(after: 15)
      case .noQuorum:
        state.lastResult = .noQuorum
        logger.warning("drill not run: no quorum")
      }
    } catch where error.underlying == .cancelled || Task.isCancelled {
      // Stopped with the agent (SIGTERM): no failure to count or alert on.
      state.lastResult = .failed(message: "cancelled (the agent is stopping)")
      logger.warning("drill cancelled: the agent is stopping")
    } catch {
      // Could not get as far as a drill (own member unreachable): this agent's failure.
      state.failures += 1
      metrics.failures.increment()
      state.lastResult = .failed(message: error.message)
      logger.error("drill failed: \(error.message)")
    }
    return .done
  }

  enum SlotOutcome: Sendable {
    /// This agent drilled; `problem` is what failed in writing the result.
    case drilled(DrillRecord, problem: String?)
    case runElsewhere(DrillRecord?)
    case busy(holder: String)
    case noQuorum
  }

  nonisolated private func drillSlot(slot: Date, manual: Bool) async throws(LifeboatError) -> SlotOutcome {
    let config = context.config
    // A manual drill needs no schedule (it neither checks nor writes the slot's stamp).
    let schedule = config.drillSchedule ?? .interval(86_400)
    let recordKey = DrillRecord.key(cluster: config.clusterName)
    return try await local.withOwnMember { client, own async throws -> SlotOutcome in
      func readRecord() async throws -> DrillRecord? {
        try await client.range(prefix: recordKey).first { String(decoding: $0.key, as: UTF8.self) == recordKey }
          .flatMap { DrillRecord.decode($0.value) }
      }
      let status: EtcdMemberStatus
      do { status = try await client.status() } catch {
        throw LifeboatError.unavailable("own member \(own) does not answer: \(error)")
      }
      guard status.hasLeader else { return .noQuorum }
      let lock: EtcdLock
      switch try await EtcdLock.take(
        client: client, cluster: config.clusterName, node: local.node.address, purpose: .drill, slot: slot, now: clock(),
        manual: manual, schedule: schedule)
      {
      case .held: return .runElsewhere(try await readRecord())
      case .busy(let holder): return .busy(holder: holder)
      case .taken(let taken): lock = taken
      }
      let previous = try? await readRecord()
      let begin = clock()
      let (held, lease) = await lock.holding(logger: logger) { () async throws(LifeboatError) in await drillNewest() }
      guard case .success(let (snapshot, result)) = held else { preconditionFailure("drillNewest does not throw") }
      if case .failure(let error) = result, error.underlying == .cancelled {
        await lock.release(lease, logger: logger)
        throw error
      }
      var record = DrillRecord(
        time: clock(), node: local.node.address, snapshot: snapshot, passed: false, failure: nil,
        durationSeconds: clock().timeIntervalSince(begin), lastSuccess: previous?.lastSuccess)
      switch result {
      case .success(let report):
        record.runner = report.runner
        record.passed = report.passed
        record.failure = report.failure.map { DrillRecord.oneLine("\($0.name): \($0.detail)") }
        if report.passed { record.lastSuccess = record.time }
      case .failure(let error):
        record.failure = DrillRecord.oneLine(error.message)
      }
      let problem = await lock.stampSlot(stamp: !manual, also: [(recordKey, record.encoded())])
      await lock.release(lease, logger: logger)
      return .drilled(record, problem: problem.map { "the drill's result was not written to etcd: \($0)" })
    }
  }

  /// This node's drill: its scratch directory, its time limit, and where it runs (an RKE node
  /// has no etcd of its own: containers of its etcd image).
  nonisolated func makeDrill(progress: @escaping @Sendable (String) -> Void = { _ in }) -> SnapshotDrill {
    let settings = context.config.lifeboat
    var drill = SnapshotDrill(scratchParent: context.config.drillScratchDir(local.node), progress: progress)
    if let docker = local.runtime as? DockerRuntime {
      drill.host = DockerDrill(runtime: docker)
    } else {
      drill.host = HostDrill(etcdBinary: settings.runtime.etcdBinary, restoreTool: settings.runtime.restoreTool)
    }
    drill.timeout = .seconds(settings.drill?.timeoutSeconds ?? 1800)
    return drill
  }

  /// The newest snapshot of this node's directory (its name), drilled.
  nonisolated private func drillNewest() async -> (String?, Result<DrillReport, LifeboatError>) {
    let catalog = SnapshotCatalog(store: local.store)
    let newest: StoredSnapshot
    do throws(LifeboatError) {
      guard let found = try await catalog.list().max(by: { $0.created < $1.created }) else {
        return (nil, .failure(.notFound("no snapshot in \(local.node.snapshotDir) to drill")))
      }
      newest = found
    } catch {
      return (nil, .failure(error))
    }
    let drill = makeDrill { [logger] line in logger.debug("drill \(newest.name.value): \(line)") }
    do throws(LifeboatError) {
      return (newest.name.value, .success(try await drill.drill(newest, in: catalog)))
    } catch {
      return (newest.name.value, .failure(error))
    }
  }
}
