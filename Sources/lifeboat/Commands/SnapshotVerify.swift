import ArgumentParser
import LifeboatCore
import LifeboatEngine

struct SnapshotVerify: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verify",
    abstract: "Re-read a snapshot and check every hash: ZIP CRC-32, etcd's trailer, the manifest's SHA-256s.")

  @OptionGroup var snapshot: NamedSnapshotOptions
  @OptionGroup var output: JSONOption

  func run() async throws {
    let report = try await SnapshotVerifier().verify(try await snapshot.find(), in: snapshot.storage.catalog)
    if output.json {
      try printJSON(report)
      return
    }
    print("OK \(report.name): \(formatBytes(report.dbSize)) database, sha256 \(report.dbSHA256)")
    for check in report.checks { print("  checked: \(check)") }
    if !report.hasManifest { print("  note: no Lifeboat manifest, so there was no recorded SHA-256 to compare with") }
  }
}
