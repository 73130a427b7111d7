import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import TestSupport
import Testing

extension Integration {
  /// Object Lock on what Lifeboat writes (moto's bucket with Object Lock enabled), kept and
  /// reported by delete and prune; the CRC-32C sent with every object and part.
  @Suite struct ObjectLockTests {
    struct Head: Decodable {
      var ObjectLockMode: String?
      var ObjectLockRetainUntilDate: String?
    }

    static func lockedBucket(_ moto: MotoServer, _ bucket: String) async throws {
      let created = try await moto.aws(["s3api", "create-bucket", "--bucket", bucket, "--object-lock-enabled-for-bucket"])
      #expect(created.status == 0, "\(created.stderr)")
    }

    @Test func lockedSnapshotsAreKeptByDeleteAndPruneAndReported() async throws {
      try await withMotoServer { moto in
        try await Self.lockedBucket(moto, "locked")
        try await withAgentCluster(nodes: 1, configure: { spec in
          spec.s3 = moto.backupConfig(bucket: "locked")
          spec.s3InsecureHTTP = true
          spec.lifeboatSettings = ["keep_last: 1", "s3:", "  object_lock_mode: GOVERNANCE", "  object_lock_days: 2"]
        }) { cluster in
          _ = try await writeKeys(cluster, count: 50)
          let names = ["2026-11-20T00:00:00Z_etcd", "2026-11-21T00:00:00Z_etcd"]
          for name in names {
            let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", name])
            #expect(save.status == 0, "\(save.stderr)")
          }
          for key in [names[0] + ".zip", names[0] + ".manifest.json"] {
            let result = try await moto.aws(["s3api", "head-object", "--bucket", "locked", "--key", key, "--output", "json"])
            #expect(result.status == 0, "\(result.stderr)")
            let head = try JSONDecoder().decode(Head.self, from: Data(result.stdout.utf8))
            #expect(head.ObjectLockMode == "GOVERNANCE", "\(key)")
            let until = try #require(head.ObjectLockRetainUntilDate.flatMap { ISO8601DateFormatter().date(from: String($0.prefix(19)) + "Z") })
            #expect(abs(until.timeIntervalSinceNow - 2 * 86400) < 600, "locked for two days: \(until)")
          }

          let dry = try await LifeboatCLI.run(["snapshot", "prune", "--config", cluster.configFile, "--dry-run"])
          #expect(dry.status == 0, "\(dry.stderr)")
          #expect(dry.stdout.contains("s3://locked/\(names[0]).zip is locked until "), "\(dry.stdout)")
          #expect(dry.stdout.contains("it will be kept"), "\(dry.stdout)")
          let prune = try await LifeboatCLI.run(["snapshot", "prune", "--config", cluster.configFile])
          #expect(prune.status == 0, "a lock doing its job is not a failure: \(prune.stderr)")
          #expect(prune.stdout.contains("s3://locked/\(names[0]).zip is locked until "), "\(prune.stdout)")
          #expect(prune.stdout.contains("(GOVERNANCE): kept"), "\(prune.stdout)")
          let dir = cluster.members[0].snapshotDir!
          #expect(!FileManager.default.fileExists(atPath: dir + "/\(names[0]).zip"), "the node's copy is pruned")
          let listing = try await moto.aws(["s3", "ls", "s3://locked/"]).stdout
          #expect(listing.contains(names[0] + ".zip") && listing.contains(names[0] + ".manifest.json"), "\(listing)")

          let delete = try await LifeboatCLI.run(
            ["snapshot", "delete", names[1], "--snapshot-dir", dir] + s3Flags(moto.endpoint, bucket: "locked", folder: ""))
          #expect(delete.status == 0, "\(delete.stderr)")
          #expect(delete.stdout.contains("deleted \(dir)/\(names[1]).zip"), "\(delete.stdout)")
          #expect(delete.stdout.contains("s3://locked/\(names[1]).zip is locked until "), "\(delete.stdout)")
          #expect(try await moto.aws(["s3", "ls", "s3://locked/"]).stdout.contains(names[1] + ".zip"))
        }
      }
    }

    /// What a save killed with -9 leaves (an unfinished multipart upload) is aborted by age.
    @Test func staleUnfinishedUploadsAreAborted() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        let started = try await moto.aws(["s3api", "create-multipart-upload", "--bucket", "snaps", "--key", "prod/killed.zip"])
        #expect(started.status == 0, "\(started.stderr)")
        try await S3Store.with(try moto.configuration(bucket: "snaps", folder: "prod")) { store in
          // moto reports every upload as started in 2010, so "a young upload stays" cannot be seen here.
          let aborted = try await store.abortUploads(startedBefore: Date())
          #expect(aborted.count == 1 && aborted[0].hasPrefix("s3://snaps/prod/killed.zip (started "), "\(aborted)")
          #expect(try await store.unfinishedUploads().isEmpty)
        }
      }
    }

    /// A plain bitwise CRC-32C, independent of ISA-L.
    static func referenceCRC32C(_ bytes: [UInt8]) -> String {
      var crc: UInt32 = 0xFFFF_FFFF
      for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
      }
      crc ^= 0xFFFF_FFFF
      return Data([UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)]).base64EncodedString()
    }

    @Test func everyPartCarriesItsCRC32CAndOffTurnsItOff() async throws {
      try await withMotoServer { moto in
        try await Self.lockedBucket(moto, "snaps")
        let proxy = try await S3FaultProxy.start(upstream: moto.endpoint) { _ in .forward }
        try await withCleanup({
          var configuration = try moto.configuration(bucket: "snaps")
          configuration.endpoint = try S3Endpoint(parsing: proxy.endpoint, allowInsecureHTTP: true)
          configuration.objectLock = S3ObjectLock(mode: .governance, retention: 86400)
          let parts = (0..<3).map { n in [UInt8]((0..<(5 << 20)).map { UInt8(truncatingIfNeeded: $0 &* (n + 3)) }) }
          try await S3Store.with(configuration) { store in
            let writer = try await store.makeWriter(for: "parts.zip", contentType: "application/zip")
            for part in parts { try await writer.write(part) }
            _ = try await writer.finish()
            _ = try await store.put("small.json", Array("{\"a\":1}".utf8), contentType: "application/json")
          }
          // Parts go up concurrently: matched by their number, not their order.
          let uploads = proxy.requests.filter(\.isPartUpload)
          func number(_ uri: String) -> Int {
            Int(uri.split(separator: "?").last?.split(separator: "&").first { $0.hasPrefix("partNumber=") }?.dropFirst(11) ?? "") ?? 0
          }
          let byNumber = Dictionary(uploads.map { (number($0.uri), $0.headers["x-amz-checksum-crc32c"]) }, uniquingKeysWith: { a, _ in a })
          #expect(byNumber == Dictionary(uniqueKeysWithValues: parts.enumerated().map { ($0.offset + 1, Optional(Self.referenceCRC32C($0.element))) }))
          #expect(proxy.requests.contains { $0.method == "POST" && $0.uri.hasSuffix("?uploads") && $0.headers["x-amz-checksum-algorithm"] == "CRC32C" })
          let put = try #require(proxy.requests.first { $0.method == "PUT" && $0.uri.hasSuffix("small.json") })
          #expect(put.headers["x-amz-checksum-crc32c"] == Self.referenceCRC32C(Array("{\"a\":1}".utf8)))
          #expect(put.headers["x-amz-object-lock-mode"] == "GOVERNANCE")
          // Over plain HTTP the payload stays signed with its SHA-256.
          #expect(uploads.allSatisfy { $0.headers["x-amz-content-sha256"]?.count == 64 })

          // Off: no checksum headers; a locked write then carries Content-MD5 instead.
          let before = proxy.requests.count
          configuration.checksum = .off
          try await S3Store.with(configuration) { store in
            _ = try await store.put("plain.json", Array("{}".utf8), contentType: "application/json")
          }
          let plain = try #require(proxy.requests.dropFirst(before).first { $0.method == "PUT" })
          #expect(!plain.headers.keys.contains { $0.hasPrefix("x-amz-checksum") })
          #expect(plain.headers["content-md5"] == "mZFLkyvTelC5g8XnyQrpOw==", "MD5 of {}")
          let list = try await moto.aws(["s3api", "head-object", "--bucket", "snaps", "--key", "parts.zip"])
          #expect(list.status == 0, "\(list.stderr)")
        }, cleanup: { await proxy.stop() })
      }
    }
  }
}
