import EtcdClient
import Foundation
import LifeboatCore
import SnapshotStores

/// What `lifeboat snapshot drill` found: every check, whether it held, and how long it took.
public struct DrillReport: Sendable, Codable {
  public struct Check: Sendable, Codable, Equatable {
    public var name: String
    public var passed: Bool
    public var detail: String
    public var seconds: Double
  }
  public var name: String
  public var path: String
  /// Where the restore tool and the throwaway etcd ran (`DrillHost.summary`).
  public var runner: String = ""
  public var checks: [Check] = []
  /// The objects the scratch etcd served, counted as `inspect --objects` counts them.
  public var objects: SnapshotObjects?
  /// Every check held.
  public var passed: Bool { !checks.isEmpty && checks.allSatisfy(\.passed) }
  /// The first check that did not hold.
  public var failure: Check? { checks.first { !$0.passed } }
}

/// A restore drill: proves a snapshot restorable without touching the cluster. The snapshot is
/// verified, its database extracted to a scratch directory and read offline (revision, HashKV,
/// objects), restored with the host's restore tool into a member of its own (its own name and
/// cluster token: it can never join the real cluster), started on 127.0.0.1 with free ports, at
/// lower CPU priority (`nice`), then asked what it serves: the revision must be the snapshot's
/// (and the manifest's), `HashKV` the one computed offline, and a read of every key must give
/// the offline object counts. The scratch etcd is stopped and the scratch directory removed
/// whatever happens, also when the caller is cancelled (Ctrl-C).
public struct SnapshotDrill: Sendable {
  public var scratchParent: String
  /// Where the restore tool and the throwaway etcd run (default: this host's, from PATH).
  public var host: any DrillHost = HostDrill()
  /// The whole drill's time limit.
  public var timeout: Duration = .seconds(1800)
  public var progress: @Sendable (String) -> Void

  public init(scratchParent: String = NSTemporaryDirectory(), progress: @escaping @Sendable (String) -> Void = { _ in }) {
    self.scratchParent = scratchParent
    self.progress = progress
  }

  public func drill(_ snapshot: StoredSnapshot, in catalog: SnapshotCatalog) async throws(LifeboatError) -> DrillReport {
    try await drill(snapshot, source: try await catalog.source(of: snapshot))
  }

  /// Drills `snapshot` read from `source` (a local file, an S3 object, a node's copy through
  /// its agent): one read of it, which verifies and extracts the database at once.
  public func drill(_ snapshot: StoredSnapshot, source: any ByteSource) async throws(LifeboatError) -> DrillReport {
    try await host.check()
    var report = DrillReport(name: snapshot.name.value, path: snapshot.path, runner: host.summary)
    let deadline = ContinuousClock.now + timeout

    // 1. The archive's structure (its directory, the manifest beside it).
    let verifyStart = ContinuousClock.now
    progress("verify ...")
    let content: SnapshotContent
    do {
      content = try await SnapshotVerifier.open(snapshot, source: source)
    } catch where error.kind == .verification {
      report.checks.append(.init(name: "verify", passed: false, detail: error.message, seconds: Self.seconds(since: verifyStart)))
      return report
    }
    // 2. Room for the db and the restored data dir, before anything is written.
    let scratchParent = (scratchParent as NSString).standardizingPath
    try makeDirectories(scratchParent)
    let dbSize = max(snapshot.manifest?.dbSize ?? 0, content.recordedDatabaseSize)
    // What a killed drill left counts against the free disk: removed first.
    await removeAbandoned(in: scratchParent)
    let free = NodeFiles.freeBytes(scratchParent)
    // The db, its restored copy, and etcd's WAL: a 64 MiB segment preallocated by the restore
    // and another when the member starts (a review filled a disk the old estimate allowed).
    let needed = NodeFiles.sum([dbSize, dbSize, 3 * (64 << 20)])
    guard free >= needed else {
      throw .storage(
        "not enough free disk in \(scratchParent) for a drill: \(free) bytes free, \(needed) needed (the db, its restored copy, etcd's WAL)")
    }
    let scratch = scratchParent + "/lifeboat-drill-" + UUID().uuidString.prefix(8).lowercased()
    let name = (scratch as NSString).lastPathComponent
    try makeDirectories(scratch)
    // Who owns it: a later drill removes it (and stops its etcd) once this process is gone.
    try AtomicFile.write(Array("\(getpid())\n".utf8), to: scratch + "/owner.pid", mode: 0o600)
    var etcd: DrillEtcd?
    do throws(LifeboatError) {
      try await run(&report, content: content, verifyStart: verifyStart, scratch: scratch, deadline: deadline, etcd: &etcd)
    } catch {
      await cleanUp(etcd, scratch: scratch)
      // A snapshot that does not restore or serve is the drill's finding, not an error of its own.
      if error.kind == .verification, report.failure != nil { return report }
      throw error
    }
    await cleanUp(etcd, scratch: scratch)
    return report
  }

  /// Stops the scratch etcd and removes the scratch directory (shielded: a cancelled caller
  /// cannot cut it short).
  func cleanUp(_ etcd: DrillEtcd?, scratch: String) async {
    let host = host
    await shielded {
      await host.stop(etcd, scratch: scratch)
      try? FileManager.default.removeItem(atPath: scratch)
    }
  }

  /// Scratch directories of drills whose process is gone (killed with -9): their throwaway
  /// etcd is stopped and the directory removed.
  func removeAbandoned(in parent: String) async {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
    for entry in entries where entry.hasPrefix("lifeboat-drill-") {
      let dir = parent + "/" + entry
      guard let data = FileManager.default.contents(atPath: dir + "/owner.pid"),
        let owner = Int32(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
        owner != getpid(), !DetachedProcess.isRunning(owner)
      else { continue }
      await host.stop(nil, scratch: dir)
      try? FileManager.default.removeItem(atPath: dir)
    }
  }

  private func run(
    _ report: inout DrillReport, content: SnapshotContent, verifyStart: ContinuousClock.Instant, scratch: String,
    deadline: ContinuousClock.Instant, etcd: inout DrillEtcd?
  ) async throws(LifeboatError) {
    let snapshot = content.snapshot
    // 3. Every check of `verify`, extracting the database in the same read; then read offline.
    let database = scratch + "/db"
    try await timed(&report, "verify", since: verifyStart) { () async throws(LifeboatError) -> (Void, String) in
      let file = try AtomicFile(finalPath: database)
      do throws(LifeboatError) {
        let verified = try await SnapshotVerifier().verify(content) { (chunk) throws(LifeboatError) in try file.write(chunk) }
        try file.commit()
        return ((), verified.checks.joined(separator: "; "))
      } catch {
        file.discard()
        throw error
      }
    }
    let offline = try await timed(&report, "read offline") { () async throws(LifeboatError) in
      let objects = try SnapshotObjects.read(path: database)
      return (objects, "revision \(objects.revision), \(objects.total) live keys, HashKV \(objects.hashKV)")
    }
    // 4. Restored into a member of its own.
    let client = try freeTCPPort(on: "127.0.0.1")
    var peer = try freeTCPPort(on: "127.0.0.1")
    while peer == client { peer = try freeTCPPort(on: "127.0.0.1") }
    let name = "lifeboat-drill"
    let token = "lifeboat-drill-" + UUID().uuidString.lowercased()
    let peerURL = "http://127.0.0.1:\(peer)"
    let dataDir = scratch + "/data"
    try await timed(&report, "restore") { () async throws(LifeboatError) -> (Void, String) in
      try await host.restore(
        RestoreInvocation(
          database: database, stagingDir: dataDir, memberName: name, initialCluster: "\(name)=\(peerURL)", token: token,
          peerURL: peerURL, skipHashCheck: false, id: "drill-" + (scratch as NSString).lastPathComponent.suffix(8)),
        timeout: remaining(deadline))
      return ((), "into \(dataDir) with \(host.summary)")
    }
    // 5. Started on loopback, at lower CPU priority.
    let clientURL = "http://127.0.0.1:\(client)"
    let quota = max(Int64(2) << 30, Int64(clamping: UInt64(snapshot.size) &* 3))
    let arguments = [
      "--name=\(name)", "--data-dir=\(dataDir)", "--listen-client-urls=\(clientURL)",
      "--advertise-client-urls=\(clientURL)", "--listen-peer-urls=\(peerURL)", "--initial-advertise-peer-urls=\(peerURL)",
      "--initial-cluster=\(name)=\(peerURL)", "--initial-cluster-token=\(token)", "--quota-backend-bytes=\(quota)",
      "--logger=zap", "--log-outputs=stderr",
    ]
    etcd = try await host.start(arguments, scratch: scratch, name: (scratch as NSString).lastPathComponent)
    let endpoint: EtcdEndpoint
    do { endpoint = try EtcdEndpoint(parsing: clientURL) } catch { throw .failure("drill endpoint \(clientURL): \(error.message)") }
    let started = etcd
    // Failpoint: a drill slow to serve (the window for an interrupt in the tests).
    if Failpoints.fire("drill.slow") { try? await Task.sleep(for: .seconds(5)) }
    let served: (revision: Int64, hash: UInt32, objects: SnapshotObjects) = try await timed(&report, "serve") {
      () async throws(LifeboatError) in
      let result = try await whenServing(endpoint, etcd: started, deadline: deadline, scratch: scratch)
      return (result, "etcd on \(clientURL) served revision \(result.revision)")
    }
    // 6. What it serves against what the snapshot claims.
    // The member starts at the db's revision (the compaction's when that is higher); the
    // manifest recorded the member's revision before the snapshot was streamed: no higher.
    var claimed = "offline \(offline.servedRevision)"
    var revisionHolds = served.revision == offline.servedRevision
    if let manifest = snapshot.manifest {
      claimed += ", manifest \(manifest.revision)"
      revisionHolds = revisionHolds && manifest.revision <= served.revision
    }
    report.checks.append(.init(name: "revision", passed: revisionHolds, detail: "served \(served.revision); \(claimed)", seconds: 0))
    report.checks.append(
      .init(
        name: "hashkv", passed: served.hash == offline.hashKV, detail: "served \(served.hash), offline \(offline.hashKV)", seconds: 0))
    var servedObjects = served.objects
    servedObjects.hashKV = offline.hashKV
    let objectsHold = servedObjects.kubernetes == offline.kubernetes && servedObjects.other == offline.other
      && servedObjects.total == offline.total
    report.checks.append(
      .init(
        name: "objects", passed: objectsHold,
        detail: "served \(served.objects.total) keys in \(served.objects.kubernetes.count) resource/namespace groups; offline \(offline.total) in \(offline.kubernetes.count)",
        seconds: 0))
    report.objects = servedObjects
  }

  /// Waits until the scratch member answers with a leader, then reads its revision, HashKV and
  /// every key.
  func whenServing(
    _ endpoint: EtcdEndpoint, etcd: DrillEtcd?, deadline: ContinuousClock.Instant, scratch: String
  ) async throws(LifeboatError) -> (revision: Int64, hash: UInt32, objects: SnapshotObjects) {
    let host = host
    do {
      return try await EtcdClient.with(endpoint: endpoint) { client in
        var problem = "no answer"
        while ContinuousClock.now < deadline {
          if let etcd, await !host.isRunning(etcd) {
            let last = Self.logLine(await host.logTail(etcd, scratch: scratch))
            // A full scratch disk is the machine's problem, not the snapshot's.
            if last.lowercased().contains("no space left on device") {
              throw LifeboatError(.storage, "the scratch disk \(parentDirectory(of: scratch)) filled up while the restored etcd started: \(last)")
            }
            throw LifeboatError(.verification, "the restored etcd exited: \(last)")
          }
          if let status = try? await client.status(), status.hasLeader {
            // Revision 0: the current one (a revision at or below the compaction one is refused).
            let hash = try await client.hashKV(revision: 0)
            var counter = SnapshotObjects.Counter()
            var total = 0
            try await client.forEachKey(revision: status.revision) { key in
              counter.add(key)
              total += 1
            }
            return (status.revision, hash.hash, counter.result(total: total, revision: status.revision))
          }
          problem = "not serving yet"
          try await Task.sleep(for: .milliseconds(200))
        }
        throw LifeboatError(.verification, "the restored etcd did not serve in time: \(problem)")
      }
    } catch let error as LifeboatError {
      throw error
    } catch is CancellationError {
      throw LifeboatError(.failure, "interrupted", underlying: .cancelled)
    } catch {
      throw LifeboatError(.verification, "reading the restored etcd failed: \(error)")
    }
  }

  /// Runs one step and records it as a check (failed when it throws a verification error).
  private func timed<T>(
    _ report: inout DrillReport, _ name: String, since began: ContinuousClock.Instant? = nil,
    _ body: () async throws(LifeboatError) -> (T, String)
  ) async throws(LifeboatError) -> T {
    // A step that began earlier (`began`) announced itself then.
    if began == nil { progress("\(name) ...") }
    let start = began ?? ContinuousClock.now
    do {
      let (value, detail) = try await body()
      report.checks.append(.init(name: name, passed: true, detail: detail, seconds: Self.seconds(since: start)))
      return value
    } catch {
      if error.kind == .verification {
        report.checks.append(.init(name: name, passed: false, detail: error.message, seconds: Self.seconds(since: start)))
      }
      throw error
    }
  }

  /// etcd's last log line in a sentence: zap's JSON as "msg: error", anything else as it is,
  /// on one line and at most 300 characters.
  static func logLine(_ tail: String) -> String {
    let last = tail.split(whereSeparator: \.isNewline).last.map(String.init) ?? tail
    var line = last
    if let start = last.firstIndex(of: "{"), let end = last.lastIndex(of: "}"),
      let object = try? JSONSerialization.jsonObject(with: Data(last[start...end].utf8)) as? [String: Any],
      let message = object["msg"] as? String
    {
      line = message + ((object["error"] as? String).map { ": " + $0 } ?? "")
    }
    return String(line.filter { !$0.isNewline }.prefix(300))
  }

  static func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
  }

  private func remaining(_ deadline: ContinuousClock.Instant) -> Duration {
    max(.seconds(1), deadline - ContinuousClock.now)
  }
}
