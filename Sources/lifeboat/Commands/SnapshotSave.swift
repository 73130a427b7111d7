import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import Logging
import SnapshotStores

struct SnapshotSave: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "save",
    abstract: "Stream a snapshot from a healthy etcd member into <snapshot-dir>/<name>.zip (RKE's layout).")

  @OptionGroup var connection: ConnectionOptions
  @OptionGroup var storage: SnapshotDirectoryOptions
  @OptionGroup var remote: S3Options
  @OptionGroup var age: AgeRecipientOptions

  @Option(help: "Snapshot name (default: rke_etcd_snapshot_<RFC 3339 local time>, as RKE names one-time snapshots).")
  var name: String?

  @Option(help: "Cluster state file (cluster.rkestate) to store in the archive.")
  var stateFile: String?

  @Flag(help: "Replace ':' with '-' in the default name (safe on every file system and S3 key).")
  var safeTimestamp = false

  @Option(help: "fast (ISA-L Deflate level 1; the default, or lifeboat.compression with --config), best (libdeflate level 6 on every core: ~17% smaller, ~4x the CPU) or none (stored).")
  var compression: Compression?

  @Option(help: "RKE's cluster.yml: save once through the node agents and keep a copy on every etcd node (S3 from the file).")
  var config: String?

  /// With `--config`, cluster.yml says where etcd, the snapshot directories and S3 are: flags
  /// that say it otherwise would be ignored, so they are refused.
  func validate() throws {
    if age.encryptLocal, age.recipients.isEmpty, config == nil {
      throw ValidationError("--age-encrypt-local needs --age-recipient (whom the copies are encrypted to)")
    }
    if config == nil, !age.recipients.isEmpty, !remote.s3, !age.encryptLocal {
      throw ValidationError(
        "--age-recipient encrypts the S3 copy: add --s3, or --age-encrypt-local to encrypt the local copy (local copies stay plain RKE archives otherwise)")
    }
    guard config != nil else { return }
    var ignored: [String] = []
    if connection.endpoints != nil { ignored.append("--endpoints") }
    if connection.cacert != nil || connection.cert != nil || connection.key != nil { ignored.append("--cacert/--cert/--key") }
    if storage.snapshotDir != LocalStore.rkeDefault { ignored.append("--snapshot-dir") }
    if stateFile != nil { ignored.append("--state-file") }
    if safeTimestamp { ignored.append("--safe-timestamp (set backup_config.safe_timestamp)") }
    if remote.s3 || !remote.given.isEmpty { ignored.append("--s3 and its flags (set s3backupconfig)") }
    if !age.recipients.isEmpty { ignored.append("--age-recipient (set lifeboat.encryption.age_recipients)") }
    if age.encryptLocal { ignored.append("--age-encrypt-local (set lifeboat.encryption.encrypt_local)") }
    if !ignored.isEmpty {
      throw ValidationError("with --config, cluster.yml decides: \(ignored.joined(separator: ", ")) cannot be used")
    }
  }

  func run() async throws {
    let name = try self.name.map { (raw) throws(LifeboatError) in try SnapshotName(raw) }
    if let config {
      try await saveThroughAgents(config: config, name: name)
      return
    }
    let connection = try connection.connection()
    let recipients = try age.parsed()
    let result = try await remote.withStore { s3 in
      var request = SaveRequest(
        connection: connection, store: storage.store, remote: s3, name: name,
        naming: SnapshotNaming(safeTimestamp: safeTimestamp), stateFilePath: stateFile, compression: compression ?? .fast)
      request.remoteRecipients = recipients
      request.encryptLocal = age.encryptLocal
      let progress = SaveProgressDisplay()
      do {
        let result = try await SnapshotSaver().save(request) { progress.handle($0) }
        progress.finish()
        return result
      } catch {
        progress.finish()
        throw error
      }
    }
    let m = result.manifest
    let rate = Double(m.dbSize) / max(0.001, Double(result.elapsed.components.seconds) + Double(result.elapsed.components.attoseconds) / 1e18)
    print("""
      saved \(m.name)
        archive   \(result.archivePath) (\(formatBytes(m.archiveSize)), compression \(m.compression.rawValue)\(m.stateFile ? ", with state file" : ""))
        manifest  \(result.manifestPath)
        member    \(m.member.name) (\(m.member.endpoint)), revision \(m.revision)\(m.noQuorum ? ", NO QUORUM" : "")
        database  \(formatBytes(m.dbSize)), sha256 \(m.dbSHA256)
        took      \(formatDuration(result.elapsed)) (\(formatBytes(UInt64(rate)))/s)
      """)
    if let remoteArchive = result.remoteArchive { print("  uploaded  \(remoteArchive)") }
    if let uploadError = result.uploadError { throw uploadError }
  }
}

extension SnapshotSave {
  func saveThroughAgents(config: String, name: SnapshotName?) async throws {
    let context = try ClusterContext.load(config)
    let report = try await context.withRemoteNodes { (nodes) async throws(LifeboatError) in
      try await ClusterEngine(context: context, nodes: nodes, progress: progressLine).save(name: name, compression: compression)
    }
    let s = report.saved.snapshot
    print("""
      saved \(s.name) on \(report.savedOn) from \(report.saved.member)\(report.saved.noQuorum ? " (NO QUORUM)" : "")
        archive   \(formatBytes(s.size)), sha256 \(s.archiveSHA256 ?? "-"), revision \(s.revision.map(String.init) ?? "-")
        copies    \(report.copies.sorted().joined(separator: ", "))
      """)
    if let remote = report.saved.remote { print("  uploaded  \(remote)") }
    for line in report.shared { print("  shared    \(line)") }
    if let error = Self.copyFailure(report.failures, name: s.name) { throw error }
    if let uploadError = report.saved.uploadError { throw LifeboatError.storage(uploadError) }
  }

  /// Nodes without their copy: a storage error (6), unless a restore that started meanwhile
  /// refused the copy (9, as every refusal during a restore).
  static func copyFailure(_ failures: [LifeboatError], name: String) -> LifeboatError? {
    guard !failures.isEmpty else { return nil }
    let list = failures.map(\.message).joined(separator: "; ")
    let kind: LifeboatError.Kind = failures.contains { $0.kind == .restoreInProgress } ? .restoreInProgress : .storage
    return LifeboatError(kind, "saved \(name), but not every node has a copy: \(list)")
  }
}
