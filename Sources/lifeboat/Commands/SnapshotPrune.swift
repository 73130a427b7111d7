import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine

struct SnapshotPrune: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "prune",
    abstract: "Apply cluster.yml's retention to every etcd node and to S3 (recurring snapshots only, unless --include-manual).",
    discussion: """
      Default policy: RKE's, recurring snapshots younger than retention x interval_hours are kept. \
      With lifeboat.keep_last/keep_hourly/keep_daily/keep_weekly: those counts instead. The bucket \
      follows the nodes' policy unless lifeboat.s3_keep_last/_hourly/_daily/_weekly give it its own. \
      The newest verified snapshot is never deleted.
      """)

  @OptionGroup var cluster: ClusterConfigOption

  @Flag(help: "Print what would be deleted, delete nothing.")
  var dryRun = false

  @Flag(help: "Also prune one-time snapshots and names Lifeboat did not schedule.")
  var includeManual = false

  func run() async throws {
    let context = try ClusterContext.load(cluster.config)
    let report = try await context.withRemoteNodes { (nodes) async throws(LifeboatError) in
      try await ClusterEngine(context: context, nodes: nodes, progress: progressLine).prune(dryRun: dryRun, includeManual: includeManual)
    }
    print("policy\(report.s3Policy == nil ? "" : " (nodes)"): \(report.policy.summary)")
    for d in report.decisions {
      var places = report.locations[d.name.value] ?? []
      if report.s3Policy != nil { places.removeAll { $0 == "s3" } }
      let verb = d.keep ? "keep  " : (dryRun ? "would delete" : "delete")
      print("\(verb)  \(d.name)  [\(places.joined(separator: ", "))]  \(d.reason)")
    }
    if let s3Policy = report.s3Policy {
      print("policy (s3): \(s3Policy.summary)")
      for d in report.s3Decisions {
        let verb = d.keep ? "keep  " : (dryRun ? "would delete" : "delete")
        print("\(verb)  \(d.name)  [s3]  \(d.reason)")
      }
    }
    for line in report.locked { print(line) }
    for line in report.abortedUploads { print("aborted the unfinished upload \(line)") }
    if !report.failures.isEmpty {
      throw LifeboatError.unavailable("prune incomplete: \(report.failures.joined(separator: "; "))")
    }
  }
}
