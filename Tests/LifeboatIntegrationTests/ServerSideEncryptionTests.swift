import Crypto
import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import TestSupport
import Testing

extension Integration {
  /// Server-side encryption headers on what Lifeboat writes, seen by `aws s3api head-object` on
  /// moto's stored objects (SSE-S3, SSE-KMS), and on every request that needs them (SSE-C).
  @Suite struct ServerSideEncryptionTests {
    struct Head: Decodable {
      var ServerSideEncryption: String?
      var SSEKMSKeyId: String?
    }

    static func head(_ moto: MotoServer, _ key: String) async throws -> Head {
      let result = try await moto.aws(["s3api", "head-object", "--bucket", "snaps", "--key", key, "--output", "json"])
      #expect(result.status == 0, "\(result.stderr)")
      return try JSONDecoder().decode(Head.self, from: Data(result.stdout.utf8))
    }

    @Test func sseS3AndSSEKMSAreOnTheArchiveAndTheManifest() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withEtcdCluster(nodes: 1) { cluster in
          try await writeRandom(cluster, mib: 12)
          let dir = cluster.directory.file("snapshots")
          for (name, flags, expected) in [
            ("sse-s3", ["--s3-sse", "AES256"], ("AES256", nil as String?)),
            ("sse-kms", ["--s3-sse", "aws:kms", "--s3-sse-kms-key-id", "alias/etcd-backups"], ("aws:kms", "alias/etcd-backups")),
          ] {
            let save = try await LifeboatCLI.run(
              ["snapshot", "save", "--name", name, "--snapshot-dir", dir] + cluster.connectionFlags + s3Flags(moto.endpoint, folder: "") + flags)
            #expect(save.status == 0, "\(save.stderr)")
            for key in ["\(name).zip", "\(name).manifest.json"] {
              let head = try await Self.head(moto, key)
              #expect(head.ServerSideEncryption == expected.0, "\(key)")
              if let keyID = expected.1 { #expect(head.SSEKMSKeyId?.hasSuffix(keyID) == true, "\(key): \(String(describing: head.SSEKMSKeyId))") }
            }
            let verify = try await LifeboatCLI.run(["snapshot", "verify", name, "--snapshot-dir", dir] + s3Flags(moto.endpoint, folder: "") + flags)
            #expect(verify.status == 0, "\(verify.stderr)")
          }
          let bad = try await LifeboatCLI.run(["snapshot", "list", "--snapshot-dir", dir] + s3Flags(moto.endpoint, folder: "") + ["--s3-sse", "aes256"])
          #expect(bad.status == 2, "\(bad.stderr)")
          #expect(bad.stderr.contains("--s3-sse aes256: expected AES256 or aws:kms"))
        }
      }
    }

    /// moto stores SSE-C objects without checking the key, so this checks what Lifeboat sends:
    /// the customer key on the create, every part, every read and every lookup.
    @Test func sseCSendsTheKeyWithEveryRequestForTheData() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        let proxy = try await S3FaultProxy.start(upstream: moto.endpoint) { _ in .forward }
        try await withCleanup({
          try await withTemporaryDirectory { dir in
            let key = [UInt8]((0..<32).map { UInt8($0 * 7 % 256) })
            try Data(key).base64EncodedString().write(toFile: dir.file("sse-c.key"), atomically: true, encoding: .utf8)
            var configuration = try moto.configuration(bucket: "snaps")
            configuration.endpoint = try S3Endpoint(parsing: proxy.endpoint, allowInsecureHTTP: true)
            configuration.serverSideEncryption = try S3ServerSideEncryption(customerKeyFile: dir.file("sse-c.key"))
            let data = [UInt8](repeating: 0x42, count: 11 << 20)
            try await S3Store.with(configuration) { store in
              _ = try await store.put("small.json", Array("{}".utf8), contentType: "application/json")
              let writer = try await store.makeWriter(for: "big.zip", contentType: "application/zip")
              try await writer.write(data)
              _ = try await writer.finish()
              #expect(try await store.stat("big.zip").size == UInt64(data.count))
              var read = 0
              try await store.read("big.zip", range: nil) { (chunk) async throws(LifeboatError) in read += chunk.count }
              #expect(read == data.count)
            }
            let expected = [
              "x-amz-server-side-encryption-customer-algorithm": "AES256",
              "x-amz-server-side-encryption-customer-key": Data(key).base64EncodedString(),
              "x-amz-server-side-encryption-customer-key-md5": Data(Insecure.MD5.hash(data: key)).base64EncodedString(),
            ]
            let dataRequests = proxy.requests.filter { request in
              let object = (request.uri.contains("small.json") || request.uri.contains("big.zip")) && !request.uri.contains("prefix=")
              let complete = request.method == "POST" && request.uri.contains("uploadId=")
              let abort = request.method == "DELETE"
              return object && !complete && !abort
            }
            #expect(Set(dataRequests.map(\.method)) == ["PUT", "POST", "GET", "HEAD"], "\(dataRequests.map { "\($0.method) \($0.uri)" })")
            #expect(dataRequests.filter(\.isPartUpload).count == 3, "11 MiB in 5 MiB parts")
            for request in dataRequests {
              #expect(request.encryptionHeaders == expected, "\(request.method) \(request.uri)")
            }
            #expect(proxy.requests.filter { $0.uri.contains("list-type") }.allSatisfy { $0.encryptionHeaders.isEmpty }, "a listing carries no key")
          }
        }, cleanup: { await proxy.stop() })
      }
    }

    @Test func sseCIsRefusedOverPlainHTTPAndWithABadKeyFile() async throws {
      try await withTemporaryDirectory { dir in
        try "short".write(toFile: dir.file("bad.key"), atomically: true, encoding: .utf8)
        try Data(repeating: 1, count: 32).write(to: URL(fileURLWithPath: dir.file("good.key")))
        let base = ["snapshot", "list", "--snapshot-dir", dir.path, "--s3", "--bucket-name", "snaps", "--access-key", "a", "--secret-key", "b"]
        let plain = try await LifeboatCLI.run(base + ["--s3-endpoint", "http://127.0.0.1:9", "--s3-insecure-http", "--s3-sse-customer-key-file", dir.file("good.key")])
        #expect(plain.status == 2, "\(plain.stderr)")
        #expect(plain.stderr.contains("--s3-sse-customer-key-file needs an https:// endpoint"))
        let bad = try await LifeboatCLI.run(base + ["--s3-endpoint", "127.0.0.1:9", "--s3-sse-customer-key-file", dir.file("bad.key")])
        #expect(bad.status == 2, "\(bad.stderr)")
        #expect(bad.stderr.contains("expected a 256-bit key"))
        let both = try await LifeboatCLI.run(base + ["--s3-endpoint", "127.0.0.1:9", "--s3-sse", "AES256", "--s3-sse-customer-key-file", dir.file("good.key")])
        #expect(both.status == 2, "\(both.stderr)")
      }
    }
  }
}
