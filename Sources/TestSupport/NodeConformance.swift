import EtcdClient
import Foundation
import LifeboatCore
import LifeboatEngine
import Testing

/// The contract of `Node` (see its doc comments), as one suite every implementation runs:
/// `LocalNode` in the test process and `RemoteNode` through a real agent. `node` acts on the
/// single member of `cluster` (a one-node cluster with an agent).
public enum NodeConformance {
  public static func run(_ node: any Node, cluster: EtcdClusterFixture) async throws {
    let member = cluster.members[0]

    // Health names the member and knows etcd runs.
    let health = try await node.health()
    #expect(health.member == member.memberName)
    #expect(health.etcdRunning == true)

    // Snapshots: none, then one saved; exact names; deleting a missing one is "not found".
    #expect(try await node.listSnapshots().isEmpty)
    _ = try await cluster.withMemberClient(0) { try await $0.put("/registry/conformance", Array("x".utf8)) }
    let saved = try await node.saveSnapshot(NodeSaveRequest(name: "conformance1", upload: false))
    #expect(saved.snapshot.name == "conformance1")
    #expect(saved.member == member.memberName)
    let listed = try await node.listSnapshots()
    #expect(listed.map(\.name) == ["conformance1"])
    #expect(listed[0].dbSHA256 == saved.snapshot.dbSHA256)
    // Opened for reading: the archive's bytes as listed, and its manifest.
    let opened = try await node.openSnapshot(try SnapshotName("conformance1"))
    #expect(opened.archive.size == listed[0].size)
    let manifest = try Manifest.decode(try #require(opened.manifest), path: "conformance1.manifest.json")
    #expect(manifest.archiveSHA256 == listed[0].archiveSHA256)
    await expectKind(.notFound) { () async throws(LifeboatError) in try await node.deleteSnapshot(try SnapshotName("conformance")) }
    #expect(try await node.listSnapshots().count == 1, "deleting `conformance` leaves `conformance1`")

    // A preflight changes nothing and reports no problem on a ready node.
    let preflight = try await node.preflight(dbSize: 1 << 20, archiveSize: 1 << 20)
    #expect(preflight.problems.isEmpty, "\(preflight.problems)")
    await expectKind(.unavailable, "no disk is that large") { () async throws(LifeboatError) in
      let p = try await node.preflight(dbSize: 1 << 60, archiveSize: 1 << 60)
      if !p.problems.isEmpty { throw LifeboatError.unavailable(p.problems.joined(separator: "; ")) }
    }

    // Restore steps on the one member, round trip: fetch, stage, stop, swap, start; then
    // roll back to the old data and start again.
    let id = RestoreID.new() + "-c"
    // One restore at a time: the lease, taken again by the same restore, refused to another;
    // nothing is saved while it is held.
    let lease = RestoreLease(id: id, snapshot: "conformance1")
    try await node.takeLease(lease)
    try await node.takeLease(lease)
    await expectKind(.restoreInProgress, "a second restore") { () async throws(LifeboatError) in
      try await node.takeLease(RestoreLease(id: id + "x", snapshot: "other"))
    }
    await expectKind(.restoreInProgress, "a save during a restore") { () async throws(LifeboatError) in
      _ = try await node.saveSnapshot(NodeSaveRequest(name: "during", upload: false))
    }
    #expect(try await node.health().restore?.contains(id) == true)
    #expect(try await node.restoreStatus().lease == lease)
    await expectKind(.notFound) { () async throws(LifeboatError) in
      _ = try await node.fetch(FetchRequest(id: id, name: "missing", origin: .local, expectedArchiveSHA256: nil, expectedDBSHA256: nil))
    }
    let fetched = try await node.fetch(
      FetchRequest(id: id, name: "conformance1", origin: .local, expectedArchiveSHA256: nil, expectedDBSHA256: nil))
    #expect(fetched.dbSHA256 == saved.snapshot.dbSHA256)
    #expect(fetched.trailer == "valid")
    #expect(fetched.revision == saved.snapshot.revision)
    await expectKind(.verification, "a copy that differs from what the serving node has") { () async throws(LifeboatError) in
      _ = try await node.fetch(
        FetchRequest(id: id, name: "conformance1", origin: .local, expectedArchiveSHA256: nil, expectedDBSHA256: String(repeating: "0", count: 64)))
    }
    _ = try await node.fetch(
      FetchRequest(id: id, name: "conformance1", origin: .local, expectedArchiveSHA256: nil, expectedDBSHA256: nil))
    let context = try cluster.context()
    try await node.stage(StageRequest(id: id, initialCluster: context.config.initialCluster, token: ClusterConfig.clusterToken))
    try await node.stopEtcd()
    #expect(try await node.health().etcdRunning == false)
    let swap = try await node.swap(id)
    #expect(swap.oldDataDir?.hasSuffix(".lifeboat-old-\(id)") == true)
    try await node.startEtcd(quotaBackendBytes: nil)
    #expect(try await node.health().etcdRunning == true)
    // The etcd serving is the one on the data dir (read from /proc), and the journal says where
    // the restore is.
    var confirmed = false
    for _ in 0..<100 where !confirmed {
      do throws(LifeboatError) {
        try await node.confirmRestored(id)
        confirmed = true
      } catch { try await Task.sleep(for: .milliseconds(100)) }
    }
    #expect(confirmed, "the restored etcd serves from the data dir")
    let journal = try await node.restoreStatus().journals.first { $0.id == id }
    #expect(journal?.swapped == true)
    #expect(journal?.steps.contains("swap.done") == true && journal?.steps.last == "check.done", "\(journal?.steps ?? [])")
    let rollback = try await node.rollback(id)
    #expect(rollback.actions.contains { $0.hasPrefix("moved") })
    #expect(try await node.rollback(id).actions.isEmpty, "a second rollback has nothing to undo")
    try await node.startEtcd(quotaBackendBytes: nil)
    try await node.finish(id)
    #expect(!FileManager.default.fileExists(atPath: member.runDir + "/restore-\(id)"))
    #expect(try await node.restoreStatus().journals.count == 1, "the journal outlives the downloads")
    try await node.releaseLease(id)
    #expect(try await node.restoreStatus().isClear)
    #expect(try await node.health().restore == nil)
    // The member answers on its old data.
    let status = try await cluster.withMemberClient(0) { client in
      var last: (any Error)?
      for _ in 0..<100 {
        do { return try await client.status() } catch { last = error }
        try await Task.sleep(for: .milliseconds(100))
      }
      throw last!
    }
    #expect(status.memberID != 0)

    // Bad ids are refused before any file is touched.
    await expectKind(.usage) { () async throws(LifeboatError) in _ = try await node.swap("../../etc") }
    try await node.deleteSnapshot(try SnapshotName("conformance1"))
    #expect(try await node.listSnapshots().isEmpty)
  }

  static func expectKind(
    _ kind: LifeboatError.Kind, _ why: String = "", _ body: () async throws(LifeboatError) -> Void,
    sourceLocation: SourceLocation = #_sourceLocation
  ) async {
    do throws(LifeboatError) {
      try await body()
      Issue.record("expected a \(kind) error \(why)", sourceLocation: sourceLocation)
    } catch {
      #expect(error.kind == kind, "\(error.message)", sourceLocation: sourceLocation)
    }
  }
}
