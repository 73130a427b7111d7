import EtcdClient
import Foundation
import LifeboatCore
import Logging

/// The lock that gives one agent each recurring slot: a key `/lifeboat/lock/<cluster>` put with
/// a 3-minute lease in a transaction that also requires the stamp of the last successful slot
/// (`/lifeboat/lock/<cluster>.last`) to be unchanged since it was read. The holder renews it
/// under a fresh lease every minute, stamps the slot while still holding it, and revokes the
/// lease at the end (a crashed holder blocks runs for 3 minutes at most). All calls go through
/// one client of the agent's own member, open for the run.
///
/// Recurring snapshots and scheduled drills share the lock (a drill never runs beside a
/// snapshot run, anywhere in the cluster) but keep stamps of their own: `<lock>.last` and
/// `<lock>.drill.last`. A drill's holder value starts with `drill:`; an agent that finds the lock
/// held for the other purpose is told `busy` and tries again later, instead of taking the slot
/// for done.
struct EtcdLock: Sendable {
  static let ttl: Int64 = 180
  let client: EtcdClient
  let lockKey: String
  let holder: String
  let stampKey: String
  let stamp: String
  let lease: Int64

  enum Purpose: String, Sendable {
    case snapshot, drill
    func stampKey(_ lockKey: String) -> String { self == .snapshot ? lockKey + ".last" : lockKey + ".drill.last" }
    func holder(_ node: String) -> String { self == .snapshot ? node : "drill:" + node }
    static func of(holder: String) -> Purpose { holder.hasPrefix("drill:") ? .drill : .snapshot }
  }

  /// `held`: another agent holds the lock for the same purpose or already ran the slot; `busy`:
  /// the lock is held for the other purpose (a drill during a snapshot run, or the reverse).
  enum Attempt: Sendable { case taken(EtcdLock), held(lastSuccess: Date?), busy(holder: String) }

  /// A new formatter each time (formatters are not Sendable).
  static var formatter: ISO8601DateFormatter {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f
  }

  /// The lock, unless another agent holds it or already ran this slot: for cron schedules (whose
  /// slots are the same times on every agent) the stamp is at or after the slot; for intervals
  /// (each agent counts from its own start) the stamp is less than half an interval old. Manual
  /// runs ignore the stamp.
  static func take(
    client: EtcdClient, cluster: String, node: String, purpose: Purpose = .snapshot, slot: Date, now: Date, manual: Bool,
    schedule: Schedule
  ) async throws(LifeboatError) -> Attempt {
    let lockKey = "/lifeboat/lock/\(cluster)"
    let stampKey = purpose.stampKey(lockKey)
    let holder = purpose.holder(node) + "@" + formatter.string(from: now)
    do {
      let existing = try await client.range(prefix: stampKey).first { String(decoding: $0.key, as: UTF8.self) == stampKey }
      let last = existing.flatMap { formatter.date(from: String(decoding: $0.value, as: UTF8.self)) }
      if !manual, let last {
        switch schedule {
        case .cron: if last >= slot { return .held(lastSuccess: last) }
        case .interval(let seconds): if slot.timeIntervalSince(last) < seconds / 2 { return .held(lastSuccess: last) }
        }
      }
      let lease = try await client.grantLease(ttl: ttl)
      let taken = try await client.takeLock(
        lockKey: lockKey, holder: holder, lease: lease, stampKey: stampKey, stampModRevision: existing?.modRevision ?? 0)
      guard taken else {
        try? await client.revokeLease(lease)
        let current = try await client.range(prefix: lockKey).first { String(decoding: $0.key, as: UTF8.self) == lockKey }
        let value = current.map { String(decoding: $0.value, as: UTF8.self) }
        // A manual run asked for a run now: a lock held by anyone (perhaps an agent that died:
        // the lock expires with its lease) means it did not run, not that the slot is done.
        if let value, manual || Purpose.of(holder: value) != purpose { return .busy(holder: value) }
        if manual { return .busy(holder: "a run that finished meanwhile") }
        return .held(lastSuccess: last)
      }
      return .taken(
        EtcdLock(client: client, lockKey: lockKey, holder: holder, stampKey: stampKey, stamp: formatter.string(from: slot), lease: lease))
    } catch {
      throw LifeboatError(.unavailable, "cannot take the snapshot lock in etcd: \(error)", step: "lock")
    }
  }

  /// Keeps the lock while `body` runs (a fresh lease every minute), then returns the lease that
  /// holds it now.
  func holding<R: Sendable>(logger: Logger, _ body: () async throws(LifeboatError) -> R) async -> (Result<R, LifeboatError>, Int64) {
    let renewal = Task { [self] in
      var current = lease
      while !Task.isCancelled {
        try? await Task.sleep(for: .seconds(60))
        if Task.isCancelled { break }
        if let next = await renew(current: current, logger: logger) { current = next }
      }
      return current
    }
    let result: Result<R, LifeboatError>
    do throws(LifeboatError) { result = .success(try await body()) } catch { result = .failure(error) }
    renewal.cancel()
    return (result, await renewal.value)
  }

  private func renew(current: Int64, logger: Logger) async -> Int64? {
    do {
      let next = try await client.grantLease(ttl: Self.ttl)
      guard try await client.putIfValue(lockKey, equals: holder, puts: [(lockKey, holder, next)]) else {
        try? await client.revokeLease(next)
        return nil
      }
      try? await client.revokeLease(current)
      return next
    } catch {
      logger.warning("could not renew the snapshot lock: \(error)")
      return nil
    }
  }

  /// Writes the slot's stamp (unless `stamp` is false: a manual run) and `also`, only while this
  /// agent still holds the lock.
  func stampSlot(stamp writesStamp: Bool = true, also: [(key: String, value: String)] = []) async -> String? {
    let puts = (writesStamp ? [(stampKey, stamp, Int64(0))] : []) + also.map { ($0.key, $0.value, Int64(0)) }
    guard !puts.isEmpty else { return nil }
    let (lockKey, holder) = (self.lockKey, self.holder)
    do {
      return try await withLiveClient { try await $0.putIfValue(lockKey, equals: holder, puts: puts) }
        ? nil : "the lock was lost before the slot could be stamped"
    } catch { return "could not stamp the slot: \(error)" }
  }

  /// Revokes the lease (the lock key goes with it), also for a cancelled run: otherwise an agent
  /// stopped during a run left its lock to block every run for up to 3 minutes.
  func release(_ lease: Int64, logger: Logger) async {
    do { try await withLiveClient { try await $0.revokeLease(lease) } } catch {
      logger.warning("could not release the snapshot lock (it expires with its lease): \(error)")
    }
  }

  /// Runs `body` in a task of its own (a cancelled run still finishes it) with the run's client,
  /// or, when the run was cancelled, with a client of its own to the same member: the run's
  /// client closes with it (its connections are cancelled with the run).
  private func withLiveClient<R: Sendable>(_ body: @escaping @Sendable (EtcdClient) async throws -> R) async throws -> R {
    let client = self.client
    let cancelled = Task.isCancelled
    return try await Task.detached {
      guard cancelled else { return try await body(client) }
      return try await EtcdClient.with(endpoint: client.endpoint, configuration: client.configuration, body)
    }.value
  }
}

extension LocalNode {
  /// Runs `body` with one client of this node's own member (and its endpoint), open for the
  /// whole call: what a scheduled run's status, lock, renewals, stamp and release go through.
  func withOwnMember<R: Sendable>(
    _ body: (EtcdClient, EtcdEndpoint) async throws -> R
  ) async throws(LifeboatError) -> R {
    let connection = try context.etcdConnection(certificate: node.certificateName)
    guard let index = context.config.etcdNodes.firstIndex(where: { $0.address == node.address }) else {
      throw .usage("\(node.address) is not an etcd node")
    }
    let own = connection.endpoints[index]
    do {
      return try await EtcdClient.with(endpoint: own, configuration: connection.client) { client in try await body(client, own) }
    } catch let error as LifeboatError {
      throw error
    } catch is CancellationError {
      throw LifeboatError(.failure, "cancelled", underlying: .cancelled)
    } catch {
      throw .unavailable("\(own): \(error)")
    }
  }
}
