import ArgumentParser
import LifeboatCore
import LifeboatEngine
import SnapshotStores

/// How to reach etcd, as `etcdctl` takes it.
struct ConnectionOptions: ParsableArguments {
  @Option(help: "Comma-separated etcd client URLs (http:// or https://).")
  var endpoints: String?

  @Option(help: "CA certificate that signed the etcd members' certificates (PEM).")
  var cacert: String?

  @Option(help: "Client certificate (PEM), with --key.")
  var cert: String?

  @Option(help: "Client private key (PEM), with --cert.")
  var key: String?

  func connection() throws(LifeboatError) -> EtcdConnection {
    guard let endpoints else { throw .usage("--endpoints is required (or --config cluster.yml, where the command takes it)") }
    return try EtcdConnection.parse(endpoints: endpoints, caFile: cacert, certFile: cert, keyFile: key)
  }
}

/// Where local snapshots live.
struct SnapshotDirectoryOptions: ParsableArguments {
  @Option(help: "Directory of local snapshots.")
  var snapshotDir: String = LocalStore.rkeDefault

  var store: LocalStore { LocalStore(directory: snapshotDir) }
  var catalog: SnapshotCatalog { SnapshotCatalog(store: store) }
}

/// One existing snapshot, by name, in the snapshot directory.
struct NamedSnapshotOptions: ParsableArguments {
  @Argument(help: "The snapshot's name (as `list` shows it; a trailing .zip is accepted).")
  var name: String

  @OptionGroup var storage: SnapshotDirectoryOptions

  var snapshotName: SnapshotName {
    get throws(LifeboatError) { try SnapshotName.lookup(name) }
  }
}

struct JSONOption: ParsableArguments {
  @Flag(help: "Print JSON for scripts.")
  var json = false
}

extension Compression: ExpressibleByArgument {}
