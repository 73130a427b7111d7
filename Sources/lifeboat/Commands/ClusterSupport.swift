import ArgumentParser
import Foundation
import LifeboatAgent
import LifeboatCore
import LifeboatEngine

/// `--config cluster.yml`: RKE's cluster file (its state file next to it holds the certificates).
struct ClusterConfigOption: ParsableArguments {
  @Option(help: "RKE's cluster.yml (the state file cluster.rkestate is read from next to it).")
  var config: String
}

extension ClusterContext {
  /// Runs `body` with one RemoteNode per etcd node, talking to the agents as `kube-admin`.
  func withRemoteNodes<R>(_ body: ([any Node]) async throws(LifeboatError) -> R) async throws(LifeboatError) -> R {
    guard let state else { throw .usage("no state file at \(config.stateFilePath): the agents' certificates are in it") }
    return try await AgentClient.with(state: state, certificate: "kube-admin") { (client) async throws(LifeboatError) in
      try await body(config.etcdNodes.map { RemoteNode(node: $0, client: client) })
    }
  }
}

/// Progress lines on stderr, so stdout stays for results; each with the seconds since the
/// command started, so a slow step shows.
func progressLine(_ line: String) {
  let elapsed = ContinuousClock.now - ProgressClock.start
  let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
  FileHandle.standardError.write(Data((String(format: "  [%6.1fs] ", seconds) + line + "\n").utf8))
}

enum ProgressClock {
  static let start = ContinuousClock.now
}
