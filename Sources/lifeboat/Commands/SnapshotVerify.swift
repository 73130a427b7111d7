import ArgumentParser
import LifeboatCore
import LifeboatEngine
import SnapshotStores

struct SnapshotVerify: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verify",
    abstract: "Re-read a snapshot and check every hash: ZIP CRC-32, etcd's trailer, the manifest's SHA-256s.",
    discussion: "With --s3 the copy in S3 is read back and checked; without, the local one.")

  @OptionGroup var snapshot: NamedSnapshotOptions
  @OptionGroup var output: JSONOption
  @OptionGroup var remote: S3Options
  @OptionGroup var age: AgeIdentityOptions

  func run() async throws {
    let name = try snapshot.snapshotName
    let report = try await remote.withStore { s3 in
      let identities = try age.identities()
      let catalog = s3.map { SnapshotCatalog(store: $0, identities: identities) } ?? SnapshotCatalog(store: snapshot.storage.store, identities: identities)
      return try await SnapshotVerifier().verify(try await catalog.find(name), in: catalog)
    }
    if output.json {
      try printJSON(report)
      return
    }
    print("OK \(report.name) (\(report.path)): \(formatBytes(report.dbSize)) database, sha256 \(report.dbSHA256)")
    for check in report.checks { print("  checked: \(check)") }
    if !report.hasManifest { print("  note: no Lifeboat manifest, so there was no recorded SHA-256 to compare with") }
    for note in report.notes ?? [] { print("  note: \(note)") }
  }
}
