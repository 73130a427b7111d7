import ArgumentParser
import LifeboatCore
import SnapshotStores

struct SnapshotDelete: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "delete",
    abstract: "Delete a snapshot: the local archive and its manifest (or legacy file), and with --s3 the objects in the bucket.")

  @OptionGroup var snapshot: NamedSnapshotOptions
  @OptionGroup var remote: S3Options

  func run() async throws {
    let name = try snapshot.snapshotName
    var deleted: [String] = []
    var locked: [String] = []
    try await remote.withStore { s3 in
      // Look everything up first, so a missing snapshot deletes nothing anywhere.
      var targets: [(any SnapshotStore, StoredSnapshot)] = []
      for store in [snapshot.storage.store as any SnapshotStore] + (s3.map { [$0 as any SnapshotStore] } ?? []) {
        do {
          targets.append((store, try await SnapshotCatalog(store: store).find(name)))
        } catch let error as LifeboatError where error.kind == .notFound {}
      }
      // A `.part` an interrupted save left goes too (never one a save still writes), plain or encrypted.
      for key in name.archiveFileNames where try snapshot.storage.store.removeAbandonedPart(of: key) {
        deleted.append(snapshot.storage.store.path(key + ".part"))
      }
      guard !targets.isEmpty || !deleted.isEmpty else {
        throw LifeboatError.notFound(
          "snapshot \(name) not found in \(snapshot.storage.snapshotDir)\(s3.map { " or \($0.location)" } ?? "")")
      }
      for (store, found) in targets {
        do {
          deleted += try await SnapshotCatalog(store: store).delete(found)
        } catch let error as LifeboatError where error.underlying == .locked {
          // Object Lock: kept, said, and not a failure (the lock is doing its job).
          locked.append(error.message)
        }
      }
    }
    for path in deleted { print("deleted \(path)") }
    for line in locked { print(line) }
  }
}
