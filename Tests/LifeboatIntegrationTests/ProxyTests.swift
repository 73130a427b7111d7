import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import TestSupport
import Testing

extension Integration {
  /// S3 through a real HTTP proxy (tinyproxy on loopback): the environment's variables, the flag,
  /// `none`, NO_PROXY; the proxy's own log shows what went through it.
  @Suite struct ProxyTests {
    static let noProxyVariables = ["HTTPS_PROXY": "", "HTTP_PROXY": "", "https_proxy": "", "http_proxy": "", "NO_PROXY": "", "no_proxy": ""]

    @Test func aSaveOverHTTPSGoesThroughHTTPS_PROXYWithCONNECT() async throws {
      try await withMotoServer(https: true) { moto in
        try await moto.createBucket("snaps")
        try await withTinyProxy { proxy in
          try await withEtcdCluster(nodes: 1) { cluster in
            try await writeRandom(cluster, mib: 12)
            let dir = cluster.directory.file("snapshots")
            let ca = cluster.directory.file("moto-ca.pem")
            try moto.caPEM!.write(toFile: ca, atomically: true, encoding: .utf8)
            let flags = ["--s3", "--s3-endpoint", moto.endpoint, "--s3-endpoint-ca", ca, "--bucket-name", "snaps",
                         "--access-key", "lifeboat-test", "--secret-key", "lifeboat-test-secret"]
            let environment = Self.noProxyVariables.merging(["HTTPS_PROXY": proxy.url, "HTTP_PROXY": "http://127.0.0.1:9"]) { $1 }
            let save = try await LifeboatCLI.run(
              ["snapshot", "save", "--name", "through-proxy", "--snapshot-dir", dir] + cluster.connectionFlags + flags,
              environment: environment)
            #expect(save.status == 0, "\(save.stderr)")
            let tunnels = proxy.requests.filter { $0.hasPrefix("CONNECT 127.0.0.1:\(moto.port)") }
            #expect(!tunnels.isEmpty, "the upload went through the proxy: \(proxy.requests)")

            let list = try await LifeboatCLI.run(["snapshot", "list", "--snapshot-dir", dir] + flags, environment: environment)
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stdout.contains("through-proxy"))
            #expect(list.stderr.contains("proxy \(proxy.url) (HTTPS_PROXY)"), "\(list.stderr)")

            // `--s3-proxy none` ignores the variables; so does a NO_PROXY entry for the host.
            for (extra, env) in [(["--s3-proxy", "none"], environment), ([], environment.merging(["NO_PROXY": "localhost,127.0.0.1"]) { $1 })] {
              let before = proxy.requests.count
              let direct = try await LifeboatCLI.run(["snapshot", "verify", "through-proxy", "--snapshot-dir", dir] + flags + extra, environment: env)
              #expect(direct.status == 0, "\(direct.stderr)")
              #expect(direct.stdout.contains("s3://snaps/through-proxy.zip"))
              #expect(proxy.requests.count == before, "nothing went through the proxy: \(proxy.requests.dropFirst(before))")
            }
          }
        }
      }
    }

    @Test func plainHTTPThroughTheFlagAndAProxyThatIsDown() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withTinyProxy { proxy in
          try await withTemporaryDirectory { dir in
            let flags = ["snapshot", "list", "--snapshot-dir", dir.path, "--s3", "--s3-endpoint", moto.endpoint, "--s3-insecure-http",
                         "--bucket-name", "snaps", "--access-key", "lifeboat-test", "--secret-key", "lifeboat-test-secret"]
            let list = try await LifeboatCLI.run(flags + ["--s3-proxy", proxy.url], environment: Self.noProxyVariables)
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stderr.contains("proxy \(proxy.url) (--s3-proxy)"), "\(list.stderr)")
            // AsyncHTTPClient tunnels plain HTTP through the proxy too (CONNECT), as it does HTTPS.
            #expect(proxy.requests.contains { $0.hasPrefix("CONNECT 127.0.0.1:\(moto.port)") }, "\(proxy.requests)")

            let port = try freeTCPPort(on: "127.0.0.1")
            let down = try await LifeboatCLI.run(flags + ["--s3-proxy", "http://user:hunter2@127.0.0.1:\(port)"], environment: Self.noProxyVariables)
            #expect(down.status == 6, "\(down.stderr)")
            #expect(down.stderr.contains("cannot connect to the proxy http://127.0.0.1:\(port) (--s3-proxy)"), "\(down.stderr)")
            #expect(!down.stderr.contains("hunter2"))
            #expect(down.stderr.split(separator: "\n").filter { $0.contains("error") }.count == 1, "\(down.stderr)")
          }
        }
      }
    }

    /// An https:// endpoint (the default) that speaks plain HTTP: one line that says so, not a TLS dump.
    @Test func tlsAgainstAPlainHTTPServerSaysSoInOneLine() async throws {
      try await withMotoServer { moto in
        try await withTemporaryDirectory { dir in
          let list = try await LifeboatCLI.run(
            ["snapshot", "list", "--snapshot-dir", dir.path, "--s3", "--s3-endpoint", "127.0.0.1:\(moto.port)", "--bucket-name", "snaps",
             "--access-key", "lifeboat-test", "--secret-key", "lifeboat-test-secret"], environment: Self.noProxyVariables)
          #expect(list.status == 6, "\(list.stderr)")
          #expect(list.stderr.contains("speaks plain HTTP, not HTTPS: use --s3-endpoint http://127.0.0.1:\(moto.port) with --s3-insecure-http"), "\(list.stderr)")
          #expect(list.stderr.split(separator: "\n").count <= 2, "the source line and one error line: \(list.stderr)")
        }
      }
    }
  }
}
