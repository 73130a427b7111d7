import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine

struct SnapshotRestore: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "restore",
    abstract: "Restore every etcd node of a cluster from one snapshot, through the node agents.",
    discussion: """
      Order: lease (one restore at a time), plan, preflight, fetch (one node serves the archive to \
      the others; every node checks its SHA-256), stage, swap (old data dirs kept), check; \
      nothing changes before the swap and a failure after it rolls every node back (exit 7; 8 if \
      the rollback did not finish). Every node journals each step: after a crash, \
      `restore --recover` finishes the restore or rolls every node back.
      """)

  @Argument(help: "The snapshot's exact name (a trailing .zip is accepted).")
  var name: String?

  @OptionGroup var cluster: ClusterConfigOption
  @OptionGroup var age: AgeIdentityOptions

  @Flag(help: "Take the snapshot from cluster.yml's S3 bucket even if a node has it locally.")
  var s3 = false

  @Flag(help: "Keep the local cluster.rkestate even if the archive holds a state file.")
  var useLocalState = false

  @Flag(help: "Print the plan, check the archive it would restore, and stop.")
  var dryRun = false

  @Flag(help: "Do not ask for confirmation (needed when stdin is not a terminal).")
  var yes = false

  @Flag(help: "Bring a cluster an interrupted restore left to one consistent state (finish it or roll every node back).")
  var recover = false

  func validate() throws {
    if recover {
      if name != nil { throw ValidationError("--recover takes no snapshot name: it reads what the interrupted restore left") }
      if s3 || useLocalState || dryRun { throw ValidationError("--recover cannot be combined with --s3, --use-local-state or --dry-run") }
    } else if name == nil {
      throw ValidationError("Missing expected argument '<name>'")
    }
  }

  func run() async throws {
    let context = try ClusterContext.load(cluster.config)
    if recover { return try await recoverCluster(context) }
    var options = RestoreOptions(name: try SnapshotName.lookup(name ?? ""))
    options.fromS3 = s3
    options.useLocalState = useLocalState
    options.dryRun = dryRun
    options.ageIdentities = try age.secret()
    let report = try await context.withRemoteNodes { (nodes) async throws(LifeboatError) -> RestoreReport? in
      let engine = ClusterEngine(context: context, nodes: nodes, progress: progressLine)
      let plan = try await engine.plan(options)
      print(plan.lines.joined(separator: "\n"))
      if dryRun {
        let checked = try await engine.checkArchive(plan)
        print("  archive: \(checked)")
        return nil
      }
      try confirm("restore \(plan.name) onto \(plan.members.count) nodes")
      return try await engine.restore(plan, options: options)
    }
    guard let report else { return }
    print("restored \(report.plan.name): \(report.plan.members.count) members healthy, revision \(report.revision), HashKV \(report.hash)")
    for (node, dir) in report.oldDataDirs.sorted(by: { $0.key < $1.key }) { print("  old data of \(node) kept in \(dir)") }
    if let stateFile = report.stateFile {
      print("  state file from the archive installed: \(stateFile.installed)" + (stateFile.backup.map { " (old one: \($0))" } ?? ""))
    }
    // Restored, but not everything is clean: status says so (9) until `--recover` finished it.
    if !report.cleanupLeft.isEmpty {
      throw LifeboatError(
        .restoreInProgress,
        "restored, but the restore's lease or journal stays where cleanup failed (\(report.cleanupLeft.joined(separator: "; "))): "
          + "run `lifeboat snapshot restore --recover --config \(cluster.config) --yes` to finish it")
    }
  }

  private func recoverCluster(_ context: ClusterContext) async throws {
    let report = try await context.withRemoteNodes { (nodes) async throws(LifeboatError) -> ClusterEngine.RecoveryReport in
      let engine = ClusterEngine(context: context, nodes: nodes, progress: progressLine)
      try confirm("recover the cluster (stop etcd on every node, finish or undo the interrupted restore)")
      return try await engine.recover()
    }
    for line in report.found { print("found \(line)") }
    switch report.outcome {
    case .nothingToRecover: print("nothing to recover: no node holds a restore's lease or journal")
    case .finished(let snapshot):
      print("recovered restore \(report.id ?? ""): finished; the cluster is healthy on the snapshot's data (\(snapshot))")
      print("  the old data dirs are kept as <data dir>.lifeboat-old-\(report.id ?? "<id>") (remove them once you trust the restore)")
    case .rolledBack(let snapshot):
      print("recovered restore \(report.id ?? ""): rolled back; the cluster is healthy on its old data (restore of \(snapshot) undone)")
    }
  }

  private func confirm(_ what: String) throws(LifeboatError) {
    if yes { return }
    guard isatty(0) == 1 else {
      throw .usage("this replaces the data of every etcd node: pass --yes to confirm (stdin is not a terminal)")
    }
    FileHandle.standardError.write(Data("Type 'yes' to \(what): ".utf8))
    guard readLine()?.trimmingCharacters(in: .whitespaces) == "yes" else { throw .usage("not confirmed; nothing changed") }
  }
}
