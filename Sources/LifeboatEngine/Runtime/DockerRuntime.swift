import Foundation
import LifeboatCore

/// RKE's nodes: etcd runs as the Docker container `etcd` (`--network=host`, the host's data dir
/// bound to `/var/lib/rancher/etcd`), driven through the node's Docker Engine API. Stop and start
/// act on that same container (never re-created: same id, arguments and restart policy). The
/// restore tool runs, as RKE runs it, in a one-off container of the same image, with only the
/// fetched database (read-only) and the staging directory bound, no network, and is removed
/// whatever happens.
///
/// The container is the truth about the node: preflight compares its data dir (through its binds),
/// member name, peer URL and cluster token with the config and reports a mismatch naming both
/// values, and refuses a restore whose db would not fit the container's backend quota.
public struct DockerRuntime: EtcdRuntime {
  public let settings: RuntimeSettings
  public let node: EtcdNode
  public let config: ClusterConfig

  public init(settings: RuntimeSettings, node: EtcdNode, config: ClusterConfig) {
    self.settings = settings
    self.node = node
    self.config = config
  }

  /// This node's engine: its `docker_host`, else the runtime's.
  public var host: String { config.lifeboat.nodes[node.address]?.dockerHost ?? settings.dockerHost }
  var container: String { settings.container }
  public var summary: String { "docker container \(container) (\(host))" }

  func engine() throws(LifeboatError) -> DockerEngine { try DockerEngine(host: host) }

  /// The container, or an error naming the engine when it does not exist.
  public func inspect() async throws(LifeboatError) -> DockerContainer {
    guard let found = try await engine().inspectContainer(container) else {
      throw .notFound("no container \(container) in the Docker engine at \(host)")
    }
    return found
  }

  /// nil when the engine does not answer (within 5 s: health must stay quick); false when it
  /// answers and the container is gone.
  public func isRunning() async -> Bool? {
    guard let engine = try? engine() else { return nil }
    do {
      return try await engine.inspectContainer(container, timeout: .seconds(5))?.State.Running ?? false
    } catch {
      return nil
    }
  }

  public func currentPID() async -> Int32? {
    guard let found = try? await inspect(), found.State.Running, found.State.Pid > 0 else { return nil }
    return found.State.Pid
  }

  /// A container that is gone runs no etcd: stopped (a rollback must go on to the other nodes).
  public func stop() async throws(LifeboatError) {
    do {
      try await engine().stopContainer(container, grace: 30)
    } catch where error.kind == .notFound {
      return
    }
  }

  /// Starts the same container. The backend quota is the container's own (preflight made sure
  /// it holds the restored db).
  public func start(quotaBackendBytes: Int64?) async throws(LifeboatError) {
    let engine = try engine()
    do {
      try await engine.startContainer(container)
    } catch where error.kind == .notFound {
      throw .failure(
        "no container \(container) in the Docker engine at \(host): re-create it (RKE: rke up), then run `lifeboat snapshot restore --recover`")
    }
    // Failpoint: etcd exits right after it started (the container stops).
    if Failpoints.fire("start.exit") { try await engine.killContainer(container) }
  }

  /// The restore container's name for restore `id`.
  static func restoreContainerName(_ id: String) -> String { "lifeboat-restore-" + id }

  public func restore(_ invocation: RestoreInvocation) async throws(LifeboatError) {
    let engine = try engine()
    let image = try await image()
    let name = Self.restoreContainerName(invocation.id)
    // A container left by an agent killed during an earlier try of this restore.
    try await engine.removeContainer(name)
    let command = toolCommand(invocation)
    let spec = DockerContainerSpec(
      Image: image, Cmd: [command.executable] + command.arguments, Env: ["ETCDCTL_API=3"],
      Labels: ["io.lifeboat.restore": invocation.id],
      HostConfig: .init(Binds: Self.binds(invocation), NetworkMode: "none"))
    let id = try await engine.createContainer(name: name, spec)
    do throws(LifeboatError) {
      try await engine.startContainer(id)
      // Large databases take minutes: the limit only catches a tool that hangs.
      let status = try await engine.waitContainer(id, timeout: .seconds(6 * 3600))
      guard status == 0 else {
        let output = (try? await engine.logs(id, tail: 5)) ?? ""
        let last = output.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
        throw LifeboatError(
          output.lowercased().contains("no space left on device") ? .storage : .failure, "snapshot restore into \(invocation.stagingDir) in a container of \(image) failed (exit \(status)): \(last)",
          underlying: .process)
      }
    } catch {
      try? await engine.removeContainer(id)
      throw error
    }
    try await engine.removeContainer(id)
  }

  /// The restore tool's command line inside the image: RKE's `/usr/local/bin/etcdctl`, or `restore_tool`.
  func toolCommand(_ invocation: RestoreInvocation) -> NodeCommand {
    RestoreTool.command(tool: settings.restoreTool ?? "/usr/local/bin/etcdctl", invocation)
  }

  /// The database's directory read-only and the staging directory's parent, each at its host
  /// path (one writable bind when they are the same directory, as a drill's scratch is).
  static func binds(_ invocation: RestoreInvocation) -> [String] {
    let databaseDir = parentDirectory(of: invocation.database)
    let stagingParent = parentDirectory(of: invocation.stagingDir)
    if databaseDir == stagingParent { return ["\(stagingParent):\(stagingParent)"] }
    return ["\(databaseDir):\(databaseDir):ro", "\(stagingParent):\(stagingParent)"]
  }

  /// The same restore as a `docker run` command line (what an operator would type; RKE's own).
  public func restoreCommand(_ invocation: RestoreInvocation) async throws(LifeboatError) -> NodeCommand {
    let image = try await image()
    let restore = toolCommand(invocation)
    let binds = Self.binds(invocation).flatMap { ["-v", $0] }
    return NodeCommand(
      executable: "docker",
      arguments: ["run", "--rm", "--network=none", "-e", "ETCDCTL_API=3"] + binds + [image, restore.executable] + restore.arguments)
  }

  public func removeRestoreLeftovers(id: String) async {
    guard let engine = try? engine() else { return }
    try? await engine.removeContainer(Self.restoreContainerName(id))
  }

  /// The etcd image: configured, or the running container's.
  func image() async throws(LifeboatError) -> String {
    if let image = settings.image { return image }
    return try await inspect().Config.Image
  }

  public func preflightProblems(dbSize: UInt64) async -> [String] {
    let found: DockerContainer
    do { found = try await inspect() } catch { return [error.message] }
    var problems = Self.mismatches(found, node: node, token: ClusterConfig.clusterToken)
    if let problem = Self.quotaProblem(found, dbSize: dbSize, container: container) { problems.append(problem) }
    return problems
  }

  /// Where the container and the config disagree, each naming both values.
  public static func mismatches(_ container: DockerContainer, node: EtcdNode, token: String) -> [String] {
    let flags = container.etcdFlags
    var problems: [String] = []
    func canonical(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
    switch container.hostDataDir {
    case nil:
      problems.append(
        "container \(container.Name.trimmingPrefix("/")) binds no host directory to its data dir \(flags["data-dir"] ?? "(no --data-dir)")")
    case let dataDir? where canonical(dataDir) != canonical(node.dataDir):
      problems.append("the container's data dir is \(dataDir) on the host, the config says \(node.dataDir)")
    default: break
    }
    if let name = flags["name"], name != node.memberName {
      problems.append("the container's member name is \(name), the config says \(node.memberName)")
    }
    if let peer = flags["initial-advertise-peer-urls"], !peer.split(separator: ",").map(String.init).contains(node.peerURL) {
      problems.append("the container's peer URL is \(peer), the config says \(node.peerURL)")
    }
    if let advertised = flags["advertise-client-urls"], !advertised.split(separator: ",").map(String.init).contains(node.clientURL) {
      problems.append("the container's client URLs are \(advertised), the config says \(node.clientURL)")
    }
    if let containerToken = flags["initial-cluster-token"], containerToken != token {
      problems.append("the container's cluster token is \(containerToken), a restore uses \(token)")
    }
    return problems
  }

  /// etcd's default backend quota (2 GiB) when the container sets none.
  static let defaultQuota: Int64 = 2 << 30

  /// The restored cluster runs with the container's own quota, which must hold the db.
  public static func quotaProblem(_ container: DockerContainer, dbSize: UInt64, container name: String) -> String? {
    let quota = container.etcdFlags["quota-backend-bytes"].flatMap { Int64($0) }.flatMap { $0 > 0 ? $0 : nil } ?? defaultQuota
    guard dbSize > UInt64(quota) else { return nil }
    return "the snapshot's db (\(dbSize) bytes) is larger than the backend quota of container \(name) (\(quota) bytes"
      + (container.etcdFlags["quota-backend-bytes"] == nil ? ", etcd's default" : "")
      + "): raise --quota-backend-bytes in services.etcd.extra_args and re-create the container first"
  }
}

extension DockerRuntime {
  /// An RKE node's agent: what `config` leaves unsaid, read from the container `etcd` (one
  /// inspect). Without a state file and without `cert_dir`, the certificates are in the
  /// directory of the container's `--trusted-ca-file` (through its binds); without a `data_dir`,
  /// the data dir is the one the container binds. Nothing cluster.yml states is replaced; a
  /// container that disagrees with it stops a restore in preflight. Returns the config, one line
  /// per value taken, and why none could be when the container cannot be read.
  public static func adoptContainerFacts(
    _ config: ClusterConfig, node address: String
  ) async throws(LifeboatError) -> (config: ClusterConfig, facts: [String], warning: String?) {
    guard config.lifeboat.runtime.kind == .docker else { return (config, [], nil) }
    let node = try config.etcdNode(address)
    let needsCertificates = !FileManager.default.fileExists(atPath: config.stateFilePath) && !config.lifeboat.certDirStated
    let needsDataDir = node.dataDirStated != true
    guard needsCertificates || needsDataDir else { return (config, [], nil) }
    let runtime = DockerRuntime(settings: config.lifeboat.runtime, node: node, config: config)
    let container: DockerContainer
    do { container = try await runtime.inspect() } catch {
      return (config, [], "cannot read the container (\(error.message)); using cluster.yml's values")
    }
    var adopted = config
    var facts: [String] = []
    if needsCertificates, let ca = container.etcdFlags["trusted-ca-file"], let host = container.hostPath(of: ca) {
      adopted.lifeboat.certDir = parentDirectory(of: host)
      facts.append("certificates from \(adopted.lifeboat.certDir), where container \(runtime.container) reads them")
    }
    if needsDataDir, let dataDir = container.hostDataDir, dataDir != node.dataDir {
      var override = adopted.lifeboat.nodes[node.address] ?? .init()
      override.dataDir = dataDir
      adopted.lifeboat.nodes[node.address] = override
      facts.append("data dir \(dataDir), as container \(runtime.container) binds it")
    }
    return (adopted, facts, nil)
  }
}
