import Foundation
import LifeboatCore
import SnapshotStores

extension ClusterEngine {
  /// `snapshot drill --config`: drills the snapshot where a restore would find it, read where it
  /// is (nothing is copied first): on the first node in config order that has `name` (`nil`: the
  /// newest snapshot on any node that answers), else, or with `fromS3`, in the config's bucket.
  /// `identities` open encrypted copies (a node's with `encrypt_local`, the bucket's `.zip.age`).
  public func drill(
    _ name: SnapshotName?, fromS3: Bool, with drill: SnapshotDrill, identities: [AgeIdentity] = []
  ) async throws(LifeboatError) -> DrillReport {
    var unreachable: [String] = []
    if !fromS3 {
      var chosen: (node: any Node, listed: NodeSnapshot)?
      for node in nodes {
        let listed: [NodeSnapshot]
        do { listed = try await node.listSnapshots() } catch {
          unreachable.append(error.message)
          continue
        }
        if let name {
          if let found = listed.first(where: { $0.name == name.value }) {
            chosen = (node, found)
            break
          }
        } else if let newest = listed.max(by: { $0.created < $1.created }), newest.created > chosen?.listed.created ?? .distantPast {
          chosen = (node, newest)
        }
      }
      if let (node, listed) = chosen {
        let found = try SnapshotName(listed.name)
        let (stored, manifest) = try await node.openSnapshot(found)
        let directory = context.config.etcdNodes.first { $0.address == node.address }?.snapshotDir ?? ""
        var archive = stored
        var key = listed.kind == .archive ? found.archiveFileName : found.value
        if listed.encrypted == true {
          guard !identities.isEmpty else {
            throw .usage("\(found) on \(node.address) is encrypted (age): give --age-identity with a key it was encrypted to")
          }
          archive = try await AgeDecryptingSource(base: stored, identities: identities)
          key = found.encryptedArchiveFileName
        }
        let snapshot = SnapshotCatalog.described(
          found, kind: listed.kind, object: StoredObject(key: key, size: archive.size, modified: listed.created),
          location: "\(node.address):\(directory)", manifest: manifest)
        progress("drilling \(found) from \(node.address)")
        return try await drill.drill(snapshot, source: archive)
      }
    }
    guard let s3 = try context.s3Configuration() else {
      if fromS3 { throw .usage("\(context.config.path) has no s3backupconfig: cannot drill from S3") }
      let what = name.map { "snapshot \($0) is on no reachable etcd node" } ?? "no reachable etcd node has a snapshot"
      // Not found where it could be looked for: nodes that did not answer may hold it.
      if !unreachable.isEmpty {
        throw .unavailable("\(what) and no S3 is configured; unreachable: \(unreachable.joined(separator: ", "))")
      }
      throw .notFound("\(what) and no S3 is configured")
    }
    return try await withS3(s3) { (store) async throws(LifeboatError) in
      let catalog = SnapshotCatalog(store: store, identities: identities)
      let snapshot: StoredSnapshot
      if let name {
        snapshot = try await catalog.find(name)
      } else {
        guard let newest = try await catalog.list().max(by: { $0.created < $1.created }) else {
          throw LifeboatError.notFound("no snapshot on any etcd node or in \(store.location)")
        }
        snapshot = newest
      }
      progress("drilling \(snapshot.name) from \(snapshot.path)")
      return try await drill.drill(snapshot, in: catalog)
    }
  }
}
