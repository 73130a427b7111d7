import Foundation
import LifeboatCore

/// etcd run by something else: a systemd unit, or the operator's own stop and start commands.
/// Restore runs the host's `etcdutl` (or `etcdctl`).
public struct CommandRuntime: EtcdRuntime {
  public let settings: RuntimeSettings
  public let node: EtcdNode

  public init(settings: RuntimeSettings, node: EtcdNode) {
    self.settings = settings
    self.node = node
  }

  public var summary: String {
    switch settings.kind {
    case .systemd: "systemd unit \(settings.unit)"
    default: "commands `\(settings.stopCommand ?? "")` / `\(settings.startCommand ?? "")`"
    }
  }

  /// The command lines this runtime uses.
  public var stopCommand: NodeCommand {
    switch settings.kind {
    case .systemd: NodeCommand(executable: "systemctl", arguments: ["stop", settings.unit])
    default: NodeCommand(executable: "/bin/sh", arguments: ["-c", settings.stopCommand ?? "false"])
    }
  }

  public func startCommand(quotaBackendBytes: Int64?) -> NodeCommand {
    switch settings.kind {
    case .systemd: return NodeCommand(executable: "systemctl", arguments: ["start", settings.unit])
    default:
      var command = NodeCommand(executable: "/bin/sh", arguments: ["-c", settings.startCommand ?? "false"])
      if let quotaBackendBytes { command.environment["LIFEBOAT_QUOTA_BACKEND_BYTES"] = String(quotaBackendBytes) }
      return command
    }
  }

  public func isRunning() async -> Bool? {
    switch settings.kind {
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
    guard let tool = RestoreTool.find(settings.restoreTool) else {
      throw .failure("no restore tool on \(node.address): neither etcdutl nor etcdctl found on PATH")
    }
    return RestoreTool.command(tool: tool, r)
  }

  public func preflightProblems(dbSize: UInt64) async -> [String] {
    var problems: [String] = []
    if settings.kind == .systemd, ProcessRunner.which("systemctl") == nil { problems.append("systemctl not found on PATH") }
    if RestoreTool.find(settings.restoreTool) == nil { problems.append("neither etcdutl nor etcdctl found on PATH") }
    return problems
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
