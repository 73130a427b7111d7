import Foundation
import LifeboatAgent
import LifeboatCore
import LifeboatEngine
import TestSupport
import Testing

extension Integration {
  /// `lifeboat.drill`: the agents drill the newest snapshot on a schedule, one agent per slot,
  /// under the recurring snapshots' lock; real agents, real etcd.
  @Suite struct ScheduledDrillTests {
    static func withAgents<R>(
      _ cluster: EtcdClusterFixture, _ body: (AgentClient, ClusterContext) async throws -> R
    ) async throws -> R {
      let context = try cluster.context()
      let client = try AgentClient(state: context.state!, certificate: "kube-admin")
      return try await withCleanup({ try await body(client, context) }, cleanup: { await client.shutdown() })
    }

    static func drillStates(_ cluster: EtcdClusterFixture) async throws -> [DrillState] {
      try await withAgents(cluster) { client, context in
        var all: [DrillState] = []
        for node in context.config.etcdNodes { all.append(try await client.drillState(at: node.agentURL)) }
        return all
      }
    }

    static func record(_ cluster: EtcdClusterFixture) async throws -> DrillRecord? {
      let context = try cluster.context()
      return try await DrillRecord.read(cluster: context.config.clusterName, connection: try context.etcdConnection(certificate: "kube-admin"))
    }

    /// Waits (at most a minute) until etcd holds a drill record that `accept`s and no agent drills.
    static func waitForRecord(_ cluster: EtcdClusterFixture, _ accept: (DrillRecord) -> Bool) async throws -> DrillRecord {
      for _ in 0..<300 {
        if let record = try await record(cluster), accept(record), try await !drillStates(cluster).contains(where: \.running) {
          return record
        }
        try await Task.sleep(for: .milliseconds(200))
      }
      throw LifeboatError.failure("no drill record as expected: \(String(describing: try await record(cluster)))")
    }

    static func scratchLeftovers(_ cluster: EtcdClusterFixture) throws -> [String] {
      let context = try cluster.context()
      return context.config.etcdNodes.flatMap { node in
        ((try? FileManager.default.contentsOfDirectory(atPath: context.config.drillScratchDir(node))) ?? []).filter { $0.hasPrefix("lifeboat-drill-") }
      }
    }

    @Test func oneAgentDrillsEachSlotAndStatusFailsUntilALaterDrillPasses() async throws {
      let begin = Date()
      try await withAgentCluster(configure: { spec in
        spec.lifeboatSettings = ["drill:", "  interval_seconds: 4"]
      }) { cluster in
        _ = try await writeKeys(cluster, count: 300)
        let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "good"])
        #expect(save.status == 0, "\(save.stderr)")

        let passed = try await Self.waitForRecord(cluster) { $0.passed && $0.snapshot == "good" }
        #expect(passed.lastSuccess == passed.time)
        #expect(passed.runner?.contains("on this host") == true, "\(passed)")
        var states = try await Self.drillStates(cluster)
        let drills = states.map(\.runs).reduce(0, +)
        let slots = Int(Date().timeIntervalSince(begin) / 4) + 1
        #expect(drills >= 1 && drills <= slots, "one agent per slot: \(drills) drills in at most \(slots) slots; \(states)")
        #expect(states.allSatisfy { $0.failures == 0 }, "\(states.map { $0.lastResult?.description ?? "" })")
        let holder = try #require(cluster.context().config.etcdNodes.firstIndex { $0.address == passed.node })
        let metrics = try await ScheduleTests.metrics(cluster, node: holder)
        #expect(metrics.contains("lifeboat_drill_runs_total"), "\(metrics)")
        #expect(metrics.contains("lifeboat_drill_last_success_timestamp_seconds"))
        #expect(metrics.contains("lifeboat_drill_duration_seconds"))
        let status = try await LifeboatCLI.run(["status", "--config", cluster.configFile])
        #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
        #expect(status.stdout.contains("last drill") && status.stdout.contains("good  passed"), "\(status.stdout)")
        #expect(status.stdout.contains("drills    every 4 s"), "\(status.stdout)")

        // A newer snapshot that passes verify but not the drill (its manifest claims another
        // revision), on every node: the next drill fails, and so does status.
        try await Task.sleep(for: .seconds(1))
        let bad = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "bad"])
        #expect(bad.status == 0, "\(bad.stderr)")
        for member in cluster.members {
          let path = member.snapshotDir! + "/bad.manifest.json"
          var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
          manifest["revision"] = (manifest["revision"] as! Int) + 1000
          try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path))
        }
        let failed = try await Self.waitForRecord(cluster) { !$0.passed }
        #expect(failed.snapshot == "bad" && failed.failure?.hasPrefix("revision") == true, "\(failed)")
        #expect(failed.lastSuccess != nil && failed.lastSuccess! >= passed.time, "the last success is kept")
        let failing = try await LifeboatCLI.run(["status", "--config", cluster.configFile])
        #expect(failing.status == 1, "\(failing.stdout)\(failing.stderr)")
        #expect(failing.stdout.contains("FAILED: revision"), "\(failing.stdout)")
        #expect(failing.stderr.contains("the cluster's last drill (bad) failed"), "\(failing.stderr)")
        let failedOn = try #require(cluster.context().config.etcdNodes.firstIndex { $0.address == failed.node })
        #expect(try await ScheduleTests.metrics(cluster, node: failedOn).contains("lifeboat_drill_failures_total 1"))

        // The bad snapshot removed: the next drill passes and status is green again.
        for member in cluster.members {
          let delete = try await LifeboatCLI.run(["snapshot", "delete", "bad", "--snapshot-dir", member.snapshotDir!])
          #expect(delete.status == 0, "\(delete.stdout)\(delete.stderr)")
        }
        let again = try await Self.waitForRecord(cluster) { $0.passed && $0.time > failed.time }
        #expect(again.snapshot == "good")
        let green = try await LifeboatCLI.run(["status", "--config", cluster.configFile, "--drill-now"])
        #expect(green.status == 0, "\(green.stdout)\(green.stderr)")
        #expect(green.stdout.contains("drill on "), "\(green.stdout)")

        // Nothing left behind by any drill (wait for one in progress to end).
        for _ in 0..<100 {
          states = try await Self.drillStates(cluster)
          if !states.contains(where: \.running) { break }
          try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try Self.scratchLeftovers(cluster).isEmpty || states.contains(where: \.running))
      }
    }

    /// `drill --config`: the snapshot where a restore finds it (a node through its agent, else
    /// the bucket; `--s3` straight to the bucket), read where it is.
    @Test func drillWithConfigReadsTheSnapshotWhereRestoreFindsIt() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withAgentCluster(configure: { spec in
          spec.s3 = moto.backupConfig(bucket: "snaps", folder: "c")
          spec.s3InsecureHTTP = true
        }) { cluster in
          _ = try await writeKeys(cluster, count: 200)
          let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "c1"])
          #expect(save.status == 0, "\(save.stderr)")
          let nodes = try cluster.context().config.etcdNodes
          func drill(_ extra: [String]) async throws -> (ProcessResult, DrillShape?) {
            let result = try await LifeboatCLI.run(
              ["snapshot", "drill"] + extra + ["--config", cluster.configFile, "--scratch-dir", cluster.directory.file("scratch"), "--json"])
            return (result, try? JSONDecoder().decode(DrillShape.self, from: Data(result.stdout.utf8)))
          }
          let first = try await drill(["c1"])
          #expect(first.0.status == 0, "\(first.0.stdout)\(first.0.stderr)")
          #expect(first.1?.path.hasPrefix(nodes[0].address + ":") == true, "the first node serves it: \(first.1?.path ?? "")")
          #expect(first.1?.checks.allSatisfy(\.passed) == true)

          // Not on the first node: the next one that has it.
          try FileManager.default.removeItem(atPath: cluster.members[0].snapshotDir! + "/c1.zip")
          let second = try await drill(["c1"])
          #expect(second.0.status == 0, "\(second.0.stderr)")
          #expect(second.1?.path.hasPrefix(nodes[1].address + ":") == true, "\(second.1?.path ?? "")")

          // A corrupt copy where it is found: exit 4, nothing left behind.
          let archive = cluster.members[1].snapshotDir! + "/c1.zip"
          let handle = try FileHandle(forUpdating: URL(fileURLWithPath: archive))
          try handle.seek(toOffset: 4000)
          let byte = try handle.read(upToCount: 1)!
          try handle.seek(toOffset: 4000)
          try handle.write(contentsOf: Data([byte[0] ^ 0xFF]))
          try handle.close()
          let corrupt = try await drill(["c1"])
          #expect(corrupt.0.status == 4, "\(corrupt.0.stdout)\(corrupt.0.stderr)")
          #expect(corrupt.1?.checks.first { !$0.passed }?.name == "verify")
          #expect(DrillTests.drillProcesses().isEmpty)

          // --s3: the bucket's copy, untouched.
          let fromS3 = try await drill(["--latest", "--s3"])
          #expect(fromS3.0.status == 0, "\(fromS3.0.stdout)\(fromS3.0.stderr)")
          #expect(fromS3.1?.name == "c1" && fromS3.1?.path.contains("s3://snaps/c/c1.zip") == true, "\(fromS3.1?.path ?? "")")
          // On no node: the bucket.
          for member in cluster.members { try? FileManager.default.removeItem(atPath: member.snapshotDir! + "/c1.zip") }
          let fallback = try await drill(["c1"])
          #expect(fallback.0.status == 0 && fallback.1?.path.contains("s3://") == true, "\(fallback.0.stderr)")
          let missing = try await drill(["nope"])
          #expect(missing.0.status == 3, "\(missing.0.stderr)")
          let mixed = try await LifeboatCLI.run(["snapshot", "drill", "c1", "--config", cluster.configFile, "--snapshot-dir", "/tmp"])
          #expect(mixed.status == 2, "\(mixed.stderr)")
          #expect(try FileManager.default.contentsOfDirectory(atPath: cluster.directory.file("scratch")).isEmpty)
        }
      }
    }

    /// Found by a review: an agent killed with -9 during a drill left the throwaway etcd running
    /// (with every key of the cluster) until the next drill; and `--drill-now` then said "run by
    /// another agent" with exit 0. The restarted agent removes it; `--drill-now` fails while
    /// the dead agent's lock lasts.
    @Test func anAgentKilledDuringADrillLeavesNothingOnceRestarted() async throws {
      try await withAgentCluster(nodes: 1, configure: { spec in
        spec.agentEnvironment[0] = ["LIFEBOAT_FAILPOINTS": "drill.slow"]
      }) { cluster in
        _ = try await writeKeys(cluster, count: 100)
        let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "s"])
        #expect(save.status == 0, "\(save.stderr)")
        let drill = Task { try? await LifeboatCLI.run(["status", "--config", cluster.configFile, "--drill-now"]) }
        for _ in 0..<200 where DrillTests.drillProcesses().isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!DrillTests.drillProcesses().isEmpty, "the drill's etcd started")
        let state = try LocalClusterState.load(from: parentDirectory(of: cluster.configFile))
        kill(try #require(state.members[0].agentPid), SIGKILL)
        _ = await drill.value
        #expect(!DrillTests.drillProcesses().isEmpty, "a killed agent leaves the drill's etcd behind")

        try await cluster.restartAgent(0)
        for _ in 0..<100 where !DrillTests.drillProcesses().isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        #expect(DrillTests.drillProcesses().isEmpty, "the restarted agent stopped it")
        #expect(try Self.scratchLeftovers(cluster).isEmpty)
        // The dead agent's lock lasts until its lease expires: nothing runs, and status says so.
        let now = try await LifeboatCLI.run(["status", "--config", cluster.configFile, "--drill-now"])
        #expect(now.status == 1 && now.stderr.contains("nothing ran"), "\(now.stdout)\(now.stderr)")
        #expect(now.stdout.contains("drill:"), "the holder is named: \(now.stdout)")
      }
    }

    /// The lock is the recurring snapshots' own: a snapshot run waits while a drill holds it, a
    /// drill waits while a snapshot run holds it, and no drill runs while a restore holds the node.
    @Test func aDrillNeverRunsBesideARecurringRunOrARestore() async throws {
      try await withAgentCluster(nodes: 1, configure: { spec in
        spec.lifeboatSettings = ["interval_seconds: 3600", "drill:", "  interval_seconds: 3600"]
        spec.agentEnvironment[0] = ["LIFEBOAT_FAILPOINTS": "drill.slow,schedule.slow"]
      }) { cluster in
        _ = try await writeKeys(cluster, count: 100)
        let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "s"])
        #expect(save.status == 0, "\(save.stderr)")
        try await Self.withAgents(cluster) { client, context in
          let url = context.config.etcdNodes[0].agentURL
          // A drill (slowed down) holds the lock: a recurring run started meanwhile waits.
          async let drill = client.runDrill(at: url)
          for _ in 0..<100 where try await !client.drillState(at: url).running { try await Task.sleep(for: .milliseconds(50)) }
          try await Task.sleep(for: .seconds(2))  // past the drill's own-member status call, into the drill
          let during = try await client.runSchedule(at: url)
          guard case .waiting(let holder) = during.lastResult else {
            Issue.record("a recurring run beside a drill: \(String(describing: during.lastResult))")
            return
          }
          #expect(holder.hasPrefix("drill:"), "\(holder)")
          #expect(during.runs == 0)
          // The operator's `--run-now` says that nothing ran (exit 1), never a success.
          let runNow = try await LifeboatCLI.run(["status", "--config", cluster.configFile, "--run-now"])
          #expect(runNow.status == 1 && runNow.stderr.contains("nothing ran"), "\(runNow.stdout)\(runNow.stderr)")
          let drilled = try await drill
          #expect(drilled.lastResult == .passed, "\(String(describing: drilled.lastResult))")

          // A recurring run (slowed down) holds the lock: a drill started meanwhile waits.
          async let run = client.runSchedule(at: url)
          try await ScheduleTests.waitUntilRunning(cluster)
          try await Task.sleep(for: .seconds(1))  // past the run's own-member status call, into the lock
          let waiting = try await client.runDrill(at: url)
          guard case .waiting(let snapshotHolder) = waiting.lastResult else {
            Issue.record("a drill beside a recurring run: \(String(describing: waiting.lastResult))")
            return
          }
          #expect(!snapshotHolder.hasPrefix("drill:"))
          #expect(waiting.runs == 1, "no second drill")
          #expect(try await run.runs == 1)

          // A restore holds the node: no drill.
          let node = RemoteNode(node: context.config.etcdNodes[0], client: client)
          let id = RestoreID.new()
          try await node.takeLease(RestoreLease(id: id, snapshot: "s"))
          let paused = try await client.runDrill(at: url)
          #expect(paused.lastResult == .skipped(reason: "a restore is in progress"), "\(String(describing: paused.lastResult))")
          try await node.releaseLease(id)
          #expect(try await client.runDrill(at: url).lastResult == .passed)

          // A record in etcd that is not one (written by anyone with access to etcd): status
          // says it cannot tell, and fails, rather than "never".
          _ = try await cluster.withClient { try await $0.put("/lifeboat/drill/\(context.config.clusterName)", Array("not json {\u{1B}[2J".utf8)) }
          let garbage = try await LifeboatCLI.run(["status", "--config", cluster.configFile])
          #expect(garbage.status == 1 && garbage.stdout.contains("UNKNOWN") && garbage.stdout.contains("not readable"), "\(garbage.stdout)")
          #expect(!garbage.stdout.contains("\u{1B}"))
        }
      }
    }
  }
}
