import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine

struct SnapshotRestore: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "restore",
    abstract: "Restore every etcd node of a cluster from one snapshot, through the node agents.",
    discussion: """
      Order: plan, preflight, fetch (one node serves the archive to the others; every node checks \
      its SHA-256), stage, swap (old data dirs kept), check; nothing changes before the swap and a \
      failure after it rolls every node back (exit 7; 8 if the rollback did not finish).
      """)

  @Argument(help: "The snapshot's exact name (a trailing .zip is accepted).")
  var name: String

  @OptionGroup var cluster: ClusterConfigOption

  @Flag(help: "Take the snapshot from cluster.yml's S3 bucket even if a node has it locally.")
  var s3 = false

  @Flag(help: "Keep the local cluster.rkestate even if the archive holds a state file.")
  var useLocalState = false

  @Flag(help: "Print the plan and stop.")
  var dryRun = false

  @Flag(help: "Do not ask for confirmation (needed when stdin is not a terminal).")
  var yes = false

  func run() async throws {
    let context = try ClusterContext.load(cluster.config)
    var options = RestoreOptions(name: try SnapshotName.lookup(name))
    options.fromS3 = s3
    options.useLocalState = useLocalState
    options.dryRun = dryRun
    let report = try await context.withRemoteNodes { (nodes) async throws(LifeboatError) -> RestoreReport? in
      let engine = ClusterEngine(context: context, nodes: nodes, progress: progressLine)
      let plan = try await engine.plan(options)
      print(plan.lines.joined(separator: "\n"))
      if dryRun { return nil }
      try confirm(plan)
      return try await engine.restore(plan, options: options)
    }
    guard let report else { return }
    print("restored \(report.plan.name): \(report.plan.members.count) members healthy, revision \(report.revision), HashKV \(report.hash)")
    for (node, dir) in report.oldDataDirs.sorted(by: { $0.key < $1.key }) { print("  old data of \(node) kept in \(dir)") }
    if let stateFile = report.stateFile {
      print("  state file from the archive installed: \(stateFile.installed)" + (stateFile.backup.map { " (old one: \($0))" } ?? ""))
    }
  }

  private func confirm(_ plan: RestorePlan) throws(LifeboatError) {
    if yes { return }
    guard isatty(0) == 1 else {
      throw .usage("restore replaces the data of every etcd node: pass --yes to confirm (stdin is not a terminal)")
    }
    FileHandle.standardError.write(Data("Type 'yes' to restore \(plan.name) onto \(plan.members.count) nodes: ".utf8))
    guard readLine()?.trimmingCharacters(in: .whitespaces) == "yes" else { throw .usage("restore not confirmed; nothing changed") }
  }
}
