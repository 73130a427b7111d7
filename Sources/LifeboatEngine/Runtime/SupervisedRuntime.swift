import Foundation
import LifeboatCore

/// Lifeboat starts etcd itself, with flags derived from the cluster config: `lifeboat local up`
/// and the tests. etcd runs detached (its own session), so restarting or upgrading the agent
/// never takes etcd down; its PID is recorded in `<run dir>/etcd.pid` and only a process whose
/// command line names this node's data directory is ever signalled. Log: `<run dir>/etcd.log`.
public struct SupervisedRuntime: EtcdRuntime {
  public let settings: RuntimeSettings
  public let node: EtcdNode
  public let config: ClusterConfig
  public let state: RKEState?

  public init(settings: RuntimeSettings, node: EtcdNode, config: ClusterConfig, state: RKEState?) {
    self.settings = settings
    self.node = node
    self.config = config
    self.state = state
  }

  public var pidFile: String { node.runDir + "/etcd.pid" }
  public var logFile: String { node.runDir + "/etcd.log" }
  public var summary: String { "etcd supervised by Lifeboat (PID file \(pidFile))" }

  /// etcd's command line for this node.
  public func arguments(quotaBackendBytes: Int64?) throws(LifeboatError) -> [String] {
    var args = [
      "--name=\(node.memberName)",
      "--data-dir=\(node.dataDir)",
      "--listen-client-urls=\(node.clientURL)",
      "--advertise-client-urls=\(node.clientURL)",
      "--listen-peer-urls=\(node.peerURL)",
      "--initial-advertise-peer-urls=\(node.peerURL)",
      "--initial-cluster=\(config.initialCluster)",
      "--initial-cluster-token=\(ClusterConfig.clusterToken)",
      "--initial-cluster-state=new",
      "--logger=zap",
      "--log-outputs=stderr",
    ]
    if config.lifeboat.etcdTLS {
      guard let state else { throw .usage("etcd_tls is on but there is no state file with certificates") }
      let ca = try state.certificate("kube-ca")
      let own = try state.certificate(node.certificateName, needsKey: true)
      guard let caPath = ca.path, let certPath = own.path, let keyPath = own.keyPath else {
        throw .usage("\(state.path): the certificates kube-ca and \(node.certificateName) need path and keyPath")
      }
      args += [
        "--cert-file=\(certPath)", "--key-file=\(keyPath)", "--trusted-ca-file=\(caPath)", "--client-cert-auth",
        "--peer-cert-file=\(certPath)", "--peer-key-file=\(keyPath)", "--peer-trusted-ca-file=\(caPath)",
        "--peer-client-cert-auth",
      ]
    }
    args += settings.extraArgs
    // After extra_args: a restore's quota (no smaller than the db) wins over a configured one.
    if let quotaBackendBytes { args.append("--quota-backend-bytes=\(quotaBackendBytes)") }
    return args
  }

  /// This node's etcd: the recorded PID when that process still runs etcd on this node's data
  /// directory, else the process listening on the member's client port that was started with
  /// this node's data directory (an etcd whose PID file was lost, or that kept running while its
  /// directory was renamed under it).
  public func runningPID() -> pid_t? {
    if let data = FileManager.default.contents(atPath: pidFile),
      let pid = pid_t(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
      DetachedProcess.isRunning(pid),
      let command = DetachedProcess.commandLine(pid), command.contains("--data-dir=\(node.dataDir)")
    {
      return pid
    }
    guard let listener = node.listeningProcess(), listener.dataDirArgument == node.dataDir else { return nil }
    return listener.pid
  }

  public func isRunning() async -> Bool? { runningPID() != nil }

  public func currentPID() async -> Int32? { runningPID() }

  public func stop() async throws(LifeboatError) {
    guard let pid = runningPID() else { return }
    guard await DetachedProcess.stop(pid, timeout: .seconds(20)) else {
      throw .failure("etcd (PID \(pid)) on \(node.address) did not stop")
    }
    try? FileManager.default.removeItem(atPath: pidFile)
  }

  public func start(quotaBackendBytes: Int64?) async throws(LifeboatError) {
    if let pid = runningPID() { throw .failure("etcd already runs on \(node.address) as PID \(pid)") }
    if let other = node.listeningProcess() {
      throw .failure(
        "PID \(other.pid) already listens on \(node.clientURL)\(other.dataDir.map { " (serving \($0))" } ?? ""): stop it first")
    }
    guard let etcd = ProcessRunner.which(settings.etcdBinary) else {
      throw .failure("\(settings.etcdBinary) not found on PATH on \(node.address)")
    }
    var args = try arguments(quotaBackendBytes: quotaBackendBytes)
    if Failpoints.fire("start.exit") { args.append("--lifeboat-failpoint-start-exit") }
    try makeDirectories(node.runDir)
    let pid = try DetachedProcess.spawn(executable: etcd, arguments: args, logFile: logFile)
    try AtomicFile.write(Array("\(pid)\n".utf8), to: pidFile, mode: 0o600)
  }

  public func restoreCommand(_ invocation: RestoreInvocation) async throws(LifeboatError) -> NodeCommand {
    guard let tool = RestoreTool.find(settings.restoreTool) else {
      throw .failure("no restore tool on \(node.address): neither etcdutl nor etcdctl found on PATH")
    }
    return RestoreTool.command(tool: tool, invocation)
  }

  public func preflightProblems(dbSize: UInt64) async -> [String] {
    var problems: [String] = []
    if ProcessRunner.which(settings.etcdBinary) == nil { problems.append("\(settings.etcdBinary) not found on PATH") }
    if RestoreTool.find(settings.restoreTool) == nil { problems.append("neither etcdutl nor etcdctl found on PATH") }
    do { _ = try arguments(quotaBackendBytes: nil) } catch { problems.append(error.message) }
    return problems
  }
}
