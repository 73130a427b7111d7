import EtcdClient
import Foundation
import LifeboatCore
import Logging

/// What `GET /v1/schedule` and `lifeboat status` show.
public struct ScheduleState: Codable, Sendable, Equatable {
  public var enabled: Bool
  public var schedule: String
  public var nextRun: Date?
  public var lastRun: Date?
  /// `ok`, `no-quorum`, `done by another agent`, `skipped: ...` or `failed: ...`.
  public var lastResult: String?
  public var lastSnapshot: String?
  public var lastDurationSeconds: Double?
  /// Runs this agent carried out, failed, and skipped because one was still in progress.
  public var runs: Int = 0
  public var failures: Int = 0
  public var skips: Int = 0
  public var running: Bool = false
}

/// Recurring snapshots, run by every agent, once per slot for the whole cluster: the agents
/// take a lease-backed lock in etcd (`/lifeboat/lock/<cluster>`) in one transaction with a stamp
/// of the slot (`/lifeboat/lock/<cluster>.last`), so one agent runs each slot and the others see
/// it done. The holder saves (one pass, uploaded to S3 once), every other agent copies the
/// archive from it (and prunes its own directory), then the holder prunes its own directory and
/// S3. Without quorum there is no lock: each agent snapshots its own member locally as
/// `<time>_<node>_etcd`. Names are RKE's recurring names.
public actor RecurringSnapshots {
  let context: ClusterContext
  let local: LocalNode
  /// The other etcd nodes (through their agents).
  let peers: [any Node]
  let clock: @Sendable () -> Date
  let logger: Logger
  private var state: ScheduleState
  private let started: Date

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
    let schedule = context.config.recurringSchedule
    let description: String
    switch schedule {
    case .interval(let seconds): description = "every \(Int(seconds)) s"
    case .cron(let cron, let zone): description = "cron \(cron) (\(zone.identifier))"
    }
    self.state = ScheduleState(enabled: context.config.backup.enabled, schedule: description)
  }

  public var current: ScheduleState { state }

  /// Runs until cancelled: sleeps to each slot and runs it. The first slot comes one interval
  /// after start, as RKE's.
  public func loop() async {
    guard state.enabled else { return }
    let schedule = context.config.recurringSchedule
    var after = started
    while !Task.isCancelled {
      let next = schedule.nextRun(after: after, start: started)
      state.nextRun = next
      let wait = next.timeIntervalSince(clock())
      if wait > 0 { try? await Task.sleep(for: .milliseconds(Int64(wait * 1000))) }
      if Task.isCancelled { return }
      await run(slot: next)
      after = max(next, clock())
    }
  }

  /// A run now (`POST /v1/schedule/run`): the slot is the current time.
  public func runNow() async -> ScheduleState {
    await run(slot: clock())
    return state
  }

  private func run(slot: Date) async {
    if state.running {
      state.skips += 1
      state.lastResult = "skipped: the previous run is still in progress"
      logger.warning("recurring snapshot skipped: the previous run is still in progress")
      return
    }
    state.running = true
    let begin = clock()
    do throws(LifeboatError) {
      let outcome = try await runUnlocked(slot: slot)
      state.lastResult = outcome.result
      if let name = outcome.snapshot {
        state.lastSnapshot = name
        state.runs += 1
      }
    } catch {
      state.failures += 1
      state.lastResult = "failed: \(error.message)"
      logger.error("recurring snapshot failed: \(error.message)")
    }
    state.lastRun = begin
    state.lastDurationSeconds = clock().timeIntervalSince(begin)
    state.running = false
  }

  private func runUnlocked(slot: Date) async throws(LifeboatError) -> (result: String, snapshot: String?) {
    let config = context.config
    let connection = try context.etcdConnection(certificate: local.node.certificateName)
    guard let index = config.etcdNodes.firstIndex(where: { $0.address == local.node.address }) else {
      throw .usage("\(local.node.address) is not an etcd node")
    }
    let own = connection.endpoints[index]
    let naming = SnapshotNaming(safeTimestamp: config.backup.safeTimestamp)
    let status: EtcdMemberStatus
    do { status = try await EtcdClient.with(endpoint: own, configuration: connection.client) { try await $0.status() } } catch {
      throw .unavailable("own member \(own) does not answer: \(error)")
    }
    if Failpoints.fire("schedule.slow") { try? await Task.sleep(for: .seconds(4)) }
    guard status.hasLeader else {
      // No quorum: no lock either. Each agent keeps a snapshot of its own member, locally.
      let base = naming.recurringName(at: slot).value
      let node = config.nodes.first { $0.address == local.node.address }
      let label = (node?.hostnameOverride?.lowercased() ?? local.node.address)
        .map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "-" }
      let name = base.dropLast("_etcd".count) + "_" + String(label) + "_etcd"
      let saved = try await local.saveSnapshot(NodeSaveRequest(name: String(name), upload: false, ownMemberOnly: true))
      logger.warning("no quorum: saved \(saved.snapshot.name) from this node's own member only")
      return ("no-quorum", saved.snapshot.name)
    }
    guard let lease = try await takeLock(slot: slot, endpoint: own, connection: connection) else {
      return ("done by another agent", nil)
    }
    let outcome: (result: String, snapshot: String?)
    do throws(LifeboatError) {
      outcome = try await holdingLock(slot: slot)
    } catch {
      await release(lease, endpoint: own, connection: connection)
      throw error
    }
    await release(lease, endpoint: own, connection: connection)
    return outcome
  }

  private func holdingLock(slot: Date) async throws(LifeboatError) -> (result: String, snapshot: String?) {
    let config = context.config
    let name = SnapshotNaming(safeTimestamp: config.backup.safeTimestamp).recurringName(at: slot)
    let saved = try await local.saveSnapshot(NodeSaveRequest(name: name.value, upload: config.backup.s3 != nil))
    var problems: [String] = []
    if let uploadError = saved.uploadError { problems.append("upload: \(uploadError)") }
    for peer in peers {
      do throws(LifeboatError) { _ = try await peer.copySnapshot(name, from: local.node.agentURL) } catch {
        problems.append("copy to \(peer.address): \(error.message)")
      }
    }
    let pruned = try await ClusterPrune(context: context, nodes: [local], includeS3: true).run(dryRun: false, includeManual: false)
    problems += pruned.failures
    if !problems.isEmpty { throw .storage("saved \(name), but: \(problems.joined(separator: "; "))") }
    logger.info("recurring snapshot \(name) saved, copied to \(peers.count) nodes")
    return ("ok", name.value)
  }

  private func release(_ lease: Int64, endpoint: EtcdEndpoint, connection: EtcdConnection) async {
    do { try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { try await $0.revokeLease(lease) } } catch {
      logger.warning("could not release the snapshot lock (it expires with its lease): \(error)")
    }
  }

  /// The lock and the slot's stamp in one transaction. nil when another agent holds the lock or
  /// already ran this slot (its stamp is less than half a period old).
  private func takeLock(slot: Date, endpoint: EtcdEndpoint, connection: EtcdConnection) async throws(LifeboatError) -> Int64? {
    let cluster = context.config.clusterName
    let lockKey = "/lifeboat/lock/\(cluster)"
    let stampKey = lockKey + ".last"
    let schedule = context.config.recurringSchedule
    let period = schedule.nextRun(after: slot, start: slot).timeIntervalSince(slot)
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let holder = local.node.address
    let ttl = Int64(context.config.backup.timeoutSeconds + 60)
    do {
      return try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { client -> Int64? in
        let existing = try await client.range(prefix: stampKey).first { String(decoding: $0.key, as: UTF8.self) == stampKey }
        if let existing, let last = formatter.date(from: String(decoding: existing.value, as: UTF8.self)),
          slot.timeIntervalSince(last) < period / 2
        {
          return nil
        }
        let lease = try await client.grantLease(ttl: ttl)
        let taken = try await client.takeLock(
          lockKey: lockKey, holder: holder, lease: lease, stampKey: stampKey, stamp: formatter.string(from: slot),
          stampModRevision: existing?.modRevision ?? 0)
        if !taken { try? await client.revokeLease(lease) }
        return taken ? lease : nil
      }
    } catch {
      throw .unavailable("cannot take the snapshot lock in etcd: \(error)")
    }
  }
}
