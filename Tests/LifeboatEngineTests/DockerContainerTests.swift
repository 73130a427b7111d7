import Foundation
import LifeboatCore
import LifeboatEngine
import Testing

/// What the docker runtime reads from `docker inspect etcd` of an RKE node (rke-compat.md, "The
/// etcd container exactly"), and what it concludes.
@Suite struct DockerContainerTests {
  /// An RKE node's container as the Engine API shows it (fields Lifeboat does not read omitted).
  static func rkeContainer(quota: String? = nil, dataBind: String = "/var/lib/etcd:/var/lib/rancher/etcd/:z") throws -> DockerContainer {
    var args = [
      "--client-cert-auth", "--peer-client-cert-auth", "--initial-cluster-token=etcd-cluster-1",
      "--data-dir=/var/lib/rancher/etcd/", "--name=etcd-cp-1", "--initial-advertise-peer-urls=https://10.0.0.1:2380",
      "--listen-client-urls=https://0.0.0.0:2379", "--advertise-client-urls=https://10.0.0.1:2379,https://10.0.0.1:4001",
      "--cert-file", "/etc/kubernetes/ssl/kube-etcd-10-0-0-1.pem",
    ]
    if let quota { args.append("--quota-backend-bytes=\(quota)") }
    let parts = dataBind.split(separator: ":").map(String.init)
    let json: [String: Any] = [
      "Id": "4f3c2b1a", "Name": "/etcd", "Path": "/usr/local/bin/etcd", "Args": args,
      "State": ["Running": true, "Pid": 4242, "Status": "running", "ExitCode": 0],
      "Config": ["Image": "rancher/mirrored-coreos-etcd:v3.5.9", "Env": ["ETCDCTL_API=3"], "Labels": ["io.rancher.rke.container.name": "etcd"]],
      "HostConfig": ["NetworkMode": "host", "RestartPolicy": ["Name": "always"], "Binds": [dataBind, "/etc/kubernetes:/etc/kubernetes:z"]],
      "Mounts": [
        ["Type": "bind", "Source": parts[0], "Destination": parts[1], "RW": true],
        ["Type": "bind", "Source": "/etc/kubernetes", "Destination": "/etc/kubernetes", "RW": true],
      ],
    ]
    return try JSONDecoder().decode(DockerContainer.self, from: JSONSerialization.data(withJSONObject: json))
  }

  /// The config's view of the same node (RKE's defaults).
  static var node: EtcdNode {
    try! ClusterConfig.parse("nodes:\n  - address: 10.0.0.1\n    hostname_override: cp-1\n    role: [etcd]\n", path: "cluster.yml")
      .etcdNodes[0]
  }

  @Test func theContainersFlagsAndBindsGiveTheHostDataDirAndCertificates() throws {
    let container = try Self.rkeContainer()
    let flags = container.etcdFlags
    #expect(flags["name"] == "etcd-cp-1")
    #expect(flags["client-cert-auth"] == "true")
    #expect(flags["cert-file"] == "/etc/kubernetes/ssl/kube-etcd-10-0-0-1.pem", "the `--flag value` form too")
    #expect(container.hostDataDir == "/var/lib/etcd")
    #expect(container.hostPath(of: "/etc/kubernetes/ssl/kube-ca.pem") == "/etc/kubernetes/ssl/kube-ca.pem")
    #expect(container.hostPath(of: "/var/lib/rancher/etcd/member/snap/db") == "/var/lib/etcd/member/snap/db")
    #expect(container.hostPath(of: "/var/lib/rancher/etcdX") == nil, "a prefix of a name is not a parent directory")
    #expect(container.hostPath(of: "/usr/local/bin/etcd") == nil)
  }

  @Test func aContainerThatAgreesWithTheConfigHasNoProblems() throws {
    #expect(DockerRuntime.mismatches(try Self.rkeContainer(), node: Self.node, token: "etcd-cluster-1").isEmpty)
  }

  @Test func eachDisagreementNamesBothValues() throws {
    var node = Self.node
    node.dataDir = "/data/etcd"
    node.memberName = "etcd-other"
    node.peerURL = "https://10.0.0.9:2380"
    node.clientURL = "https://10.0.0.9:2379"
    let problems = DockerRuntime.mismatches(try Self.rkeContainer(), node: node, token: "another-token")
    #expect(problems.count == 5, "\(problems)")
    #expect(problems.contains("the container's client URLs are https://10.0.0.1:2379,https://10.0.0.1:4001, the config says https://10.0.0.9:2379"))
    #expect(problems.contains("the container's data dir is /var/lib/etcd on the host, the config says /data/etcd"))
    #expect(problems.contains("the container's member name is etcd-cp-1, the config says etcd-other"))
    #expect(problems.contains("the container's peer URL is https://10.0.0.1:2380, the config says https://10.0.0.9:2380"))
    #expect(problems.contains("the container's cluster token is etcd-cluster-1, a restore uses another-token"))
    let unbound = try Self.rkeContainer(dataBind: "/srv/x:/srv/x")
    #expect(DockerRuntime.mismatches(unbound, node: Self.node, token: "etcd-cluster-1").first?.contains("binds no host directory") == true)
  }

  @Test func aDbLargerThanTheContainersQuotaIsRefused() throws {
    let small = try Self.rkeContainer(quota: "1048576")
    let problem = DockerRuntime.quotaProblem(small, dbSize: 2 << 20, container: "etcd")
    #expect(problem?.contains("larger than the backend quota of container etcd (1048576 bytes)") == true, "\(problem ?? "")")
    #expect(DockerRuntime.quotaProblem(small, dbSize: 1 << 20, container: "etcd") == nil)
    // No flag: etcd's default of 2 GiB.
    let unset = try Self.rkeContainer()
    #expect(DockerRuntime.quotaProblem(unset, dbSize: 3 << 30, container: "etcd")?.contains("etcd's default") == true)
    #expect(DockerRuntime.quotaProblem(unset, dbSize: 1 << 30, container: "etcd") == nil)
    // Garbage in the flag is no quota at all: the default applies.
    #expect(DockerRuntime.quotaProblem(try Self.rkeContainer(quota: "-5"), dbSize: 1 << 30, container: "etcd") == nil)
  }

  @Test func engineAddressesMustBeShortAbsoluteUnixSockets() {
    #expect(throws: LifeboatError.self) { try DockerEngine(host: "tcp://127.0.0.1:2375") }
    #expect(throws: LifeboatError.self) { try DockerEngine(host: "unix://run/docker.sock") }
    #expect(throws: LifeboatError.self) { try DockerEngine(host: "unix:///" + String(repeating: "x", count: 110)) }
    #expect((try? DockerEngine(host: "unix:///var/run/docker.sock")) != nil)
  }

  @Test func containerOutputFramesAreDemultiplexed() {
    func frame(_ stream: UInt8, _ text: String) -> [UInt8] {
      let bytes = Array(text.utf8)
      let n = UInt32(bytes.count)
      return [stream, 0, 0, 0, UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + bytes
    }
    let joined = DockerEngine.demultiplex(frame(1, "restored\n") + frame(2, "Error: bad snapshot\n") + [1, 0, 0])
    #expect(String(decoding: joined, as: UTF8.self) == "restored\nError: bad snapshot\n")
  }
}
