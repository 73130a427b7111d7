import Foundation
import LifeboatCore

/// What `lifeboat snapshot inspect` prints.
public struct InspectReport: Sendable, Codable {
  public var name: String
  public var path: String
  public var kind: LocalSnapshot.Kind
  public var fileSize: UInt64
  public var modified: Date
  public var manifest: Manifest?
  public var dbSize: UInt64
  public var dbSHA256: String
  public var trailer: String
  public var stateFile: Bool
  /// Read from the database itself, as `etcdctl snapshot status` reports it.
  public var status: DatabaseStatus?
  /// Why `status` is missing, when it is.
  public var statusProblem: String?

  public struct DatabaseStatus: Sendable, Codable {
    /// etcd's hash of the database content (CRC-32C over every bucket, key and value).
    public var hash: UInt32
    /// Highest revision stored in the snapshot.
    public var revision: Int64
    /// Keys in the database counted the way `etcdctl snapshot status` counts "total keys":
    /// every stored revision of every key plus etcd's internal keys (members, leases, meta).
    public var totalKeys: Int64
    public var totalSize: Int64
    /// Where the figures come from ("etcdctl snapshot status").
    public var source: String
  }
}

/// Reads a snapshot's facts: the manifest (when Lifeboat made it), the archive's entries and
/// hashes, and the database's own revision and key count. For the latter the database is
/// extracted to a temporary file (removed afterwards) and read by `etcdctl snapshot status`.
public struct SnapshotInspector: Sendable {
  public var temporaryDirectory: String
  public var etcdctl: String?

  public init(temporaryDirectory: String = NSTemporaryDirectory(), etcdctl: String? = ProcessRunner.which("etcdctl")) {
    self.temporaryDirectory = temporaryDirectory
    self.etcdctl = etcdctl
  }

  public func inspect(_ snapshot: LocalSnapshot) throws(LifeboatError) -> InspectReport {
    if let problem = snapshot.manifestProblem { throw .verification(problem) }
    let content = try SnapshotContent(snapshot)
    var report = InspectReport(
      name: snapshot.name.value, path: snapshot.path, kind: snapshot.kind, fileSize: snapshot.size,
      modified: snapshot.modified, manifest: snapshot.manifest, dbSize: 0, dbSHA256: "", trailer: "",
      stateFile: content.hasStateFile)

    let digest: SnapshotDigest.Result
    if let etcdctl {
      let temporary = temporaryDirectory + "/lifeboat-inspect-\(UUID().uuidString).db"
      let file = try AtomicFile(finalPath: temporary)
      defer {
        file.discard()
        unlink(temporary)
      }
      digest = try content.readDatabase { (chunk) throws(LifeboatError) in try file.write(chunk) }
      try file.commit()
      do {
        report.status = try Self.etcdctlStatus(etcdctl: etcdctl, path: temporary)
      } catch {
        report.statusProblem = error.message
      }
    } else {
      digest = try content.readDatabase()
      report.statusProblem = "etcdctl not found on PATH: revision and key count read from the manifest only"
    }
    report.dbSize = digest.size
    report.dbSHA256 = digest.sha256
    report.trailer = digest.trailer.rawValue
    return report
  }

  static func etcdctlStatus(etcdctl: String, path: String) throws(LifeboatError) -> InspectReport.DatabaseStatus {
    let result = try ProcessRunner.run(
      etcdctl, ["snapshot", "status", path, "--write-out=json"], environment: ["ETCDCTL_API": "3"])
    guard result.status == 0 else {
      let reason = result.stderr.split(whereSeparator: \.isNewline).last.map(String.init) ?? "exit \(result.status)"
      throw .verification("etcdctl snapshot status cannot read the database: \(reason)")
    }
    struct Output: Decodable {
      var hash: UInt32
      var revision: Int64
      var totalKey: Int64
      var totalSize: Int64
    }
    guard let output = try? JSONDecoder().decode(Output.self, from: Data(result.stdout.utf8)) else {
      throw .failure("unexpected output from etcdctl snapshot status")
    }
    return .init(
      hash: output.hash, revision: output.revision, totalKeys: output.totalKey, totalSize: output.totalSize,
      source: "etcdctl snapshot status")
  }
}
