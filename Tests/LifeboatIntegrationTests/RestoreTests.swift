import EtcdClient
import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import TestSupport
import Testing

extension Integration {
  /// `lifeboat snapshot save|restore --config`: 3 real etcd members, 3 real agent processes.
  @Suite struct RestoreTests {
    /// Every key under /registry/ as member `index` serves it (a serializable read: that member's own data).
    static func keys(_ cluster: EtcdClusterFixture, member index: Int) async throws -> [String: [UInt8]] {
      try await cluster.withMemberClient(index) { client in
        var result: [String: [UInt8]] = [:]
        for kv in try await client.range(prefix: "/registry/", serializable: true) {
          result[String(decoding: kv.key, as: UTF8.self)] = kv.value
        }
        return result
      }
    }

    static func manifest(_ cluster: EtcdClusterFixture, node: Int, name: String) throws -> Manifest {
      let path = cluster.members[node].snapshotDir! + "/\(name).manifest.json"
      return try Manifest.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), path: path)
    }

    /// Changes the cluster after the save: more keys, some deleted.
    static func diverge(_ cluster: EtcdClusterFixture, deleting prefix: String = "/registry/test/000") async throws {
      try await cluster.withClient { client in
        try await client.putAll((0..<500).map { (key: "/registry/later/\($0)", value: Array("later".utf8)) })
        _ = try await client.deletePrefix(prefix)
      }
    }

    static func save(_ cluster: EtcdClusterFixture, _ name: String) async throws -> ProcessResult {
      let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", name])
      #expect(save.status == 0, "\(save.stderr)")
      return save
    }

    static func restore(_ cluster: EtcdClusterFixture, _ name: String, _ extra: [String] = []) async throws -> ProcessResult {
      try await LifeboatCLI.run(["snapshot", "restore", name, "--config", cluster.configFile, "--yes"] + extra)
    }

    @Test(arguments: LocalRuntime.allCases) func restoreBringsBackExactlyTheSavedKeysOnEveryMember(runtime: LocalRuntime) async throws {
      try await withAgentCluster(runtime: runtime) { cluster in
        let written = try await writeKeys(cluster, count: 10_000)
        let save = try await Self.save(cluster, "before-upgrade")
        #expect(save.stdout.contains("copies    127.0.0.11, 127.0.0.12, 127.0.0.13"))
        // Same name, same bytes on every node.
        let shas = try await cluster.members.asyncMap { try await sha256sum($0.snapshotDir! + "/before-upgrade.zip") }
        #expect(Set(shas).count == 1)
        let manifest = try Self.manifest(cluster, node: 0, name: "before-upgrade")
        #expect(shas[0] == manifest.archiveSHA256)

        try await Self.diverge(cluster)
        #expect(try await Self.keys(cluster, member: 0).count != written.count)

        let dry = try await Self.restore(cluster, "before-upgrade", ["--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("member etcd-node2 on 127.0.0.12"))
        #expect(try await Self.keys(cluster, member: 0).count != written.count, "--dry-run changes nothing")

        let containers = try await cluster.etcdContainers()
        let restore = try await Self.restore(cluster, "before-upgrade")
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stdout.contains("restored before-upgrade: 3 members healthy"))
        if runtime == .docker {
          // RKE's nodes: the same containers (never re-created), running, restart policy kept,
          // and no restore container left in any engine.
          let after = try await cluster.etcdContainers()
          #expect(after.map(\.Id) == containers.map(\.Id))
          #expect(after.allSatisfy { $0.State.Running && $0.HostConfig.RestartPolicy?.Name == "always" })
          for member in cluster.members {
            let names = try await DockerEngine(host: member.dockerHost!).listContainers().flatMap(\.names)
            #expect(names == ["/etcd"], "\(member.address): \(names)")
          }
        }
        for index in 0..<3 {
          let served = try await Self.keys(cluster, member: index)
          #expect(served == written, "member \(index) serves exactly the saved keys")
          let status = try await cluster.withMemberClient(index) { try await $0.status() }
          #expect(status.hasLeader)
          #expect(status.revision == manifest.revision, "no leases, no writes: the revision is the snapshot's")
          // The old data dir is kept beside the new one.
          let parent = parentDirectory(of: cluster.members[index].dataDir)
          let kept = try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.hasPrefix(cluster.oldDataDirPrefix(index)) }
          #expect(kept.count == 1)
          let leftovers = try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.contains("lifeboat-staged") }
          #expect(leftovers.isEmpty)
        }
        // The archive's state file replaced the local one, which is kept.
        let configDir = parentDirectory(of: cluster.configFile)
        let backups = try FileManager.default.contentsOfDirectory(atPath: configDir).filter { $0.hasPrefix("cluster.rkestate.") && $0.hasSuffix(".bak") }
        #expect(backups.count == 1)
        #expect(try fileMode(configDir + "/cluster.rkestate") == 0o600)
      }
    }

    @Test(arguments: LocalRuntime.allCases) func restoreFromS3WithEveryLocalCopyDeleted(runtime: LocalRuntime) async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withAgentCluster(runtime: runtime, configure: { spec in
          spec.s3 = moto.backupConfig(bucket: "snaps", folder: "prod")
          spec.s3InsecureHTTP = true
        }) { cluster in
          let written = try await writeKeys(cluster, count: 2_000)
          let save = try await Self.save(cluster, "nightly")
          #expect(save.stdout.contains("uploaded  s3://snaps/prod/nightly.zip"))
          let listing = try await moto.aws(["s3", "ls", "s3://snaps/prod/"])
          #expect(listing.stdout.contains("nightly.zip"))
          for member in cluster.members {
            try FileManager.default.removeItem(atPath: member.snapshotDir! + "/nightly.zip")
            try FileManager.default.removeItem(atPath: member.snapshotDir! + "/nightly.manifest.json")
          }
          try await Self.diverge(cluster)

          let restore = try await Self.restore(cluster, "nightly")
          #expect(restore.status == 0, "\(restore.stderr)")
          #expect(restore.stdout.contains("from:    s3://snaps/prod/nightly.zip"))
          for index in 0..<3 { #expect(try await Self.keys(cluster, member: index) == written) }
          // The secret key never reaches the output.
          #expect(!(restore.stdout + restore.stderr + save.stdout + save.stderr).contains("lifeboat-test-secret"))
        }
      }
    }

    @Test(arguments: LocalRuntime.allCases) func aCorruptedCopyOnOneNodeIsRefusedBeforeAnyEtcdStops(runtime: LocalRuntime) async throws {
      try await withAgentCluster(runtime: runtime, configure: { spec in
        spec.agentEnvironment[1] = ["LIFEBOAT_FAILPOINTS": "fetch.corrupt"]
      }) { cluster in
        _ = try await writeKeys(cluster, count: 1_000)
        _ = try await Self.save(cluster, "corrupt-test")
        try await Self.diverge(cluster)
        let before = try await Self.keys(cluster, member: 0)
        let pids = try await (0..<3).asyncMap { await cluster.etcdPID(of: $0) }

        let restore = try await Self.restore(cluster, "corrupt-test")
        #expect(restore.status == 4, "verification failure: \(restore.stderr)")
        #expect(restore.stderr.contains("127.0.0.12"), "names the node: \(restore.stderr)")
        #expect(restore.stderr.contains("nothing changed"))
        #expect(restore.stderr.split(separator: "\n").filter { $0.hasPrefix("lifeboat: error") }.count == 1)
        #expect(try await (0..<3).asyncMap { await cluster.etcdPID(of: $0) } == pids, "no etcd was stopped")
        for index in 0..<3 {
          #expect(try await Self.keys(cluster, member: index) == before)
          let parent = parentDirectory(of: cluster.members[index].dataDir)
          #expect(try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.contains("lifeboat-") }.isEmpty)
          #expect(!FileManager.default.fileExists(atPath: cluster.members[index].runDir + "/restore-"), "work files removed")
        }
      }
    }

    @Test(arguments: LocalRuntime.allCases) func anEtcdThatFailsToStartAfterTheSwapRollsEveryNodeBack(runtime: LocalRuntime) async throws {
      try await withAgentCluster(runtime: runtime, configure: { spec in
        spec.agentEnvironment[2] = ["LIFEBOAT_FAILPOINTS": "start.exit"]
      }) { cluster in
        _ = try await writeKeys(cluster, count: 1_000)
        _ = try await Self.save(cluster, "rollback-test")
        try await Self.diverge(cluster)
        let before = try await Self.keys(cluster, member: 0)

        let restore = try await Self.restore(cluster, "rollback-test")
        #expect(restore.status == 7, "rolled back: \(restore.stderr)")
        #expect(restore.stderr.contains("rolled back"))
        for index in 0..<3 {
          #expect(try await Self.keys(cluster, member: index) == before, "member \(index) serves its pre-restore data")
          let status = try await cluster.withMemberClient(index) { try await $0.status() }
          #expect(status.hasLeader)
          let parent = parentDirectory(of: cluster.members[index].dataDir)
          #expect(try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.contains("lifeboat-") }.isEmpty)
        }
      }
    }

    @Test(arguments: LocalRuntime.allCases) func anRKELayoutArchiveMadeByPythonAndABareLegacyFileRestore(runtime: LocalRuntime) async throws {
      try await withAgentCluster(runtime: runtime) { cluster in
        let written = try await writeKeys(cluster, count: 500)
        // RKE's way: etcdctl snapshot save, then a zip with absolute entry paths.
        let name = "rke_etcd_snapshot_2026-11-25T10-00-00Z"
        let db = cluster.directory.file(name)
        let files = cluster.tlsFiles!
        let save = try await etcdctl(
          ["--endpoints", cluster.endpoints[0], "--cacert", files.ca, "--cert", files.cert, "--key", files.key, "snapshot", "save", db])
        #expect(save.status == 0, "\(save.stderr)")
        let state = parentDirectory(of: cluster.configFile) + "/cluster.rkestate"
        let archive = cluster.members[0].snapshotDir! + "/\(name).zip"
        try makeDirectories(cluster.members[0].snapshotDir!)
        let zip = try await ProcessRunner.run(
          "/usr/bin/env",
          [
            "python3", "-c",
            """
            import zipfile,sys
            z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)
            z.write(sys.argv[2], '/backup/' + sys.argv[4])
            z.write(sys.argv[3], '/etc/kubernetes/' + sys.argv[4] + '.rkestate')
            z.close()
            """,
            archive, db, state, name,
          ])
        #expect(zip.status == 0, "\(zip.stderr)")
        try await Self.diverge(cluster)

        let restore = try await Self.restore(cluster, name)
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stdout.contains("no manifest"))
        for index in 0..<3 { #expect(try await Self.keys(cluster, member: index) == written) }

        // An older bare snapshot file (no zip), on the last node only.
        let legacy = "legacy-snapshot"
        try makeDirectories(cluster.members[2].snapshotDir!)
        let bare = try await etcdctl(
          ["--endpoints", cluster.endpoints[0], "--cacert", files.ca, "--cert", files.cert, "--key", files.key, "snapshot", "save",
           cluster.members[2].snapshotDir! + "/" + legacy])
        #expect(bare.status == 0, "\(bare.stderr)")
        try await Self.diverge(cluster, deleting: "/registry/test/001")
        let fromLegacy = try await Self.restore(cluster, legacy)
        #expect(fromLegacy.status == 0, "\(fromLegacy.stderr)")
        #expect(fromLegacy.stdout.contains("from:    local on 127.0.0.13"))
        for index in 0..<3 { #expect(try await Self.keys(cluster, member: index) == written) }
      }
    }

    @Test(arguments: LocalRuntime.allCases) func aClusterWithEveryMemberDownIsRestoredThenHooksRun(runtime: LocalRuntime) async throws {
      let marker = try TemporaryDirectory(prefix: "lifeboat-hook")
      defer { marker.remove() }
      try await withAgentCluster(runtime: runtime, configure: { spec in
        spec.postRestoreHooks = ["echo \"$LIFEBOAT_SNAPSHOT\" > \(marker.file("restored"))", "echo boom >&2; exit 3"]
      }) { cluster in
        let written = try await writeKeys(cluster, count: 1_000)
        // A recurring run's lock key, as it would be inside a snapshot.
        _ = try await cluster.withClient { try await $0.put(ClusterEngine.lockPrefix + "cluster", Array("holder".utf8)) }
        _ = try await Self.save(cluster, "disaster")
        try await Self.diverge(cluster)
        // The disaster: every member is down.
        for index in 0..<3 { await cluster.stopMember(index) }
        for index in 0..<3 { #expect(await cluster.etcdPID(of: index) == nil, "member \(index) is down") }
        let stateFile = parentDirectory(of: cluster.configFile) + "/cluster.rkestate"
        let stateBefore = try Data(contentsOf: URL(fileURLWithPath: stateFile))

        let restore = try await Self.restore(cluster, "disaster", ["--use-local-state"])
        #expect(restore.status == 1, "a failing hook is a failure: \(restore.stderr)")
        #expect(restore.stderr.contains("restored, but the post-restore hook `echo boom >&2; exit 3` exited 3: boom"))
        #expect(try String(contentsOfFile: marker.file("restored"), encoding: .utf8) == "disaster\n", "hooks run in order")
        for index in 0..<3 {
          #expect(try await Self.keys(cluster, member: index) == written, "the restored data stays")
        }
        let locks = try await cluster.withMemberClient(0) { try await $0.range(prefix: ClusterEngine.lockPrefix) }
        #expect(locks.isEmpty, "Lifeboat's lock keys that came back with the snapshot are removed")
        #expect(try Data(contentsOf: URL(fileURLWithPath: stateFile)) == stateBefore, "--use-local-state keeps the local state file")
        let backups = try FileManager.default.contentsOfDirectory(atPath: parentDirectory(of: stateFile)).filter { $0.hasSuffix(".bak") }
        #expect(backups.isEmpty)
      }
    }

    @Test func unknownNamesAndUnconfirmedRestoresChangeNothing() async throws {
      try await withAgentCluster(nodes: 1) { cluster in
        _ = try await Self.save(cluster, "myname1")
        let missing = try await Self.restore(cluster, "myname")
        #expect(missing.status == 3, "myname must never match myname1: \(missing.stderr)")
        let traversal = try await Self.restore(cluster, "../etc/passwd")
        #expect(traversal.status == 2)
        let unconfirmed = try await LifeboatCLI.run(["snapshot", "restore", "myname1", "--config", cluster.configFile])
        #expect(unconfirmed.status == 2)
        #expect(unconfirmed.stderr.contains("--yes"))
      }
    }
  }
}
