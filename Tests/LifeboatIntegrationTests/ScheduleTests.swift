import Foundation
import LifeboatAgent
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import TestSupport
import Testing

extension Integration {
  /// The agents' recurring snapshots: real agents, real etcd, real moto.
  @Suite struct ScheduleTests {
    static func states(_ cluster: EtcdClusterFixture) async throws -> [ScheduleState] {
      let context = try cluster.context()
      let client = try AgentClient(state: context.state!, certificate: "kube-admin")
      return try await withCleanup({
        var all: [ScheduleState] = []
        for node in context.config.etcdNodes { all.append(try await client.scheduleState(at: node.agentURL)) }
        return all
      }, cleanup: { await client.shutdown() })
    }

    @Test func recurringRunsOncePerSlotForTheClusterWithKeepLast() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withAgentCluster(configure: { spec in
          spec.s3 = S3BackupConfig(
            accessKey: "lifeboat-test", secretKey: "lifeboat-test-secret", bucketName: "snaps", region: "us-east-1",
            endpoint: moto.endpoint, folder: "recurring")
          spec.s3InsecureHTTP = true
          spec.lifeboatSettings = ["interval_seconds: 3", "keep_last: 2"]
        }) { cluster in
          _ = try await writeKeys(cluster, count: 200)
          let manual = try LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "rke_etcd_snapshot_manual"])
          #expect(manual.status == 0, "\(manual.stderr)")

          // Wait for three runs in the cluster (one agent runs each slot), all finished.
          var states: [ScheduleState] = []
          for _ in 0..<150 {
            states = try await Self.states(cluster)
            if states.map(\.runs).reduce(0, +) >= 3, !states.contains(where: \.running) { break }
            try await Task.sleep(for: .milliseconds(200))
          }
          let runs = states.map(\.runs).reduce(0, +)
          #expect(runs >= 3, "\(states)")
          #expect(states.allSatisfy { $0.failures == 0 }, "\(states.map { $0.lastResult ?? "" })")
          // Stop the schedules from running more while we look: stop the agents.
          let local = try LocalClusterState.load(from: parentDirectory(of: cluster.configFile))
          for member in local.members { if let pid = member.agentPid { await DetachedProcess.stop(pid) } }

          func recurring(on node: Int) throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: cluster.members[node].snapshotDir!)
              .filter { $0.hasSuffix("_etcd.zip") }.sorted()
          }
          let first = try recurring(on: 0)
          #expect(first.count == 2, "keep_last 2: \(first)")
          for node in 1..<3 { #expect(try recurring(on: node) == first, "the same recurring snapshots on node \(node)") }
          for node in 0..<3 {
            #expect(FileManager.default.fileExists(atPath: cluster.members[node].snapshotDir! + "/rke_etcd_snapshot_manual.zip"))
          }
          let listing = try moto.aws(["s3", "ls", "s3://snaps/recurring/"]).stdout
          let inS3 = listing.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
            .filter { $0.hasSuffix("_etcd.zip") }.sorted()
          #expect(inS3 == first, "S3 keeps the same two")
          #expect(listing.contains("rke_etcd_snapshot_manual.zip"), "one-time snapshots are never pruned")
          // Names are RKE's recurring names.
          for name in first { #expect(RetentionCandidate.recurringTime(try SnapshotName(String(name.dropLast(4)))) != nil) }
        }
      }
    }
  }
}
