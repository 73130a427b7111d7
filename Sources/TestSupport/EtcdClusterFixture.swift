import AsyncHTTPClient
import EtcdClient
import Foundation
import LifeboatCore
import LifeboatAgent
import LifeboatEngine

/// A real etcd cluster for a test: N members from Debian's `etcd` on 127.0.0.x with free ports,
/// plaintext or mutual TLS (certificates made for the test), all under a temporary directory.
/// Started and stopped by the same code as `lifeboat local up/down`; every member is stopped by
/// PID and the directory removed when the test ends.
public final class EtcdClusterFixture: Sendable {
  public let directory: TemporaryDirectory
  public let state: LocalClusterState
  private let cluster = LocalCluster()

  private init(directory: TemporaryDirectory, state: LocalClusterState) {
    self.directory = directory
    self.state = state
  }

  public static func start(
    nodes: Int = 3, tls: Bool = false, quotaBackendBytes: Int64? = nil, configure: (inout LocalClusterSpec) -> Void = { _ in }
  ) async throws -> EtcdClusterFixture {
    let directory = try TemporaryDirectory(prefix: "lifeboat-etcd")
    var spec = LocalClusterSpec(directory: directory.file("cluster"), nodes: nodes, tls: tls)
    spec.quotaBackendBytes = quotaBackendBytes
    configure(&spec)
    do {
      let state = try await LocalCluster().up(spec)
      return EtcdClusterFixture(directory: directory, state: state)
    } catch {
      _ = try? await LocalCluster().down(directory: spec.directory)
      directory.remove()
      throw error
    }
  }

  /// Stops every member and removes the directory.
  public func stop() async {
    _ = try? await cluster.down(directory: directory.file("cluster"))
    directory.remove()
  }

  public var members: [LocalClusterState.Member] { state.members }
  public var endpoints: [String] { state.endpoints }

  /// Everything `lifeboat snapshot save` needs to reach the cluster.
  public var connection: EtcdConnection { try! LocalCluster.connection(for: state) }

  /// `--endpoints ... [--cacert ... --cert ... --key ...]` for the command line.
  public var connectionFlags: [String] { state.connectionFlags }

  public var tlsFiles: (ca: String, cert: String, key: String)? {
    guard let ca = state.caFile, let cert = state.clientCertFile, let key = state.clientKeyFile else { return nil }
    return (ca, cert, key)
  }

  /// Runs `body` with a client of member `index`.
  public func withClient<R: Sendable>(_ index: Int = 0, _ body: (EtcdClient) async throws -> R) async throws -> R {
    try await EtcdClient.with(endpoint: connection.endpoints[index], configuration: connection.client, body)
  }

  /// Stops member `index` (SIGTERM, or SIGKILL with `kill`).
  public func stopMember(_ index: Int, kill: Bool = false) async {
    await cluster.stopMember(state.members[index], kill: kill)
  }

  public func pid(of index: Int) -> Int32? { state.members[index].pid }

  /// The `cluster.yml` that `local up` wrote (agents read it too).
  public var configFile: String { state.configFile! }

  /// The cluster's config and state file, as the CLI reads them.
  public func context() throws -> ClusterContext { try ClusterContext.load(configFile) }

  /// PID of member `index`'s etcd now (a restore restarts etcd), from the runtime's PID file.
  public func currentPID(of index: Int) -> Int32? {
    let path = state.members[index].runDir + "/etcd.pid"
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return Int32(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// PID of member `index`'s etcd now, as its runtime sees it (the PID file, or the container).
  public func etcdPID(of index: Int) async -> Int32? {
    guard let context = try? context() else { return nil }
    let node = context.config.etcdNodes[index]
    return await EtcdRuntimes.make(context.config.lifeboat.runtime, node: node, config: context.config, state: context.state)
      .currentPID()
  }

  /// docker: every node's container `etcd`, in node order (empty for supervised clusters).
  public func etcdContainers() async throws -> [DockerContainer] {
    var containers: [DockerContainer] = []
    for member in members {
      guard let host = member.dockerHost else { return [] }
      guard let container = try await DockerEngine(host: host).inspectContainer("etcd") else {
        throw LifeboatError.notFound("no container etcd on \(member.address)")
      }
      containers.append(container)
    }
    return containers
  }

  /// The name a restore gives member `index`'s old data dir, up to its id: `<data dir's name>.lifeboat-old-`.
  public func oldDataDirPrefix(_ index: Int) -> String {
    (state.members[index].dataDir as NSString).lastPathComponent + ".lifeboat-old-"
  }

  /// Stops node `index`'s agent (SIGTERM) if it runs and starts a new one with `environment`
  /// (`LIFEBOAT_FAILPOINTS=...`), recorded in the cluster's state so that `stop()` stops it too;
  /// returns once the new agent accepts connections.
  /// `config` replaces the agent's cluster.yml (the node's own view of the cluster).
  public func restartAgent(_ index: Int, environment: [String: String] = [:], config: String? = nil) async throws {
    let dir = directory.file("cluster")
    var current = try LocalClusterState.load(from: dir)
    let member = current.members[index]
    if let pid = member.agentPid, DetachedProcess.isRunning(pid) { await DetachedProcess.stop(pid) }
    let pid = try DetachedProcess.spawn(
      executable: LifeboatCLI.binary, arguments: ["agent", "--config", config ?? configFile, "--node", member.address],
      logFile: member.runDir + "/agent.log", environment: environment)
    current.members[index].agentPid = pid
    try current.save(to: dir)
    let context = try context()
    let client = try AgentClient(state: context.state!, certificate: "kube-admin")
    try await withCleanup({
      for _ in 0..<200 {
        if (try? await RemoteNode(node: context.config.etcdNodes[index], client: client).health()) != nil { return }
        guard DetachedProcess.isRunning(pid) else { throw LifeboatError.failure("the agent on \(member.address) exited") }
        try await Task.sleep(for: .milliseconds(50))
      }
      throw LifeboatError.unavailable("the agent on \(member.address) did not answer")
    }, cleanup: { await client.shutdown() })
  }

  /// Whether node `index`'s agent process runs.
  public func agentRunning(_ index: Int) -> Bool {
    guard let state = try? LocalClusterState.load(from: directory.file("cluster")), let pid = state.members[index].agentPid else {
      return false
    }
    return DetachedProcess.isRunning(pid)
  }

  /// Runs `body` with a client of member `index` connected with `kube-admin`, reading the TLS
  /// setting from the cluster's config (valid after a restore, too).
  public func withMemberClient<R: Sendable>(_ index: Int, _ body: (EtcdClient) async throws -> R) async throws -> R {
    let connection = try context().etcdConnection(certificate: "kube-admin")
    return try await EtcdClient.with(endpoint: connection.endpoints[index], configuration: connection.client, body)
  }
}

/// Runs `body` with a cluster whose every node has a Lifeboat agent (the built `lifeboat agent`),
/// etcd and agents speaking mutual TLS; `configure` adjusts the spec (S3, hooks, failpoints).
/// `runtime: .docker` runs etcd as RKE does, in a container of a real Docker engine per node.
public func withAgentCluster<R>(
  nodes: Int = 3, runtime: LocalRuntime = .supervised, configure: (inout LocalClusterSpec) -> Void = { _ in },
  _ body: (EtcdClusterFixture) async throws -> R
) async throws -> R {
  let cluster = try await EtcdClusterFixture.start(nodes: nodes, tls: true) { spec in
    spec.agentExecutable = LifeboatCLI.binary
    spec.runtime = runtime
    configure(&spec)
  }
  return try await withCleanup({ try await body(cluster) }, cleanup: { await cluster.stop() })
}

/// Runs `body` with a started cluster, stopping it afterwards whatever happens.
public func withEtcdCluster<R>(
  nodes: Int = 3, tls: Bool = false, quotaBackendBytes: Int64? = nil, _ body: (EtcdClusterFixture) async throws -> R
) async throws -> R {
  let cluster = try await EtcdClusterFixture.start(nodes: nodes, tls: tls, quotaBackendBytes: quotaBackendBytes)
  return try await withCleanup({ try await body(cluster) }, cleanup: { await cluster.stop() })
}

/// Runs `body` with a raw HTTPS client of the agents, presenting the state file's certificate
/// `certificate` (requests the typed `RemoteNode` cannot make: bad paths, Range headers, /metrics).
public func withAgentHTTPClient<R>(
  state: RKEState, certificate: String, _ body: (HTTPClient) async throws -> R
) async throws -> R {
  let http = HTTPClient(
    eventLoopGroup: HTTPClient.defaultEventLoopGroup,
    configuration: .init(tlsConfiguration: try AgentTLS.client(state: state, certificate: certificate)))
  return try await withCleanup({ try await body(http) }, cleanup: { try? await http.shutdown() })
}
