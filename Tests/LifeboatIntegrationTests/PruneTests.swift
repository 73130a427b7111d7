import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import TestSupport
import Testing

extension Integration {
  /// `lifeboat snapshot prune --config`: one policy, every node and the S3 folder.
  @Suite struct PruneTests {
    @Test func keepLastLeavesTheNewestTwoEverywhereAndManualSnapshotsAlone() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withAgentCluster(configure: { spec in
          spec.s3 = moto.backupConfig(bucket: "snaps", folder: "prod/cluster-a")
          spec.s3InsecureHTTP = true
        }) { cluster in
          _ = try await writeKeys(cluster, count: 100)
          let recurring = ["2026-11-20T00:00:00Z_etcd", "2026-11-21T00:00:00Z_etcd", "2026-11-22T00-00-00Z_etcd"]
          let manual = ["rke_etcd_snapshot_2026-11-19T10:00:00+01:00", "before-upgrade"]
          for name in recurring + manual {
            let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", name])
            #expect(save.status == 0, "\(save.stderr)")
          }
          var yaml = try String(contentsOfFile: cluster.configFile, encoding: .utf8)
          yaml += "  keep_last: 2\n"
          try Data(yaml.utf8).write(to: URL(fileURLWithPath: cluster.configFile))

          func names(on node: Int) throws -> Set<String> {
            Set(try FileManager.default.contentsOfDirectory(atPath: cluster.members[node].snapshotDir!).filter { $0.hasSuffix(".zip") })
          }
          func s3Keys() async throws -> String { try await moto.aws(["s3", "ls", "s3://snaps/prod/cluster-a/"]).stdout }

          let dry = try await LifeboatCLI.run(["snapshot", "prune", "--config", cluster.configFile, "--dry-run"])
          #expect(dry.status == 0, "\(dry.stderr)")
          #expect(dry.stdout.contains("would delete  2026-11-20T00:00:00Z_etcd  [127.0.0.11, 127.0.0.12, 127.0.0.13, s3]"))
          #expect(try names(on: 0).count == 5, "--dry-run deletes nothing")

          let prune = try await LifeboatCLI.run(["snapshot", "prune", "--config", cluster.configFile])
          #expect(prune.status == 0, "\(prune.stderr)")
          let expected = Set((recurring.dropFirst() + manual).map { $0 + ".zip" })
          for node in 0..<3 { #expect(try names(on: node) == expected, "node \(node)") }
          let listing = try await s3Keys()
          #expect(!listing.contains("2026-11-20T00:00:00Z_etcd"), "pruned in S3 too, inside the folder")
          for name in recurring.dropFirst() + manual { #expect(listing.contains(name + ".zip")) }
          #expect(!FileManager.default.fileExists(atPath: cluster.members[0].snapshotDir! + "/2026-11-20T00:00:00Z_etcd.manifest.json"))

          // Again: nothing more to do.
          let again = try await LifeboatCLI.run(["snapshot", "prune", "--config", cluster.configFile])
          #expect(again.status == 0)
          #expect(!again.stdout.contains("delete "))

          // The bucket with a policy of its own: the nodes keep one, the bucket two.
          yaml = yaml.replacingOccurrences(of: "  keep_last: 2\n", with: "  keep_last: 1\n  s3_keep_last: 2\n")
          try Data(yaml.utf8).write(to: URL(fileURLWithPath: cluster.configFile))
          let apart = try await LifeboatCLI.run(["snapshot", "prune", "--config", cluster.configFile])
          #expect(apart.status == 0, "\(apart.stderr)")
          #expect(apart.stdout.contains("policy (s3): keep last 2"), "\(apart.stdout)")
          #expect(apart.stdout.contains("delete  2026-11-21T00:00:00Z_etcd  [127.0.0.11, 127.0.0.12, 127.0.0.13]"), "\(apart.stdout)")
          for node in 0..<3 {
            #expect(try names(on: node) == Set(([recurring[2]] + manual).map { $0 + ".zip" }), "node \(node)")
          }
          let kept = try await s3Keys()
          #expect(kept.contains(recurring[1] + ".zip") && kept.contains(recurring[2] + ".zip"), "the bucket keeps two: \(kept)")
        }
      }
    }
  }
}
