import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores

struct SnapshotDrillCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drill",
    abstract: "Prove a snapshot restorable: restore it into a throwaway etcd on loopback and compare what it serves.",
    discussion: """
      Verifies the snapshot, reads its database offline (revision, HashKV, objects), restores it \
      into a member of its own (own name and cluster token, free ports on 127.0.0.1, lower CPU \
      priority), then checks that the member serves the snapshot's revision (and the manifest's), \
      the same HashKV and the same objects. The throwaway etcd and its directory are removed \
      whatever happens. Exit 0 when every check held, 4 when the snapshot does not restore or \
      disagrees with what it claims. With --config the snapshot is found where a restore finds it \
      (a node's snapshot directory through its agent, else cluster.yml's S3 bucket; --s3 goes \
      straight to the bucket) and read where it is, never copied first.
      """)

  @Argument(help: "The snapshot's name (as `list` shows it).")
  var name: String?

  @Flag(help: "Drill the newest snapshot (by its manifest's time, else the file's) instead of a named one.")
  var latest = false

  @OptionGroup var storage: SnapshotDirectoryOptions
  @OptionGroup var output: JSONOption
  @OptionGroup var remote: S3Options
  @OptionGroup var age: AgeIdentityOptions

  @Option(help: "Where the scratch directory goes (default: the system's temporary directory).")
  var scratchDir: String?

  @Option(help: "RKE's cluster.yml: drill a snapshot of the cluster's nodes or its S3 bucket (as restore finds it).")
  var config: String?

  func validate() throws {
    if latest == (name != nil) { throw ValidationError("give a snapshot NAME or --latest (one of them)") }
    if config != nil {
      if !remote.given.isEmpty { throw ValidationError("with --config, S3 comes from cluster.yml (give only --s3): \(remote.given.joined(separator: ", "))") }
      if storage.snapshotDir != LocalStore.rkeDefault { throw ValidationError("--config and --snapshot-dir do not go together") }
    }
  }

  func run() async throws {
    let wanted = try name.map { (name) throws(LifeboatError) in try SnapshotName.lookup(name) }
    var drill = SnapshotDrill(progress: progressLine)
    if let scratchDir { drill.scratchParent = scratchDir }
    let report: DrillReport
    if let config {
      let context = try ClusterContext.load(config)
      report = try await context.withRemoteNodes { (nodes) async throws(LifeboatError) in
        try await ClusterEngine(context: context, nodes: nodes, progress: progressLine).drill(
          wanted, fromS3: remote.s3, with: drill, identities: try age.identities())
      }
    } else {
      report = try await drillHere(wanted, drill)
    }
    try show(report)
  }

  /// The snapshot directory's snapshot, or the bucket's with --s3.
  private func drillHere(_ wanted: SnapshotName?, _ drill: SnapshotDrill) async throws -> DrillReport {
    try await remote.withStore { s3 in
      let identities = try age.identities()
      let catalog = s3.map { SnapshotCatalog(store: $0, identities: identities) } ?? SnapshotCatalog(store: storage.store, identities: identities)
      let snapshot: StoredSnapshot
      if let wanted {
        snapshot = try await catalog.find(wanted)
      } else {
        guard let newest = try await catalog.list().max(by: { $0.created < $1.created }) else {
          throw LifeboatError.notFound("no snapshot in \(s3 == nil ? storage.snapshotDir : "the bucket") to drill")
        }
        snapshot = newest
      }
      return try await drill.drill(snapshot, in: catalog)
    }
  }

  private func show(_ report: DrillReport) throws {
    if output.json {
      try printJSON(report)
    } else {
      var rows = [["CHECK", "RESULT", "SECONDS", "DETAIL"]]
      rows += report.checks.map { [$0.name, $0.passed ? "ok" : "FAILED", String(format: "%.2f", $0.seconds), $0.detail] }
      print(table(rows))
      print("ran with: \(report.runner)")
      if let objects = report.objects {
        print("served: \(objects.total) keys at revision \(objects.revision)" + (objects.kubernetes.isEmpty ? "" : "; ")
          + objects.kubernetes.prefix(8).map { "\($0.resource)\($0.namespace.map { "/" + $0 } ?? "") \($0.count)" }.joined(separator: ", ")
          + (objects.kubernetes.count > 8 ? ", ..." : ""))
      }
    }
    if let failure = report.failure {
      throw LifeboatError(.verification, "drill of \(report.name) failed at \(failure.name): \(failure.detail)")
    }
  }
}
