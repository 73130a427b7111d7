import ArgumentParser
import EtcdClient
import Foundation
import LifeboatAgent
import LifeboatCore
import LifeboatEngine

struct StatusCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract: "Ask every agent for its node, its etcd, its recurring snapshots and drills: last run, result, next run.",
    discussion: """
      Exit code, the first that applies: 9 when a restore is in progress or was interrupted on a \
      node; 5 when an agent does not answer, or an etcd is not running, not healthy, or serving \
      from the wrong data dir; 1 when a last recurring run failed, or the cluster's last drill \
      (lifeboat.drill, or `lifeboat snapshot drill` run by an agent) failed; else 0.
      """)

  @OptionGroup var cluster: ClusterConfigOption

  @Flag(help: "Start a recurring run now (on the first agent that answers; one run for the cluster).")
  var runNow = false

  @Flag(help: "Drill the newest snapshot now (on the first agent that answers, under the cluster's lock).")
  var drillNow = false

  func run() async throws {
    let context = try ClusterContext.load(cluster.config)
    guard let state = context.state else { throw LifeboatError.usage("no state file at \(context.config.stateFilePath)") }
    let formatter = ISO8601DateFormatter()
    var restores: [String] = []
    var down: [String] = []
    var failed: [String] = []
    var notRun: String?
    var directories: [String: String] = [:]
    // etcd itself, as the operator reaches it: every member answers, without alarms.
    let connection = try context.etcdConnection(certificate: "kube-admin")
    let probes = await MemberSelector(connection: connection).probeAll()
    try await AgentClient.with(state: state, certificate: "kube-admin") { (client) async throws(LifeboatError) in
      if runNow {
        notRun = try await Self.onFirstAgent(context) { (node) async throws(LifeboatError) in
          let after = try await client.runSchedule(at: node.agentURL)
          let ran = after.lastResult == .ok || after.lastResult == .noQuorum
          return ("run on \(node.address): \(after.lastResult?.description ?? "-")\(ran ? after.lastSnapshot.map { " (\($0))" } ?? "" : "")", ran)
        }
      }
      if drillNow {
        notRun = try await Self.onFirstAgent(context) { (node) async throws(LifeboatError) in
          let after = try await client.runDrill(at: node.agentURL)
          let ran: Bool
          switch after.lastResult {
          case .passed?, .failed?: ran = true  // a failed drill is the cluster's last drill: reported below
          default: ran = false
          }
          return ("drill on \(node.address): \(after.lastResult?.description ?? "-")\(ran ? after.last.map { " (\($0.snapshot ?? "no snapshot"))" } ?? "" : "")", ran)
        }
      }
      for (index, node) in context.config.etcdNodes.enumerated() {
        do throws(LifeboatError) {
          let health = try await RemoteNode(node: node, client: client).health()
          let s = try await client.scheduleState(at: node.agentURL)
          let probe = index < probes.count ? probes[index] : nil
          let etcd: String
          if health.etcdRunning == false {
            etcd = "STOPPED"
          } else if let problem = health.dataDirProblem {
            etcd = "WRONG DATA DIR: \(problem)"
          } else if let problem = probe?.problem {
            etcd = "UNHEALTHY: \(problem)"
          } else if probe?.status?.hasLeader == false {
            etcd = "UNHEALTHY: no leader (quorum lost?)"
          } else {
            etcd = "running"
          }
          print("""
            \(node.address)  \(health.member)  etcd \(etcd)
              schedule  \(s.enabled ? s.schedule : "off")\(s.running ? "  (a run is in progress)" : "")
              last run  \(s.lastRun.map(formatter.string) ?? "never")  \(s.lastResult?.description ?? "")\(s.lastSnapshot.map { "  last snapshot \($0)" } ?? "")
              next run  \(s.nextRun.map(formatter.string) ?? "-")
              counts    runs \(s.runs), failures \(s.failures), skipped \(s.skips)
            """)
          if let id = health.snapshotDirID {
            if let first = directories[id] {
              print("  shared    the snapshot directory is the one of \(first) (a shared mount: one copy serves both)")
            } else {
              directories[id] = node.address
            }
          }
          if let s3 = health.s3 { print("  s3        \(s3)") }
          if let encryption = health.encryption { print("  encrypts  \(encryption)") }
          if let restore = health.restore {
            print("  RESTORE   \(restore)")
            restores.append("\(node.address): \(restore)")
          }
          if health.etcdRunning != true || health.dataDirProblem != nil || probe?.problem != nil || probe?.status?.hasLeader == false {
            down.append(node.address)
          }
          if let drill = health.drill, drill.enabled {
            print("  drills    \(drill.schedule)\(drill.running ? "  (a drill is in progress)" : "")  next \(drill.nextRun.map(formatter.string) ?? "-")  last attempt \(drill.lastResult?.description ?? "none")")
          }
          if s.lastResult?.isFailure == true { failed.append("the last recurring run on \(node.address)") }
        } catch {
          print("\(node.address)  UNREACHABLE: \(error.message)")
          down.append(node.address)
        }
      }
    }
    // The cluster's last drill, as etcd holds it (every agent writes it there).
    if probes.contains(where: \.isHealthy) {
      let record: DrillRecord?
      do {
        record = try await DrillRecord.read(cluster: context.config.clusterName, connection: connection)
      } catch {
        record = nil
        print("last drill  UNKNOWN: \(error.message)")
        failed.append("reading the cluster's last drill")
      }
      if let record {
        print("last drill  \(record.summary)")
        if let success = record.lastSuccess, !record.passed { print("  last passed \(formatter.string(from: success))") }
        if !record.passed { failed.append("the cluster's last drill (\(record.snapshot ?? "no snapshot"))") }
      } else if context.config.lifeboat.drill != nil, !failed.contains("reading the cluster's last drill") {
        print("last drill  never")
      }
    }
    if !restores.isEmpty {
      throw LifeboatError(
        .restoreInProgress, "\(restores[0])\(restores.count > 1 ? " (and \(restores.count - 1) more)" : ""); if it was interrupted, run `lifeboat snapshot restore --recover`")
    }
    if !down.isEmpty { throw LifeboatError.unavailable("etcd or its agent is not running or not healthy on \(down.joined(separator: ", "))") }
    if let notRun { throw LifeboatError.failure("nothing ran: \(notRun)") }
    if !failed.isEmpty { throw LifeboatError.failure("\(failed.joined(separator: ", ")) failed") }
  }

  /// `action` on the first agent that answers; prints the line it returns, and returns it when
  /// it says nothing ran (a restore holds the nodes, or the cluster's lock is held: by a run in
  /// progress, or by an agent that died, until its lease expires within 3 minutes). The rest of
  /// `status` still runs: a restore in progress is exit 9, before "nothing ran", exit 1.
  static func onFirstAgent(
    _ context: ClusterContext, _ action: (EtcdNode) async throws(LifeboatError) -> (line: String, ran: Bool)
  ) async throws(LifeboatError) -> String? {
    var problems: [String] = []
    for node in context.config.etcdNodes {
      let result: (line: String, ran: Bool)
      do throws(LifeboatError) {
        result = try await action(node)
      } catch {
        problems.append("\(node.address): \(error.message)")
        continue
      }
      print(result.line)
      return result.ran ? nil : result.line
    }
    throw LifeboatError.unavailable("no agent could run: \(problems.joined(separator: "; "))")
  }
}
