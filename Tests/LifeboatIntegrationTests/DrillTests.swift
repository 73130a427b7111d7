import Foundation
import LifeboatCore
import LifeboatEngine
import TestSupport
import Testing

extension Integration {
  /// `lifeboat snapshot drill`: a throwaway etcd restored from the snapshot, on loopback.
  @Suite struct DrillTests {
    static func drillProcesses() -> [String] {
      let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
      return entries.compactMap { Int32($0) }.compactMap { DetachedProcess.commandLine($0)?.joined(separator: " ") }
        .filter { $0.contains("--name=lifeboat-drill") }
    }

    /// `lifeboat snapshot save --name NAME --snapshot-dir DIR` of the cluster's member.
    static func save(_ cluster: EtcdClusterFixture, _ name: String, in dir: String) async throws {
      let save = try await LifeboatCLI.run(["snapshot", "save", "--name", name, "--snapshot-dir", dir] + cluster.connectionFlags)
      #expect(save.status == 0, "\(save.stderr)")
    }

    @Test func aGoodSnapshotPassesEveryCheckAndLeavesNothing() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        _ = try await writeKeys(cluster, count: 500)
        try await cluster.withClient { client in
          _ = try await client.deletePrefix("/registry/test/001")
          try await client.putAll((0..<20).map { (key: "/registry/pods/default/p\($0)", value: [UInt8](repeating: 1, count: 300)) })
        }
        let dir = cluster.directory.file("snapshots")
        let scratch = cluster.directory.file("scratch")
        try await Self.save(cluster, "good", in: dir)
        let drill = try await LifeboatCLI.run(["snapshot", "drill", "good", "--snapshot-dir", dir, "--scratch-dir", scratch, "--json"])
        #expect(drill.status == 0, "\(drill.stdout)\(drill.stderr)")
        let report = try JSONDecoder().decode(DrillShape.self, from: Data(drill.stdout.utf8))
        #expect(report.checks.map(\.name) == ["verify", "read offline", "restore", "serve", "revision", "hashkv", "objects"])
        #expect(report.checks.filter { !$0.passed }.isEmpty, "\(report.checks)")
        let served = try #require(report.objects)
        #expect(served.total == 500 - 100 + 20)
        #expect(served.kubernetes.first { $0.resource == "pods" }?.count == 20)
        // Nothing left: no scratch dir, no process.
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
        #expect(Self.drillProcesses().isEmpty)
        let text = try await LifeboatCLI.run(["snapshot", "drill", "good", "--snapshot-dir", dir, "--scratch-dir", scratch])
        #expect(text.status == 0 && text.stdout.contains("hashkv") && text.stdout.contains("ok"), "\(text.stdout)")
        // --latest: the newest snapshot of the directory.
        try await Task.sleep(for: .seconds(1))
        let newer = try await LifeboatCLI.run(["snapshot", "save", "--name", "newer", "--snapshot-dir", dir] + cluster.connectionFlags)
        #expect(newer.status == 0, "\(newer.stderr)")
        let latest = try await LifeboatCLI.run(["snapshot", "drill", "--latest", "--snapshot-dir", dir, "--scratch-dir", scratch, "--json"])
        #expect(latest.status == 0, "\(latest.stderr)")
        #expect(try JSONDecoder().decode(DrillShape.self, from: Data(latest.stdout.utf8)).name == "newer")
        let neither = try await LifeboatCLI.run(["snapshot", "drill", "--snapshot-dir", dir])
        #expect(neither.status == 2, "\(neither.stderr)")
      }
    }

    /// Found by a review: every Kubernetes snapshot comes from a compacted etcd (the API server
    /// compacts every 5 minutes); HashKV must be computed as etcd does. Also: compacted at the
    /// snapshot's own revision, a last write that is a delete, and an empty etcd.
    @Test func compactedAndEmptySnapshotsPassTheDrill() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        let dir = cluster.directory.file("snapshots")
        let scratch = cluster.directory.file("scratch")
        func saveAndDrill(_ name: String) async throws -> ProcessResult {
          try await Self.save(cluster, name, in: dir)
          return try await LifeboatCLI.run(["snapshot", "drill", name, "--snapshot-dir", dir, "--scratch-dir", scratch])
        }
        func compact() async throws {
          let revision = try await cluster.withClient { try await $0.status().revision }
          let result = try await etcdctl(["--endpoints", cluster.endpoints[0], "compact", String(revision), "--physical"])
          #expect(result.status == 0, "\(result.stderr)")
        }
        let empty = try await saveAndDrill("empty")
        #expect(empty.status == 0, "an empty etcd: \(empty.stdout)\(empty.stderr)")
        try await cluster.withClient { client in
          for i in 1...3 { _ = try await client.put("/registry/configmaps/default/k", Array("v\(i)".utf8)) }
          try await client.putAll((0..<60).map { (key: "/registry/pods/default/p\($0)", value: [1, 2, 3]) })
        }
        try await compact()
        _ = try await cluster.withClient { try await $0.put("/registry/pods/default/after", [4]) }
        let midHistory = try await saveAndDrill("mid-history")
        #expect(midHistory.status == 0, "compacted mid-history: \(midHistory.stdout)\(midHistory.stderr)")
        try await compact()
        let atRevision = try await saveAndDrill("at-revision")
        #expect(atRevision.status == 0, "compacted at the snapshot's revision: \(atRevision.stdout)\(atRevision.stderr)")
        _ = try await cluster.withClient { try await $0.deletePrefix("/registry/pods/default/p1") }
        try await compact()
        let deleted = try await saveAndDrill("last-write-a-delete")
        #expect(deleted.status == 0, "a delete, then compacted: \(deleted.stdout)\(deleted.stderr)")
        #expect(Self.drillProcesses().isEmpty)
      }
    }

    /// Ctrl-C while the throwaway etcd runs: it is stopped and the scratch dir removed, exit 1.
    @Test func anInterruptedDrillCleansUp() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        _ = try await writeKeys(cluster, count: 200)
        let dir = cluster.directory.file("snapshots")
        let scratch = cluster.directory.file("scratch")
        try await Self.save(cluster, "s", in: dir)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: LifeboatCLI.binary)
        process.arguments = ["snapshot", "drill", "s", "--snapshot-dir", dir, "--scratch-dir", scratch]
        process.environment = ProcessInfo.processInfo.environment.merging(["LIFEBOAT_FAILPOINTS": "drill.slow"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var running = false
        for _ in 0..<200 where !running {
          running = !Self.drillProcesses().isEmpty
          if !running { try await Task.sleep(for: .milliseconds(25)) }
        }
        #expect(running, "the throwaway etcd never started")
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        #expect(Self.drillProcesses().isEmpty, "the throwaway etcd was stopped")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty, "the scratch dir was removed")
      }
    }

    /// A drill killed with -9 leaves its throwaway etcd and scratch dir: the next drill removes them.
    @Test func theNextDrillRemovesWhatAKilledDrillLeft() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        _ = try await writeKeys(cluster, count: 50)
        let dir = cluster.directory.file("snapshots")
        let scratch = cluster.directory.file("scratch")
        try await Self.save(cluster, "s", in: dir)
        // What a killed drill leaves: its directory with a dead owner, and an etcd serving from it.
        let abandoned = scratch + "/lifeboat-drill-deadbeef"
        try makeDirectories(abandoned)
        try Data("999999999\n".utf8).write(to: URL(fileURLWithPath: abandoned + "/owner.pid"))
        let sleeper = try DetachedProcess.spawn(
          executable: "/bin/sh", arguments: ["-c", "sleep 60", "--name=lifeboat-drill", "--data-dir=\(abandoned)/data"],
          logFile: cluster.directory.file("sleeper.log"))
        #expect(DetachedProcess.isRunning(sleeper))
        let drill = try await LifeboatCLI.run(["snapshot", "drill", "s", "--snapshot-dir", dir, "--scratch-dir", scratch])
        #expect(drill.status == 0, "\(drill.stdout)\(drill.stderr)")
        #expect(!FileManager.default.fileExists(atPath: abandoned))
        for _ in 0..<50 where DetachedProcess.isRunning(sleeper) { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!DetachedProcess.isRunning(sleeper), "the abandoned etcd was stopped")
      }
    }

    /// Passes `verify` (every hash holds) but claims a revision the data does not have.
    @Test func aManifestClaimingAnotherRevisionFailsTheDrillWithExit4() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        _ = try await writeKeys(cluster, count: 100)
        let dir = cluster.directory.file("snapshots")
        try await Self.save(cluster, "edited", in: dir)
        let manifestPath = dir + "/edited.manifest.json"
        var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifestPath))) as! [String: Any]
        manifest["revision"] = (manifest["revision"] as! Int) + 1000
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: manifestPath))
        let verify = try await LifeboatCLI.run(["snapshot", "verify", "edited", "--snapshot-dir", dir])
        #expect(verify.status == 0, "verify cannot see it: \(verify.stderr)")
        let drill = try await LifeboatCLI.run(["snapshot", "drill", "edited", "--snapshot-dir", dir, "--scratch-dir", cluster.directory.file("s")])
        #expect(drill.status == 4, "\(drill.stdout)\(drill.stderr)")
        #expect(drill.stderr.contains("failed at revision"), "\(drill.stderr)")
        #expect(Self.drillProcesses().isEmpty)
      }
    }

    /// A bbolt file without etcd's buckets, packaged as RKE packages snapshots.
    @Test func aDatabaseWithoutEtcdsBucketsFailsTheDrill() async throws {
      let directory = try TemporaryDirectory(prefix: "lifeboat-drill")
      defer { directory.remove() }
      let dir = directory.file("snapshots")
      try makeDirectories(dir)
      let name = "rke_etcd_snapshot_2026-11-30T00-00-00Z"
      let made = try await ProcessRunner.run(
        "/usr/bin/env",
        [
          "python3", "-c",
          """
          import struct, sys, zipfile
          P = 4096
          def fnv(b):
              h = 0xcbf29ce484222325
              for x in b:
                  h ^= x; h = (h * 0x100000001b3) & 0xffffffffffffffff
              return h
          def meta(pid, txid):
              body = struct.pack('<IIIIQQQQQ', 0xED0CDAED, 2, P, 0, 3, 0, 2, 4, txid)
              return (struct.pack('<QHHI', pid, 0x04, 0, 0) + body + struct.pack('<Q', fnv(body))).ljust(P, b'\\0')
          db = meta(0, 1) + meta(1, 2) + struct.pack('<QHHI', 2, 0x10, 0, 0).ljust(P, b'\\0') + struct.pack('<QHHI', 3, 0x02, 0, 0).ljust(P, b'\\0')
          z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)
          z.writestr('/backup/' + sys.argv[2], db)
          z.close()
          """,
          dir + "/\(name).zip", name,
        ])
      #expect(made.status == 0, "\(made.stderr)")
      let drill = try await LifeboatCLI.run(["snapshot", "drill", name, "--snapshot-dir", dir, "--scratch-dir", directory.file("s")])
      #expect(drill.status == 4, "\(drill.stdout)\(drill.stderr)")
      #expect(drill.stderr.contains("drill of \(name) failed at"), "\(drill.stderr)")
      #expect(Self.drillProcesses().isEmpty)
      #expect(((try? FileManager.default.contentsOfDirectory(atPath: directory.file("s"))) ?? []).isEmpty)
    }
  }
}

struct DrillShape: Decodable {
  struct Check: Decodable { var name: String; var passed: Bool; var detail: String }
  struct Objects: Decodable {
    struct Count: Decodable { var resource: String; var namespace: String?; var count: Int }
    var kubernetes: [Count]
    var total: Int
  }
  var name: String
  var path: String
  var checks: [Check]
  var objects: Objects?
}
