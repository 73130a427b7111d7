import Foundation
import LifeboatCore

/// What `etcdutl|etcdctl snapshot restore` is asked to do on one node.
public struct RestoreInvocation: Sendable, Equatable {
  /// The unzipped etcd snapshot on the host.
  public var database: String
  /// The staging data directory to create on the host (must not exist).
  public var stagingDir: String
  public var memberName: String
  public var initialCluster: String
  public var token: String
  public var peerURL: String
  /// The snapshot has no SHA-256 trailer (a copied db file): `--skip-hash-check`.
  public var skipHashCheck: Bool
  /// The restore's id (names the docker runtime's restore container).
  public var id: String

  public init(
    database: String, stagingDir: String, memberName: String, initialCluster: String, token: String, peerURL: String,
    skipHashCheck: Bool, id: String = "manual"
  ) {
    self.id = id
    self.database = database
    self.stagingDir = stagingDir
    self.memberName = memberName
    self.initialCluster = initialCluster
    self.token = token
    self.peerURL = peerURL
    self.skipHashCheck = skipHashCheck
  }
}

/// A command line to run on the node.
public struct NodeCommand: Sendable, Equatable {
  public var executable: String
  public var arguments: [String]
  public var environment: [String: String] = [:]

  public var rendered: String { ([executable] + arguments).joined(separator: " ") }
}

/// How one node's etcd is stopped, started and restored. Implementations: `SupervisedRuntime`
/// (Lifeboat starts etcd itself), `DockerRuntime` (RKE's container `etcd`, through the Docker
/// Engine API), and `CommandRuntime` for systemd and the operator's own commands.
public protocol EtcdRuntime: Sendable {
  /// One line for plans and messages (`docker container etcd`).
  var summary: String { get }
  /// Whether etcd runs; nil when the runtime cannot tell.
  func isRunning() async -> Bool?
  /// The PID (in this host's view) of the etcd the runtime runs, when it can tell.
  func currentPID() async -> Int32?
  func stop() async throws(LifeboatError)
  /// Starts etcd; `quotaBackendBytes` is honoured where the runtime controls etcd's flags.
  func start(quotaBackendBytes: Int64?) async throws(LifeboatError)
  /// Restores a snapshot into a staging directory (default: runs `restoreCommand` on the host).
  func restore(_ invocation: RestoreInvocation) async throws(LifeboatError)
  /// The command that restores a snapshot into a staging directory on the host.
  func restoreCommand(_ invocation: RestoreInvocation) async throws(LifeboatError) -> NodeCommand
  /// What is missing or wrong to restore a db of `dbSize` bytes on this node (the restore tool,
  /// the container, a quota smaller than the db); empty when ready.
  func preflightProblems(dbSize: UInt64) async -> [String]
  /// Removes what an interrupted restore `id` left with the runtime (a restore container).
  func removeRestoreLeftovers(id: String) async
}

extension EtcdRuntime {
  public func currentPID() async -> Int32? { nil }
  public func removeRestoreLeftovers(id: String) async {}

  /// Runs the restore command; a failure names the node's command and etcd's last line.
  public func restore(_ invocation: RestoreInvocation) async throws(LifeboatError) {
    let command = try await restoreCommand(invocation)
    guard let executable = ProcessRunner.which(command.executable) else {
      throw .failure("cannot restore: \(command.executable) not found on PATH")
    }
    // Large databases take minutes: the limit only catches a tool that hangs.
    let result = try await ProcessRunner.run(executable, command.arguments, environment: command.environment, timeout: .seconds(6 * 3600))
    guard result.status == 0 else {
      // A full disk is a storage error (exit 6), like every other write that runs out of room.
      let kind: LifeboatError.Kind = (result.stderr + result.stdout).lowercased().contains("no space left on device") ? .storage : .failure
      throw LifeboatError(
        kind, "snapshot restore into \(invocation.stagingDir) failed (exit \(result.status)): \(result.lastLine)", underlying: .process)
    }
  }
}

/// Picks the host's restore tool: the configured one, else `etcdutl`, else `etcdctl` (3.4).
enum RestoreTool {
  static func find(_ configured: String?) -> String? {
    if let configured { return ProcessRunner.which(configured) }
    return ProcessRunner.which("etcdutl") ?? ProcessRunner.which("etcdctl")
  }

  static func command(tool: String, _ r: RestoreInvocation, databasePath: String? = nil, stagingPath: String? = nil)
    -> NodeCommand
  {
    var arguments = [
      "snapshot", "restore", databasePath ?? r.database, "--data-dir=\(stagingPath ?? r.stagingDir)", "--name=\(r.memberName)",
      "--initial-cluster=\(r.initialCluster)", "--initial-cluster-token=\(r.token)",
      "--initial-advertise-peer-urls=\(r.peerURL)",
    ]
    if r.skipHashCheck { arguments.append("--skip-hash-check") }
    // Failpoint: the restore tool fails (an argument it does not know).
    if Failpoints.fire("restore.fail") { arguments.append("--lifeboat-failpoint-restore-fail") }
    return NodeCommand(executable: tool, arguments: arguments, environment: ["ETCDCTL_API": "3"])
  }
}

/// Builds the runtime a node's config asks for.
public enum EtcdRuntimes {
  public static func make(
    _ settings: RuntimeSettings, node: EtcdNode, config: ClusterConfig, state: RKEState?
  ) -> any EtcdRuntime {
    switch settings.kind {
    case .supervised: SupervisedRuntime(settings: settings, node: node, config: config, state: state)
    case .docker: DockerRuntime(settings: settings, node: node, config: config)
    case .systemd, .command: CommandRuntime(settings: settings, node: node)
    }
  }
}
