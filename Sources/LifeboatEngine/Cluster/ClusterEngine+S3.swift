import Foundation
import LifeboatCore
import SnapshotStores

/// Catch-up of S3: recurring snapshots a node holds that never reached the bucket.
extension ClusterEngine {
  /// Uploads every complete recurring snapshot of `node` (archive with manifest) that S3 lacks:
  /// archive first, manifest last, as `save --s3` does. Returns the names uploaded. One-time
  /// snapshots kept local stay local.
  public func catchUpS3(from node: any Node) async throws(LifeboatError) -> [String] {
    guard let configuration = try context.s3Configuration() else { return [] }
    let local = try await node.listSnapshots().filter { s in
      s.kind == .archive && s.dbSHA256 != nil && (try? SnapshotName(s.name)).flatMap(RetentionCandidate.recurringTime) != nil
    }
    guard !local.isEmpty else { return [] }
    return try await withS3(configuration) { (s3) async throws(LifeboatError) in
      let remote = Set(try await SnapshotCatalog(store: s3).list().filter { $0.manifest != nil }.map(\.name.value))
      var uploaded: [String] = []
      for snapshot in local where !remote.contains(snapshot.name) {
        let name = try SnapshotName(snapshot.name)
        let (archive, manifest) = try await node.openSnapshot(name)
        guard let manifest else { continue }
        let recipients = context.config.lifeboat.ageRecipients
        let described = try Manifest.decode(manifest, path: "\(node.address):\(name.manifestFileName)")
        if described.encryption != nil || recipients.isEmpty {
          // As the node stores it: plain, or encrypted already (encrypt_local, the same bytes).
          let sealed = described.encryption != nil
          try await s3.put(
            sealed ? name.encryptedArchiveFileName : name.archiveFileName, from: archive,
            contentType: sealed ? ContentType.age : ContentType.zip, replace: true)
          _ = try await s3.put(name.manifestFileName, manifest, contentType: ContentType.json)
        } else {
          // Encrypted as `save` would have: never a plain copy in the bucket.
          let writer = AgeEncryptingWriter(
            base: try await s3.makeWriter(for: name.encryptedArchiveFileName, contentType: ContentType.age, replace: true),
            recipients: recipients)
          try await writer.fill(from: archive)
          var described = described
          described.encryption = await writer.manifestEncryption
          _ = try await s3.put(name.manifestFileName, try described.encoded(), contentType: ContentType.json)
        }
        uploaded.append(name.value)
      }
      return uploaded
    }
  }
}
