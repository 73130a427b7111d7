import AsyncHTTPClient
import Foundation
import LifeboatAgent
import LifeboatCore
import LifeboatEngine
import NIOCore
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
          spec.s3 = moto.backupConfig(bucket: "snaps", folder: "recurring")
          spec.s3InsecureHTTP = true
          // Runs take about a second: a 5-second interval leaves a quiet window to stop the agents in.
          spec.lifeboatSettings = ["interval_seconds: 5", "keep_last: 2"]
        }) { cluster in
          _ = try await writeKeys(cluster, count: 200)
          let manual = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "rke_etcd_snapshot_manual"])
          #expect(manual.status == 0, "\(manual.stderr)")

          // Wait for three runs in the cluster (one agent runs each slot), all finished.
          var states: [ScheduleState] = []
          for _ in 0..<250 {
            states = try await Self.states(cluster)
            if states.map(\.runs).reduce(0, +) >= 3, !states.contains(where: \.running) { break }
            try await Task.sleep(for: .milliseconds(200))
          }
          let runs = states.map(\.runs).reduce(0, +)
          #expect(runs >= 3, "\(states)")
          #expect(states.allSatisfy { $0.failures == 0 }, "\(states.map { $0.lastResult?.description ?? "" })")
          // Stop the schedules from running more while we look: stop the agents, all at once (a run
          // cut off between its upload and its copies would leave the places different, rightly).
          let local = try LocalClusterState.load(from: parentDirectory(of: cluster.configFile))
          await withTaskGroup(of: Void.self) { group in
            for pid in local.members.compactMap(\.agentPid) { group.addTask { await DetachedProcess.stop(pid) } }
          }

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
          let listing = try await moto.aws(["s3", "ls", "s3://snaps/recurring/"]).stdout
          let inS3 = listing.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
            .filter { $0.hasSuffix("_etcd.zip") }.sorted()
          #expect(inS3 == first, "S3 keeps the same two")
          #expect(listing.contains("rke_etcd_snapshot_manual.zip"), "one-time snapshots are never pruned")
          // Names are RKE's recurring names.
          for name in first { #expect(RetentionCandidate.recurringTime(try SnapshotName(String(name.dropLast(4)))) != nil) }
        }
      }
    }

    /// Starts a manual run on agent 0 (whose `schedule.slow` failpoint holds it for 4 s), sends
    /// the agent SIGTERM 1 s into it (past the status check and the lock), and returns 0.3 s
    /// later, while the agent is stopping.
    static func stopMidRun(_ cluster: EtcdClusterFixture) async throws -> (agent: pid_t, run: Task<ScheduleState?, Never>) {
      let state = try LocalClusterState.load(from: parentDirectory(of: cluster.configFile))
      let agent = try #require(state.members[0].agentPid)
      let run = Task { try? await Self.runNow(cluster) }
      try await waitUntilRunning(cluster)
      try await Task.sleep(for: .seconds(1))
      kill(agent, SIGTERM)
      try await Task.sleep(for: .milliseconds(300))
      return (agent, run)
    }

    /// Waits until the agent of `node` reports a run in progress.
    static func waitUntilRunning(_ cluster: EtcdClusterFixture, node: Int = 0) async throws {
      for _ in 0..<300 {
        if try await states(cluster)[node].running { return }
        try await Task.sleep(for: .milliseconds(50))
      }
      Issue.record("no run started on node \(node)")
    }

    /// Waits until the wall clock is in a later second than `date` (the agent's last run), so
    /// the next run's recurring name (to the second) differs from the last one's.
    static func waitForNextSecond(after date: Date?) async throws {
      let next = ((date ?? Date()).timeIntervalSince1970).rounded(.down) + 1
      while Date().timeIntervalSince1970 < next { try await Task.sleep(for: .milliseconds(20)) }
    }

    static func metrics(_ cluster: EtcdClusterFixture, node: Int = 0) async throws -> String {
      let context = try cluster.context()
      return try await withAgentHTTPClient(state: context.state!, certificate: "kube-admin") { http in
        let response = try await http.execute(HTTPClientRequest(url: context.config.etcdNodes[node].agentURL + "/metrics"), timeout: .seconds(10))
        return String(buffer: try await response.body.collect(upTo: 1 << 20))
      }
    }

    static func runNow(_ cluster: EtcdClusterFixture, node: Int = 0) async throws -> ScheduleState {
      let context = try cluster.context()
      let client = try AgentClient(state: context.state!, certificate: "kube-admin")
      return try await withCleanup({ try await client.runSchedule(at: context.config.etcdNodes[node].agentURL) }, cleanup: {
        await client.shutdown()
      })
    }

    @Test func aRunDuringS3DowntimeKeepsItsArchiveAndTheNextRunUploadsBoth() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        let down = Flag()
        let proxy = try await S3FaultProxy.start(upstream: moto.endpoint) { _ in down.value ? .fail(status: 503) : .forward }
        try await withCleanup({
          try await withAgentCluster(nodes: 1, configure: { spec in
            spec.s3 = moto.backupConfig(bucket: "snaps")
            spec.s3?.endpoint = proxy.endpoint  // every request through the fault proxy
            spec.s3InsecureHTTP = true
            spec.lifeboatSettings = ["interval_seconds: 3600"]
          }) { cluster in
            down.value = true
            let failed = try await Self.runNow(cluster)
            #expect(failed.lastResult?.description.hasPrefix("failed: saved") == true, "\(String(describing: failed.lastResult))")
            #expect(failed.failures == 1)
            let status = try await LifeboatCLI.run(["status", "--config", cluster.configFile])
            #expect(status.status == 1, "a failed last run is visible without logs")
            #expect(status.stdout.contains("failed: saved"))
            #expect(status.stdout.contains("s3        s3://snaps, keys from s3backupconfig of "), "each agent names its key source: \(status.stdout)")
            #expect(try await Self.metrics(cluster).contains("lifeboat_snapshot_failures_total 1"))
            let local = try FileManager.default.contentsOfDirectory(atPath: cluster.members[0].snapshotDir!).filter { $0.hasSuffix("_etcd.zip") }
            #expect(local.count == 1, "the local archive is kept")

            down.value = false
            try await Self.waitForNextSecond(after: failed.lastRun)
            let ok = try await Self.runNow(cluster)
            #expect(ok.lastResult == .ok, "\(String(describing: ok.lastResult))")
            let listing = try await moto.aws(["s3", "ls", "s3://snaps/"]).stdout
            let uploaded = listing.split(separator: "\n").filter { $0.hasSuffix("_etcd.zip") }
            #expect(uploaded.count == 2, "the next run uploads both: \(listing)")
            #expect(try await Self.metrics(cluster).contains("lifeboat_snapshot_runs_total 1"))
          }
        }, cleanup: { await proxy.stop() })
      }
    }

    @Test func aNodeThatMissedARunGetsItsCopyOnTheNextRun() async throws {
      try await withAgentCluster(configure: { spec in spec.lifeboatSettings = ["interval_seconds: 3600"] }) { cluster in
        _ = try await writeKeys(cluster, count: 100)
        let local = try LocalClusterState.load(from: parentDirectory(of: cluster.configFile))
        await DetachedProcess.stop(local.members[2].agentPid!)
        let first = try await Self.runNow(cluster)
        #expect(first.lastResult?.description.contains("copy on 127.0.0.13") == true, "\(String(describing: first.lastResult))")
        let missed = try #require(first.lastSnapshot)

        // The node's agent comes back.
        let agent = try DetachedProcess.spawn(
          executable: LifeboatCLI.binary, arguments: ["agent", "--config", cluster.configFile, "--node", "127.0.0.13"],
          logFile: local.members[2].runDir + "/agent.log")
        try await withCleanup({
          let context = try cluster.context()
          let client = try AgentClient(state: context.state!, certificate: "kube-admin")
          try await withCleanup({
            for _ in 0..<100 {
              if (try? await RemoteNode(node: context.config.etcdNodes[2], client: client).health()) != nil { break }
              try await Task.sleep(for: .milliseconds(100))
            }
          }, cleanup: { await client.shutdown() })
          try await Self.waitForNextSecond(after: first.lastRun)
          let second = try await Self.runNow(cluster)
          #expect(second.lastResult == .ok, "\(String(describing: second.lastResult))")
          let onNode3 = try FileManager.default.contentsOfDirectory(atPath: cluster.members[2].snapshotDir!)
          #expect(onNode3.contains(missed + ".zip"), "the missed snapshot was copied: \(onNode3)")
          #expect(onNode3.contains(second.lastSnapshot! + ".zip"))
        }, cleanup: { await DetachedProcess.stop(agent) })
      }
    }

    @Test func withoutQuorumTheSurvivingNodeKeepsItsOwnSnapshot() async throws {
      try await withAgentCluster(configure: { spec in spec.lifeboatSettings = ["interval_seconds: 3600"] }) { cluster in
        _ = try await writeKeys(cluster, count: 100)
        await DetachedProcess.stop(cluster.currentPID(of: 1)!)
        await DetachedProcess.stop(cluster.currentPID(of: 2)!)
        var state = try await Self.runNow(cluster)
        // The survivor may still believe in its leader for an election timeout.
        for _ in 0..<20 where state.lastResult != .noQuorum {
          try await Task.sleep(for: .milliseconds(500))
          state = try await Self.runNow(cluster)
        }
        #expect(state.lastResult == .noQuorum, "\(String(describing: state.lastResult))")
        let name = try #require(state.lastSnapshot)
        #expect(name.hasSuffix("_node1_etcd"))
        let manifest = try Manifest.decode(
          [UInt8](try Data(contentsOf: URL(fileURLWithPath: cluster.members[0].snapshotDir! + "/\(name).manifest.json"))), path: "")
        #expect(manifest.noQuorum)
        #expect(manifest.member.name == "etcd-node1")
      }
    }

    @Test func aRunWhileAnotherIsInProgressIsSkippedAndCounted() async throws {
      try await withAgentCluster(nodes: 1, configure: { spec in
        spec.lifeboatSettings = ["interval_seconds: 3600"]
        spec.agentEnvironment[0] = ["LIFEBOAT_FAILPOINTS": "schedule.slow"]
      }) { cluster in
        async let first = Self.runNow(cluster)
        try await Self.waitUntilRunning(cluster)
        let second = try await Self.runNow(cluster)
        #expect(second.lastResult == .skippedOverlap)
        #expect(second.skips == 1)
        let done = try await first
        #expect(done.runs == 1)
        #expect(try await Self.metrics(cluster).contains("lifeboat_snapshot_skips_total 1"))
      }
    }

    /// Found by a review: `save --config` failed outright when the first agent was stopping (it
    /// answers the health check, then refuses the save), though a dead agent is simply skipped.
    @Test func aSaveGoesToTheNextNodeWhenTheFirstAgentIsStopping() async throws {
      try await withAgentCluster(nodes: 2, configure: { spec in
        spec.lifeboatSettings = ["interval_seconds: 3600"]
        spec.agentEnvironment[0] = ["LIFEBOAT_FAILPOINTS": "schedule.slow"]
      }) { cluster in
        // Agent 0 stops: its run holds it for about 3 s more, while it refuses new work.
        let (_, run) = try await Self.stopMidRun(cluster)
        let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "while-stopping"])
        _ = await run.value
        #expect(save.stderr.contains("\(cluster.members[0].address) is stopping: the next node saves"), "\(save.stderr)")
        #expect(save.stdout.contains("saved while-stopping on \(cluster.members[1].address)"), "\(save.stdout)")
        #expect(FileManager.default.fileExists(atPath: cluster.members[1].snapshotDir! + "/while-stopping.zip"))
        // Node 0 got no copy: the save says so and exits 6 (saved, not everywhere).
        #expect(save.status == 6, "\(save.stderr)")
      }
    }

    @Test func sigtermDuringARunLeavesNoPartFileAndNoUpload() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withAgentCluster(nodes: 1, configure: { spec in
          spec.s3 = moto.backupConfig(bucket: "snaps")
          spec.s3InsecureHTTP = true
          spec.lifeboatSettings = ["interval_seconds: 3600"]
          spec.agentEnvironment[0] = ["LIFEBOAT_FAILPOINTS": "schedule.slow"]
        }) { cluster in
          try await writeRandom(cluster, mib: 30)
          let (agent, run) = try await Self.stopMidRun(cluster)
          let state = try LocalClusterState.load(from: parentDirectory(of: cluster.configFile))
          // While it stops (the run notices its cancellation only at the end of the failpoint's
          // 4 s), new work is refused at once and reads are still served.
          let context = try cluster.context()
          let url = context.config.etcdNodes[0].agentURL
          let (refused, health) = try await withAgentHTTPClient(state: context.state!, certificate: "kube-admin") { http in
            var post = HTTPClientRequest(url: url + "/v1/preflight")
            post.method = .POST
            post.body = .bytes(ByteBuffer(string: "{}"))
            let response = try await http.execute(post, timeout: .seconds(10))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            let health = try await http.execute(HTTPClientRequest(url: url + "/healthz"), timeout: .seconds(10))
            return ((Int(response.status.code), body), Int(health.status.code))
          }
          #expect(refused.0 == 503 && refused.1.contains("the agent is stopping"), "\(refused)")
          #expect(health == 200)
          var gone = false
          for _ in 0..<300 {
            if !DetachedProcess.isRunning(agent) { gone = true; break }
            try await Task.sleep(for: .milliseconds(100))
          }
          _ = await run.value
          #expect(gone, "the agent stops")
          let files = (try? FileManager.default.contentsOfDirectory(atPath: cluster.members[0].snapshotDir!)) ?? []
          #expect(!files.contains { $0.hasSuffix(".part") }, "\(files)")
          let log = try String(contentsOfFile: state.members[0].runDir + "/agent.log", encoding: .utf8)
          #expect(log.contains("agent stopped"))
          // A stop is not a failed run: a warning, no error to alert on.
          #expect(log.contains("recurring snapshot cancelled: the agent is stopping"), "\(log)")
          let errors = log.split(separator: "\n").filter { $0.split(separator: " ").dropFirst().first == "error" }
          #expect(errors.isEmpty, "\(errors)")
          // The run's lock went with it (the run's own etcd client closed with the run): the next
          // agent's runs are not held up for the lease's 3 minutes.
          let lockKey = "/lifeboat/lock/\(try cluster.context().config.clusterName)"
          let held = try await cluster.withClient { client in
            try await client.range(prefix: lockKey).map { String(decoding: $0.key, as: UTF8.self) }
          }
          #expect(!held.contains(lockKey), "\(held)")
          #expect(!log.contains("could not release the snapshot lock"), "\(log)")
          let unfinished = try await S3Store.with(try moto.configuration(bucket: "snaps")) { try await $0.unfinishedUploads().count }
          #expect(unfinished == 0)
          // Finished or cleaned up: either a complete archive with its manifest, or nothing.
          let archives = files.filter { $0.hasSuffix("_etcd.zip") }
          for archive in archives {
            #expect(files.contains(archive.replacingOccurrences(of: ".zip", with: ".manifest.json")))
          }
        }
      }
    }
  }
}

/// A flag tests flip while a proxy reads it.
final class Flag: @unchecked Sendable {
  private let lock = NSLock()
  private var _value = false
  var value: Bool {
    get { lock.lock(); defer { lock.unlock() }; return _value }
    set { lock.lock(); _value = newValue; lock.unlock() }
  }
}
