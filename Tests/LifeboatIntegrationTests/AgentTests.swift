import AsyncHTTPClient
import EtcdClient
import Foundation
import LifeboatAgent
import LifeboatCore
import LifeboatEngine
import NIOSSL
import TestSupport
import Testing

extension Integration {
  /// The agent over real TLS, and the `Node` conformance suite against both implementations.
  @Suite struct AgentTests {
    @Test func localNodePassesTheNodeConformanceSuite() async throws {
      try await withAgentCluster(nodes: 1) { cluster in
        let context = try cluster.context()
        let own = context.config.etcdNodes[0]
        let peers = try AgentClient(state: context.state!, certificate: own.certificateName)
        try await withCleanup({
          try await NodeConformance.run(LocalNode(context: context, node: own, peers: peers), cluster: cluster)
        }, cleanup: { await peers.shutdown() })
      }
    }

    @Test func remoteNodePassesTheNodeConformanceSuite() async throws {
      try await withAgentCluster(nodes: 1) { cluster in
        let context = try cluster.context()
        let client = try AgentClient(state: context.state!, certificate: "kube-admin")
        try await withCleanup({
          try await NodeConformance.run(RemoteNode(node: context.config.etcdNodes[0], client: client), cluster: cluster)
        }, cleanup: { await client.shutdown() })
      }
    }

    @Test func onlyKubeEtcdAndKubeAdminCertificatesMayCallAnAgent() async throws {
      try await withAgentCluster(nodes: 1) { cluster in
        let context = try cluster.context()
        let state = context.state!
        let node = context.config.etcdNodes[0]

        func health(_ tls: TLSConfiguration) async -> Result<NodeHealth, LifeboatError> {
          let client = AgentClient(tls: tls)
          defer { Task { await client.shutdown() } }
          do throws(LifeboatError) { return .success(try await RemoteNode(node: node, client: client).health()) } catch {
            return .failure(error)
          }
        }

        // The operator and a peer are served.
        for name in ["kube-admin", node.certificateName] {
          let answer = await health(try AgentTLS.client(state: state, certificate: name))
          #expect((try? answer.get())?.member == "etcd-node1", "\(name): \(answer)")
        }
        // A worker's certificate from the same CA is refused by name.
        let worker = await health(try AgentTLS.client(state: state, certificate: "kube-node"))
        guard case .failure(let refused) = worker else { Issue.record("kube-node was served"); return }
        #expect(refused.message.contains("forbidden"))
        #expect(refused.message.contains("kube-node"))
        // No client certificate at all: the TLS handshake fails.
        var anonymous = try AgentTLS.client(state: state, certificate: "kube-admin")
        anonymous.certificateChain = []
        anonymous.privateKey = nil
        guard case .failure(let noCert) = await health(anonymous) else { Issue.record("served without a certificate"); return }
        #expect(noCert.kind == .unavailable)
        // A kube-admin certificate from another CA: refused too.
        let foreign = try CertificateAuthority(commonName: "kube-ca")
        let impostor = try foreign.issue(commonName: "kube-admin")
        var other = try AgentTLS.client(state: state, certificate: "kube-admin")
        other.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(impostor.certificatePEM.utf8)).map { .certificate($0) }
        other.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(impostor.keyPEM.utf8), format: .pem))
        guard case .failure = await health(other) else { Issue.record("a foreign CA's kube-admin was served"); return }

        // Path traversal in names and ids is refused with 400, nothing served.
        try await withAgentHTTPClient(state: state, certificate: "kube-admin") { http in
          for path in [
            "/v1/snapshots/..%2F..%2F..%2Fetc%2Fpasswd/archive", "/v1/snapshots/..%2Fcluster.rkestate/manifest",
            "/v1/restore/..%2F..%2Fetc/archive", "/v1/snapshots/%2Fetc%2Fpasswd/archive",
          ] {
            let response = try await http.execute(HTTPClientRequest(url: node.agentURL + path), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            #expect(response.status.code == 400 || response.status.code == 404, "\(path): \(response.status)")
            #expect(!String(buffer: body).contains("BEGIN"), "no file content leaks")
          }
        }

        // A peer's certificate reads, but cannot stop etcd or obtain a restore's state file.
        try await withAgentHTTPClient(state: state, certificate: node.certificateName) { peer in
          var stop = HTTPClientRequest(url: node.agentURL + "/v1/etcd/stop")
          stop.method = .POST
          let refused = try await peer.execute(stop, timeout: .seconds(10))
          #expect(refused.status.code == 403)
          // The archive's state file comes back only with a fetch, which only the operator may ask for.
          var fetch = HTTPClientRequest(url: node.agentURL + "/v1/restore/x/fetch")
          fetch.method = .POST
          let stateFile = try await peer.execute(fetch, timeout: .seconds(10))
          #expect(stateFile.status.code == 403)
          let list = try await peer.execute(HTTPClientRequest(url: node.agentURL + "/v1/snapshots"), timeout: .seconds(10))
          #expect(list.status.code == 200)
        }
        #expect(cluster.currentPID(of: 0).map(DetachedProcess.isRunning) == true, "etcd still runs")
      }
    }

    /// Found by a review: a second agent on a node whose port is taken said NIO's
    /// "bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)".
    @Test func aSecondAgentOnTheSamePortSaysWhichAddressIsTaken() async throws {
      try await withAgentCluster(nodes: 1) { cluster in
        let member = cluster.members[0]
        let port = try #require(member.agentPort)
        let second = try await LifeboatCLI.run(["agent", "--config", cluster.configFile, "--node", member.address])
        #expect(second.status == 5, "\(second.stderr)")
        #expect(
          second.stderr.contains("lifeboat: error: cannot listen on \(member.address):\(port): the port is in use (another agent?)"),
          "\(second.stderr)")
      }
    }

    /// `lifeboat.compression` decides how the agents compress; `--compression` overrides it.
    @Test func theConfigsCompressionIsTheAgentsDefault() async throws {
      try await withAgentCluster(configure: { spec in spec.lifeboatSettings = ["compression: best"] }) { cluster in
        _ = try await writeKeys(cluster, count: 500, size: 2048)
        for (name, flags, expected) in [("by-config", [String](), Compression.best), ("by-flag", ["--compression", "none"], .none)] {
          let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", name] + flags)
          #expect(save.status == 0, "\(save.stderr)")
          for member in cluster.members {
            let dir = member.snapshotDir!
            let manifest = try Manifest.decode(
              [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name).manifest.json"))), path: "m")
            #expect(manifest.compression == expected, "\(name) on \(member.address)")
            let unzip = try await ProcessRunner.run("/usr/bin/unzip", ["-tq", "\(dir)/\(name).zip"])
            #expect(unzip.status == 0, "\(unzip.stdout)")
          }
        }
      }
    }

    @Test func snapshotsAreServedWithRanges() async throws {
      try await withAgentCluster(nodes: 1) { cluster in
        let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "ranges"])
        #expect(save.status == 0, "\(save.stderr)")
        let context = try cluster.context()
        let node = context.config.etcdNodes[0]
        let file = try Data(contentsOf: URL(fileURLWithPath: cluster.members[0].snapshotDir! + "/ranges.zip"))
        try await withAgentHTTPClient(state: context.state!, certificate: "kube-admin") { http in
          func get(_ range: String?) async throws -> (Int, String?, Data) {
            var request = HTTPClientRequest(url: node.agentURL + "/v1/snapshots/ranges/archive")
            if let range { request.headers.add(name: "Range", value: range) }
            let response = try await http.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 64 << 20)
            return (Int(response.status.code), response.headers.first(name: "Content-Range"), Data(body.readableBytesView))
          }
          let size = file.count
          let all = try await get(nil)
          #expect(all.0 == 200 && all.2 == file)
          let middle = try await get("bytes=10-99")
          #expect(middle.0 == 206 && middle.1 == "bytes 10-99/\(size)" && middle.2 == file[10..<100])
          let tail = try await get("bytes=100-")
          #expect(tail.0 == 206 && tail.2 == file[100...])
          let suffix = try await get("bytes=-32")
          #expect(suffix.0 == 206 && suffix.2 == file[(size - 32)...])
          #expect(try await get("bytes=\(size)-").0 == 416)
          #expect(try await get("bytes=50-10").0 == 416)
          #expect(try await get("bytes=0-1,5-6").0 == 200, "several ranges: the whole file")
        }
      }
    }

    @Test func anAgentStopsGracefullyOnSIGTERM() async throws {
      try await withAgentCluster(nodes: 1) { cluster in
        let state = try LocalClusterState.load(from: parentDirectory(of: cluster.configFile))
        let pid = try #require(state.members[0].agentPid)
        #expect(DetachedProcess.isRunning(pid))
        kill(pid, SIGTERM)
        var gone = false
        for _ in 0..<100 {
          if !DetachedProcess.isRunning(pid) { gone = true; break }
          try await Task.sleep(for: .milliseconds(100))
        }
        #expect(gone)
        let log = try String(contentsOfFile: state.members[0].runDir + "/agent.log", encoding: .utf8)
        #expect(log.contains("agent stopped"))
        #expect(log.contains("stopping on SIGTERM") && !log.contains("Ctrl-C"), "a service is not stopped from a keyboard: \(log)")
        // A normal stop is no error: the schedules stop, then the server drains (it was cancelled
        // while draining, and logged "Waiting on child channel: CancellationError()" as an error).
        let errors = log.split(separator: "\n").filter { $0.split(separator: " ").dropFirst().first == "error" }
        #expect(errors.isEmpty, "\(errors)")
        // etcd keeps running without its agent.
        #expect(cluster.currentPID(of: 0).map(DetachedProcess.isRunning) == true)
      }
    }
  }
}
