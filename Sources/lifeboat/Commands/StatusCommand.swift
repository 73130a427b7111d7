import ArgumentParser
import Foundation
import LifeboatAgent
import LifeboatCore
import LifeboatEngine

struct StatusCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract: "Ask every agent for its node and its recurring snapshots: last run, result, next run.")

  @OptionGroup var cluster: ClusterConfigOption

  @Flag(help: "Start a recurring run now (on the first agent that answers; one run for the cluster).")
  var runNow = false

  func run() async throws {
    let context = try ClusterContext.load(cluster.config)
    guard let state = context.state else { throw LifeboatError.usage("no state file at \(context.config.stateFilePath)") }
    let formatter = ISO8601DateFormatter()
    var unreachable: [String] = []
    var failed: [String] = []
    try await AgentClient.with(state: state, certificate: "kube-admin") { (client) async throws(LifeboatError) in
      if runNow {
        var problems: [String] = []
        var ran = false
        for node in context.config.etcdNodes where !ran {
          do throws(LifeboatError) {
            let after = try await client.runSchedule(at: node.agentURL)
            print("run on \(node.address): \(after.lastResult?.description ?? "-")\(after.lastSnapshot.map { " (\($0))" } ?? "")")
            ran = true
          } catch { problems.append("\(node.address): \(error.message)") }
        }
        if !ran { throw LifeboatError.unavailable("no agent could run: \(problems.joined(separator: "; "))") }
      }
      for node in context.config.etcdNodes {
        do throws(LifeboatError) {
          let health = try await RemoteNode(node: node, client: client).health()
          let s = try await client.scheduleState(at: node.agentURL)
          let etcd = health.etcdRunning.map { $0 ? "running" : "STOPPED" } ?? "unknown"
          print("""
            \(node.address)  \(health.member)  etcd \(etcd)
              schedule  \(s.enabled ? s.schedule : "off")\(s.running ? "  (a run is in progress)" : "")
              last run  \(s.lastRun.map(formatter.string) ?? "never")  \(s.lastResult?.description ?? "")\(s.lastSnapshot.map { "  last snapshot \($0)" } ?? "")
              next run  \(s.nextRun.map(formatter.string) ?? "-")
              counts    runs \(s.runs), failures \(s.failures), skipped \(s.skips)
            """)
          if s.lastResult?.isFailure == true { failed.append(node.address) }
        } catch {
          print("\(node.address)  UNREACHABLE: \(error.message)")
          unreachable.append(node.address)
        }
      }
    }
    if !unreachable.isEmpty { throw LifeboatError.unavailable("agents not reachable: \(unreachable.joined(separator: ", "))") }
    if !failed.isEmpty { throw LifeboatError.failure("the last recurring run failed on \(failed.joined(separator: ", "))") }
  }
}
