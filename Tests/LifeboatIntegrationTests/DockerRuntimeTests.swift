import Foundation
import LifeboatCore
import LifeboatEngine
import TestSupport
import Testing

extension Integration {
  /// RKE's nodes for real: a Docker engine per node (Debian's docker.io, started by the test
  /// support like `lifeboat local up --runtime docker`), etcd in the container `etcd` with RKE's
  /// flags and binds. The restore tests run on these nodes too (RestoreTests, `runtime: .docker`).
  @Suite struct DockerRuntimeTests {
    @Test func theNodesLookLikeRKEsAndSnapshotsAreTakenFromTheContainer() async throws {
      try await withAgentCluster(runtime: .docker) { cluster in
        let containers = try await cluster.etcdContainers()
        #expect(containers.count == 3)
        for (member, container) in zip(cluster.members, containers) {
          #expect(container.Name == "/etcd")
          #expect(container.State.Running)
          #expect(container.HostConfig.NetworkMode == "host")
          #expect(container.HostConfig.RestartPolicy?.Name == "always")
          #expect(container.Config.Labels?["io.rancher.rke.container.name"] == "etcd")
          #expect(container.etcdFlags["data-dir"] == "/var/lib/rancher/etcd/")
          #expect(container.hostDataDir == member.dataDir)
          #expect(container.etcdFlags["name"] == member.memberName)
          #expect(container.etcdFlags["initial-cluster-token"] == "etcd-cluster-1")
          let own = "kube-etcd-" + member.address.replacingOccurrences(of: ".", with: "-")
          #expect(container.etcdFlags["cert-file"] == "/etc/kubernetes/ssl/\(own).pem")
          // Every etcd node holds the CA and every etcd node's certificate, as RKE's do.
          let ssl = container.hostPath(of: "/etc/kubernetes/ssl")!
          for other in cluster.members {
            let name = "kube-etcd-" + other.address.replacingOccurrences(of: ".", with: "-")
            #expect(FileManager.default.fileExists(atPath: "\(ssl)/\(name)-key.pem"))
          }
          #expect(try fileMode("\(ssl)/\(own)-key.pem") == 0o600)
        }
        let written = try await writeKeys(cluster, count: 300)
        let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "from-container"])
        #expect(save.status == 0, "\(save.stderr)")
        let verify = try await LifeboatCLI.run(
          ["snapshot", "verify", "from-container", "--snapshot-dir", cluster.members[1].snapshotDir!])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(written.count == 300)
        let status = try await LifeboatCLI.run(["status", "--config", cluster.configFile])
        #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
        #expect(status.stdout.components(separatedBy: "etcd running").count == 4, "\(status.stdout)")
        // The agents' schedule, copies and prune work unchanged: one recurring run, on every node.
        let run = try await ScheduleTests.runNow(cluster)
        #expect(run.lastResult == .ok, "\(String(describing: run.lastResult))")
        let recurring = try #require(run.lastSnapshot)
        for member in cluster.members {
          #expect(FileManager.default.fileExists(atPath: member.snapshotDir! + "/\(recurring).zip"), "\(member.address)")
        }
        let prune = try await LifeboatCLI.run(["snapshot", "prune", "--config", cluster.configFile, "--dry-run"])
        #expect(prune.status == 0, "\(prune.stderr)")
        // A drill on an RKE node, which has no etcd of its own: in containers of its etcd image.
        let drill = try await LifeboatCLI.run(["status", "--config", cluster.configFile, "--drill-now"])
        #expect(drill.status == 0, "\(drill.stdout)\(drill.stderr)")
        let context = try cluster.context()
        let record = try #require(
          try await DrillRecord.read(cluster: context.config.clusterName, connection: try context.etcdConnection(certificate: "kube-admin")))
        #expect(record.passed && record.snapshot == recurring, "\(record) \(drill.stdout)")
        #expect(record.runner?.contains("containers of the image") == true, "\(record)")
        for member in cluster.members {
          let names = try await DockerEngine(host: member.dockerHost!).listContainers().flatMap(\.names)
          #expect(!names.contains { $0.contains("lifeboat-drill") || $0.contains("lifeboat-restore") }, "\(names)")
        }
        // A member's container stopped: status says so.
        await cluster.stopMember(2)
        let down = try await LifeboatCLI.run(["status", "--config", cluster.configFile])
        #expect(down.status == 5, "\(down.stdout)\(down.stderr)")
      }
    }

    @Test func aContainerThatDisagreesWithTheConfigStopsTheRestoreBeforeAnythingChanges() async throws {
      try await withAgentCluster(runtime: .docker) { cluster in
        _ = try await writeKeys(cluster, count: 100)
        let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "mismatch"])
        #expect(save.status == 0, "\(save.stderr)")
        // The config moves node 2's data dir; its container still binds the real one.
        let real = cluster.members[1].dataDir
        let claimed = real + "-elsewhere"
        try makeDirectories(claimed)
        var yaml = try String(contentsOfFile: cluster.configFile, encoding: .utf8)
        yaml = yaml.replacingOccurrences(of: "data_dir: \"\(real)\"", with: "data_dir: \"\(claimed)\"")
        try AtomicFile.write(Array(yaml.utf8), to: cluster.configFile, mode: 0o600)
        try await cluster.restartAgent(1)
        let pids = try await (0..<3).asyncMap { await cluster.etcdPID(of: $0) }

        let restore = try await LifeboatCLI.run(["snapshot", "restore", "mismatch", "--config", cluster.configFile, "--yes"])
        #expect(restore.status != 0)
        #expect(
          restore.stderr.contains("127.0.0.12: the container's data dir is \(real) on the host, the config says \(claimed)"),
          "\(restore.stderr)")
        #expect(try await (0..<3).asyncMap { await cluster.etcdPID(of: $0) } == pids, "no etcd was stopped")
        #expect(try FileManager.default.contentsOfDirectory(atPath: parentDirectory(of: real)).filter { $0.contains("lifeboat-") }.isEmpty)
      }
    }

    @Test func aRestoreContainerThatFailsLeavesNoContainerAndChangesNothing() async throws {
      try await withAgentCluster(runtime: .docker, configure: { spec in
        spec.agentEnvironment[2] = ["LIFEBOAT_FAILPOINTS": "restore.fail"]
      }) { cluster in
        _ = try await writeKeys(cluster, count: 100)
        let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "tool-fails"])
        #expect(save.status == 0, "\(save.stderr)")
        try await RestoreTests.diverge(cluster)
        let before = try await RestoreTests.keys(cluster, member: 0)
        let containers = try await cluster.etcdContainers()

        let restore = try await LifeboatCLI.run(["snapshot", "restore", "tool-fails", "--config", cluster.configFile, "--yes"])
        #expect(restore.status == 1, "\(restore.stderr)")
        #expect(restore.stderr.contains("127.0.0.13"), "\(restore.stderr)")
        #expect(restore.stderr.contains("in a container of lifeboat-local/etcd:"), "\(restore.stderr)")
        #expect(restore.stderr.contains("nothing changed"), "\(restore.stderr)")
        let after = try await cluster.etcdContainers()
        #expect(after.map(\.Id) == containers.map(\.Id))
        #expect(after.map(\.State.Pid) == containers.map(\.State.Pid), "no etcd was stopped")
        for (index, member) in cluster.members.enumerated() {
          let names = try await DockerEngine(host: member.dockerHost!).listContainers().flatMap(\.names)
          #expect(names == ["/etcd"], "\(member.address): \(names)")
          #expect(try await RestoreTests.keys(cluster, member: index) == before)
          let parent = parentDirectory(of: member.dataDir)
          #expect(try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.contains("lifeboat-") }.isEmpty)
        }
      }
    }

    /// On a real RKE node the agent has cluster.yml and the certificates RKE left in
    /// /etc/kubernetes/ssl, not the cluster's state file; the data dir is the one the container binds.
    @Test func anAgentNeedsOnlyClusterYmlAndTheNodesCertificates() async throws {
      try await withAgentCluster(runtime: .docker) { cluster in
        let written = try await writeKeys(cluster, count: 200)
        let yaml = try String(contentsOfFile: cluster.configFile, encoding: .utf8)
        for (index, member) in cluster.members.enumerated() {
          var lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("data_dir:") }.map(String.init)
          let section = lines.firstIndex(of: "lifeboat:")!
          // No cert_dir either: the agent reads where its container's --trusted-ca-file is.
          lines.insert("  state_file: \(cluster.directory.file("no-state-file-here"))", at: section + 1)
          let nodeConfig = cluster.directory.file("node\(index + 1).yml")
          try AtomicFile.write(Array(lines.joined(separator: "\n").utf8), to: nodeConfig, mode: 0o600)
          try await cluster.restartAgent(index, config: nodeConfig)
        }
        let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "node-view"])
        #expect(save.status == 0, "\(save.stderr)")
        try await RestoreTests.diverge(cluster)
        let restore = try await LifeboatCLI.run(["snapshot", "restore", "node-view", "--config", cluster.configFile, "--yes"])
        #expect(restore.status == 0, "\(restore.stderr)")
        for index in 0..<3 {
          #expect(try await RestoreTests.keys(cluster, member: index) == written)
          // The old data was kept where the container's data dir really is.
          let parent = parentDirectory(of: cluster.members[index].dataDir)
          #expect(try FileManager.default.contentsOfDirectory(atPath: parent).contains { $0.hasPrefix("etcd.lifeboat-old-") })
        }
        let log = try String(contentsOfFile: cluster.members[0].runDir + "/agent.log", encoding: .utf8)
        #expect(log.contains("data dir \(cluster.members[0].dataDir), as container etcd binds it"))
        #expect(log.contains("certificates from \(cluster.members[0].runDir)/etc/kubernetes/ssl, where container etcd reads them"), "\(log)")
      }
    }

    @Test func localDownRemovesTheContainersAndStopsExactlyItsEngines() async throws {
      let cluster = try await EtcdClusterFixture.start(nodes: 2, tls: true) { $0.runtime = .docker }
      let state = try LocalClusterState.load(from: cluster.directory.file("cluster"))
      let engines = state.members.compactMap(\.enginePid)
      #expect(engines.count == 2)
      #expect(engines.allSatisfy(DetachedProcess.isRunning))
      _ = try await LocalCluster().down(directory: cluster.directory.file("cluster"))
      for pid in engines { #expect(!DetachedProcess.isRunning(pid), "engine \(pid) stopped") }
      for member in state.members {
        #expect((try? await DockerEngine(host: member.dockerHost!).version()) == nil, "no engine answers on \(member.dockerHost!)")
      }
      await cluster.stop()
    }
  }
}
