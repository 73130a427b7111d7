/// RKE's archive layout: `/backup/<name>` holds the etcd snapshot and, when there is one,
/// `/etc/kubernetes/<name>.rkestate` the cluster state. Entries are matched by their last path
/// component, so archives written with relative paths (`backup/<name>`) are read too.
public struct SnapshotArchiveLayout: Sendable {
  public var snapshot: ZipEntry
  public var stateFile: ZipEntry?

  public init(entries: [ZipEntry], name: SnapshotName, archivePath: String) throws(LifeboatError) {
    let files = entries.filter { !$0.isDirectory }
    let stateName = name.value + ".rkestate"
    guard let snapshot = files.first(where: { $0.fileName == name.value }) else {
      let found = files.map(\.path).joined(separator: ", ")
      throw .verification(
        "\(archivePath) has no entry /backup/\(name) (entries: \(found.isEmpty ? "none" : found))")
    }
    self.snapshot = snapshot
    self.stateFile = files.first(where: { $0.fileName == stateName })
  }
}
