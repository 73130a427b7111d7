import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores

struct SnapshotList: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list",
    abstract: "List the snapshots in the snapshot directory (Lifeboat's, RKE's and legacy files), and with --s3 in the bucket.")

  @OptionGroup var storage: SnapshotDirectoryOptions

  @OptionGroup var output: JSONOption
  @OptionGroup var remote: S3Options

  struct Row: Encodable {
    var name: String
    var kind: String
    var path: String
    var created: Date
    var size: UInt64
    var revision: Int64?
    var member: String?
    var stateFile: Bool?
    var manifest: Bool
    var problem: String?
    /// Where copies are: "local", "s3".
    var locations: [String]
    var s3Path: String?
    /// The archive is encrypted with age (`<name>.zip.age`).
    var encrypted: Bool?
  }

  func run() async throws {
    if !FileManager.default.fileExists(atPath: storage.snapshotDir) {
      // A missing directory is a mistake to point out, not "no snapshots" (with --s3 the bucket
      // is still listed).
      guard remote.s3 else { throw LifeboatError.usage("the snapshot directory \(storage.snapshotDir) does not exist") }
      printError("warning: the snapshot directory \(storage.snapshotDir) does not exist; listing the bucket only")
    }
    let rows = try await remote.withStore { s3 in
      if let s3 {
        let proxy = s3.configuration.proxy.map { ", proxy \($0) (\($0.origin))" } ?? ""
        printError("\(s3.location) at \(s3.configuration.endpoint): keys from \(s3.configuration.credentials.source)\(proxy)")
      }
      var rows: [String: Row] = [:]
      for (label, catalog) in [("local", storage.catalog)] + (s3.map { [("s3", SnapshotCatalog(store: $0))] } ?? []) {
        for s in try await catalog.list() {
          if var existing = rows[s.name.value] {
            existing.locations.append(label)
            if label == "s3" { existing.s3Path = s.path }
            rows[s.name.value] = existing
            continue
          }
          var stateFile = s.manifest?.stateFile
          if stateFile == nil { stateFile = s.kind == .legacy ? false : await Self.archiveHasStateFile(s, catalog) }
          rows[s.name.value] = Row(
            name: s.name.value, kind: s.kind.rawValue, path: s.path, created: s.created, size: s.size,
            revision: s.manifest?.revision, member: s.manifest?.member.name, stateFile: stateFile,
            manifest: s.manifest != nil, problem: s.manifestProblem, locations: [label],
            s3Path: label == "s3" ? s.path : nil, encrypted: s.encrypted ? true : nil)
        }
      }
      // What a killed save left: shown, so that it can be deleted.
      for part in storage.store.abandonedParts() {
        let key = String(part.key.dropLast(".part".count))
        let name = SnapshotName.archiveStem(of: key) ?? key
        guard rows[name] == nil else { continue }
        rows[name] = Row(
          name: name, kind: "incomplete", path: storage.store.path(part.key), created: part.modified, size: part.size,
          manifest: false, problem: "\(storage.store.path(part.key)) is what an interrupted save left: `lifeboat snapshot delete \(name)` removes it",
          locations: ["local"])
      }
      return rows.values.sorted { $0.name < $1.name }
    }
    if output.json {
      try printJSON(rows)
      return
    }
    if rows.isEmpty {
      printError("no snapshots in \(storage.snapshotDir)\(remote.s3 ? " or the bucket" : "")")
      return
    }
    var lines = [["NAME", "CREATED", "SIZE", "REVISION", "MEMBER", "STATE FILE", "KIND", "WHERE"]]
    for row in rows {
      lines.append([
        row.name, formatDate(row.created), formatBytes(row.size), row.revision.map(String.init) ?? "-",
        row.member ?? "-", row.stateFile.map { $0 ? "yes" : "no" } ?? "?",
        row.kind == "legacy" ? "legacy file" : row.kind == "incomplete" ? "INCOMPLETE (.part)"
          : (row.encrypted == true ? "age-encrypted " : "") + (row.manifest ? "archive" : "archive (no manifest)"),
        row.locations.joined(separator: "+"),
      ])
    }
    print(table(lines))
    for row in rows where row.problem != nil { printError("warning: \(row.problem!)") }
  }

  /// For archives without a manifest (RKE's): read the central directory only.
  static func archiveHasStateFile(_ snapshot: StoredSnapshot, _ catalog: SnapshotCatalog) async -> Bool? {
    guard !snapshot.encrypted, let source = try? await catalog.source(of: snapshot), let reader = try? await ZipReader(source: source) else {
      return nil
    }
    return reader.entries.contains { $0.fileName == snapshot.name.value + ".rkestate" }
  }
}
