import Foundation
import LifeboatEngine
import TestSupport
import Testing

extension Integration {
  @Suite struct LocalClusterTests {
    @Test func upEnvDownWithTLS() async throws {
      try await withTemporaryDirectory { dir in
        let clusterDir = dir.file("local")
        let up = try await LifeboatCLI.run(["local", "up", "--nodes", "2", "--tls", "--dir", clusterDir])
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stdout.contains("--cacert"))
        let state = try LocalClusterState.load(from: clusterDir)
        let pids = state.members.compactMap(\.pid)
        #expect(pids.count == 2)
        #expect(pids.allSatisfy(DetachedProcess.isRunning))
        #expect(state.members.map(\.address) == ["127.0.0.11", "127.0.0.12"])

        let again = try await LifeboatCLI.run(["local", "up", "--dir", clusterDir])
        #expect(again.status == 2)
        #expect(again.stderr.contains("already up"))

        let env = try await LifeboatCLI.run(["local", "env", "--dir", clusterDir])
        #expect(env.stdout.contains("export ETCDCTL_ENDPOINTS=https://127.0.0.11:"))
        #expect(env.stdout.contains("export ETCDCTL_CACERT=\(clusterDir)/tls/kube-ca.pem"))
        // etcdctl works with exactly those settings.
        var environment: [String: String] = [:]
        for line in env.stdout.split(separator: "\n") {
          let pair = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1)
          environment[String(pair[0])] = String(pair[1])
        }
        let put = try await ProcessRunner.run(ProcessRunner.which("etcdctl")!, ["put", "/hello", "world"], environment: environment)
        #expect(put.status == 0, "\(put.stderr)")

        let down = try await LifeboatCLI.run(["local", "down", "--dir", clusterDir])
        #expect(down.status == 0, "\(down.stderr)")
        #expect(down.stdout.contains("etcd-node1"))
        for pid in pids { #expect(!DetachedProcess.isRunning(pid)) }
        let purge = try await LifeboatCLI.run(["local", "down", "--purge", "--dir", clusterDir])
        #expect(purge.status == 0)
        #expect(!FileManager.default.fileExists(atPath: clusterDir))
      }
    }
  }
}
