import Foundation
import LifeboatCore

/// How `lifeboat local up` runs etcd.
public enum LocalRuntime: String, Codable, Sendable, CaseIterable {
  /// Detached etcd processes the agents stop and start (`lifeboat.runtime: supervised`).
  case supervised
  /// RKE's layout: a Docker engine per node and etcd in its container `etcd`.
  case docker
}

/// `<dir>/cluster.json`: what `lifeboat local up` started, so `env` and `down` act on exactly
/// those members.
public struct LocalClusterState: Codable, Sendable {
  public var format = 1
  /// How etcd runs: `supervised` (nil in older files) or `docker`.
  public var runtime: LocalRuntime?
  public var tls: Bool
  public var token: String
  public var members: [Member]
  /// Paths of the CA and the operator's (`kube-admin`) certificate and key, with TLS.
  public var caFile: String?
  public var clientCertFile: String?
  public var clientKeyFile: String?
  /// The `cluster.yml` written for this cluster (its state file is next to it).
  public var configFile: String?
  /// etcd's `--quota-backend-bytes` (docker: fixed in the containers' arguments).
  public var quotaBackendBytes: Int64?

  public struct Member: Codable, Sendable {
    /// The node's name (`node1`); the etcd member is `etcd-<node>`, as RKE names them.
    public var node: String
    public var address: String
    public var clientPort: Int
    public var peerPort: Int
    public var dataDir: String
    public var logFile: String
    public var certFile: String?
    public var keyFile: String?
    /// PID of etcd when `up` started it (a restore restarts it: the runtime's PID file is current).
    public var pid: Int32?
    /// docker: PID of the node's Docker engine that `up` started.
    public var enginePid: Int32?
    /// docker: the node's engine (`unix://<node dir>/docker.sock`).
    public var dockerHost: String?
    public var agentPort: Int?
    /// PID of the node's agent, nil when none runs.
    public var agentPid: Int32?
    /// The node's own directory (PID files, logs, restore work).
    public var runDir: String
    public var snapshotDir: String?

    public var memberName: String { "etcd-" + node }
  }

  /// The config and state file written by `up`.
  public func context() throws(LifeboatError) -> ClusterContext {
    guard let configFile else { throw .usage("this local cluster predates cluster.yml; recreate it with `lifeboat local down --purge` and `up`") }
    return try ClusterContext.load(configFile)
  }

  public func scheme() -> String { tls ? "https" : "http" }
  public func clientURL(_ m: Member) -> String { "\(scheme())://\(m.address):\(m.clientPort)" }
  public func peerURL(_ m: Member) -> String { "\(scheme())://\(m.address):\(m.peerPort)" }
  public var endpoints: [String] { members.map(clientURL) }
  public var initialCluster: String { members.map { "\($0.memberName)=\(peerURL($0))" }.joined(separator: ",") }

  /// The flags that point `lifeboat snapshot` (and `etcdctl`) at this cluster.
  public var connectionFlags: [String] {
    var flags = ["--endpoints", endpoints.joined(separator: ",")]
    if let caFile, let clientCertFile, let clientKeyFile {
      flags += ["--cacert", caFile, "--cert", clientCertFile, "--key", clientKeyFile]
    }
    return flags
  }

  /// `export` lines for etcdctl.
  public var environmentExports: String {
    var lines = ["export ETCDCTL_API=3", "export ETCDCTL_ENDPOINTS=\(endpoints.joined(separator: ","))"]
    if let caFile, let clientCertFile, let clientKeyFile {
      lines += [
        "export ETCDCTL_CACERT=\(caFile)", "export ETCDCTL_CERT=\(clientCertFile)", "export ETCDCTL_KEY=\(clientKeyFile)",
      ]
    }
    return lines.joined(separator: "\n")
  }

  static func path(in directory: String) -> String { directory + "/cluster.json" }

  public static func load(from directory: String) throws(LifeboatError) -> LocalClusterState {
    let file = path(in: directory)
    guard let data = FileManager.default.contents(atPath: file) else {
      throw .notFound("no local cluster in \(directory) (run `lifeboat local up --dir \(directory)` first)")
    }
    do { return try JSONDecoder().decode(LocalClusterState.self, from: data) } catch {
      throw .usage("\(file) is not a Lifeboat local cluster file: \(error)")
    }
  }

  public func save(to directory: String) throws(LifeboatError) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let data: Data
    do { data = try encoder.encode(self) } catch { throw .failure("cannot encode the cluster file: \(error)") }
    try AtomicFile.write([UInt8](data), to: Self.path(in: directory), mode: 0o600)
  }
}
