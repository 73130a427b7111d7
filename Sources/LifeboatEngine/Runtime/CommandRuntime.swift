import Foundation
import LifeboatCore

/// etcd run by something else: a systemd unit, the operator's own commands, or RKE's Docker
/// container `etcd` (restore then runs `etcdctl` in a container of the same image, as RKE does,
/// since RKE hosts have no etcdctl).
public struct CommandRuntime: EtcdRuntime {
  public let settings: RuntimeSettings
  public let node: EtcdNode

  public init(settings: RuntimeSettings, node: EtcdNode) {
    self.settings = settings
    self.node = node
  }

  public var summary: String {
    switch settings.kind {
    case .docker: "docker container \(settings.container)"
    case .systemd: "systemd unit \(settings.unit)"
    default: "commands `\(settings.stopCommand ?? "")` / `\(settings.startCommand ?? "")`"
    }
  }

  /// The command lines this runtime uses (also what the tests compare with RKE's).
  public var stopCommand: NodeCommand {
    switch settings.kind {
    case .docker: NodeCommand(executable: "docker", arguments: ["stop", settings.container])
    case .systemd: NodeCommand(executable: "systemctl", arguments: ["stop", settings.unit])
    default: NodeCommand(executable: "/bin/sh", arguments: ["-c", settings.stopCommand ?? "false"])
    }
  }

  public func startCommand(quotaBackendBytes: Int64?) -> NodeCommand {
    switch settings.kind {
    case .docker: return NodeCommand(executable: "docker", arguments: ["start", settings.container])
    case .systemd: return NodeCommand(executable: "systemctl", arguments: ["start", settings.unit])
    default:
      var command = NodeCommand(executable: "/bin/sh", arguments: ["-c", settings.startCommand ?? "false"])
      if let quotaBackendBytes { command.environment["LIFEBOAT_QUOTA_BACKEND_BYTES"] = String(quotaBackendBytes) }
      return command
    }
  }

  public func isRunning() async -> Bool? {
    switch settings.kind {
    case .docker:
      guard let result = await run(NodeCommand(executable: "docker", arguments: ["inspect", "-f", "{{.State.Running}}", settings.container]), timeout: .seconds(30)),
        result.status == 0
      else { return nil }
      return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "true"
    case .systemd:
      guard let result = await run(NodeCommand(executable: "systemctl", arguments: ["is-active", "--quiet", settings.unit]), timeout: .seconds(30)) else {
        return nil
      }
      return result.status == 0
    default: return nil
    }
  }

  public func stop() async throws(LifeboatError) { try await check(stopCommand, "stop etcd") }

  public func start(quotaBackendBytes: Int64?) async throws(LifeboatError) {
    try await check(startCommand(quotaBackendBytes: quotaBackendBytes), "start etcd")
  }

  public func restoreCommand(_ r: RestoreInvocation) async throws(LifeboatError) -> NodeCommand {
    guard settings.kind == .docker else {
      guard let tool = RestoreTool.find(settings.restoreTool) else {
        throw .failure("no restore tool on \(node.address): neither etcdutl nor etcdctl found on PATH")
      }
      return RestoreTool.command(tool: tool, r)
    }
    // RKE: docker run --network=host -v /opt/rke:/opt/rke -v /var/lib/etcd:/var/lib/rancher/etcd/ <image>
    //      /usr/local/bin/etcdctl snapshot restore <file> --data-dir=... --name=... ...
    // Lifeboat binds the snapshot's directory read-only and the staging directory's parent, at
    // the same paths as on the host.
    let image = try await image()
    let databaseDir = parentDirectory(of: r.database)
    let stagingParent = parentDirectory(of: r.stagingDir)
    let restore = RestoreTool.command(tool: "/usr/local/bin/etcdctl", r)
    return NodeCommand(
      executable: "docker",
      arguments: [
        "run", "--rm", "--network=host", "-e", "ETCDCTL_API=3", "-v", "\(databaseDir):\(databaseDir):ro", "-v",
        "\(stagingParent):\(stagingParent)", image, restore.executable,
      ] + restore.arguments)
  }

  /// The etcd image: configured, or the running container's.
  func image() async throws(LifeboatError) -> String {
    if let image = settings.image { return image }
    guard let result = await run(NodeCommand(executable: "docker", arguments: ["inspect", "-f", "{{.Config.Image}}", settings.container]), timeout: .seconds(30)),
      result.status == 0, !result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
    else {
      throw .failure("cannot find the image of the docker container \(settings.container) on \(node.address); set lifeboat.runtime.image")
    }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  public func preflightProblems() async -> [String] {
    switch settings.kind {
    case .docker:
      if ProcessRunner.which("docker") == nil { return ["docker not found on PATH"] }
      do { _ = try await image() } catch { return [error.message] }
      return []
    case .systemd:
      var problems: [String] = []
      if ProcessRunner.which("systemctl") == nil { problems.append("systemctl not found on PATH") }
      if RestoreTool.find(settings.restoreTool) == nil { problems.append("neither etcdutl nor etcdctl found on PATH") }
      return problems
    default:
      return RestoreTool.find(settings.restoreTool) == nil ? ["neither etcdutl nor etcdctl found on PATH"] : []
    }
  }

  /// nil when the command is not found or could not run at all.
  private func run(_ command: NodeCommand, timeout: Duration = .seconds(300)) async -> ProcessResult? {
    let executable = command.executable.hasPrefix("/") ? command.executable : ProcessRunner.which(command.executable)
    guard let executable else { return nil }
    return try? await ProcessRunner.run(executable, command.arguments, environment: command.environment, timeout: timeout)
  }

  private func check(_ command: NodeCommand, _ what: String) async throws(LifeboatError) {
    guard let result = await run(command) else {
      throw LifeboatError(.failure, "cannot \(what) on \(node.address): \(command.executable) not found or did not finish", underlying: .process)
    }
    guard result.status == 0 else {
      throw LifeboatError(
        .failure, "cannot \(what) on \(node.address): `\(command.rendered)` exited \(result.status): \(result.lastLine)",
        underlying: .process)
    }
  }
}
