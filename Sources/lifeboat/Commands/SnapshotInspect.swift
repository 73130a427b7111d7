import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores

struct SnapshotInspect: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inspect", abstract: "Show a snapshot's revision, key count, sizes, hashes and contents.")

  @OptionGroup var snapshot: NamedSnapshotOptions
  @OptionGroup var output: JSONOption

  @Flag(help: "Also count the Kubernetes objects in the snapshot (by resource and namespace) and other keys, read offline.")
  var objects = false
  @OptionGroup var remote: S3Options
  @OptionGroup var age: AgeIdentityOptions

  func run() async throws {
    let name = try snapshot.snapshotName
    let report = try await remote.withStore { s3 in
      let identities = try age.identities()
      let catalog = s3.map { SnapshotCatalog(store: $0, identities: identities) } ?? SnapshotCatalog(store: snapshot.storage.store, identities: identities)
      return try await SnapshotInspector().inspect(try await catalog.find(name), in: catalog, objects: objects)
    }
    if output.json {
      try printJSON(report)
      return
    }
    var rows: [[String]] = [
      ["name", report.name],
      ["path", "\(report.path) (\(formatBytes(report.fileSize)))"],
      ["kind", Self.describeKind(report)],
    ]
    if let m = report.manifest {
      rows += [
        ["created", formatDate(m.createdAt)],
        ["member", "\(m.member.name) (id \(m.member.id), \(m.member.endpoint), etcd \(m.member.etcdVersion))"],
        ["compression", m.compression.rawValue],
      ]
      if m.noQuorum { rows.append(["warning", "taken without quorum: may miss the last writes"]) }
    } else {
      rows.append(["modified", formatDate(report.modified)])
    }
    rows += [
      ["revision", "\(report.status.revision)"],
      ["total keys", "\(report.status.totalKeys) (every stored revision of every key and etcd's internal keys, as etcdctl counts)"],
      ["etcd hash", "\(report.status.hash) (CRC-32C, as etcdctl snapshot status prints it)"],
    ]
    rows += [
      ["db size", "\(formatBytes(report.dbSize)) (\(report.dbSize) bytes)"],
      ["db sha256", report.dbSHA256],
      ["etcd trailer", report.trailer],
    ]
    if let m = report.manifest { rows.append(["archive sha256", m.archiveSHA256]) }
    if report.kind == .archive { rows.append(["state file", report.stateFile ? "yes" : "no"]) }
    print(table(rows.map { [$0[0] + ":", $0[1]] }))
    if let objects = report.objects {
      print("")
      print("objects at revision \(objects.revision): \(objects.total) live keys")
      var lines = [["RESOURCE", "NAMESPACE", "COUNT"]]
      lines += objects.kubernetes.map { [$0.resource, $0.namespace ?? "(cluster)", String($0.count)] }
      lines += objects.other.sorted { $0.key < $1.key }.map { ["(not Kubernetes) \($0.key)", "", String($0.value)] }
      print(table(lines))
    }
  }

  static func describeKind(_ report: InspectReport) -> String {
    switch report.kind {
    case .legacy: "legacy snapshot file (not zipped)"
    case .archive: report.manifest == nil ? "archive without a Lifeboat manifest (made by RKE?)" : "archive with a Lifeboat manifest"
    }
  }
}
