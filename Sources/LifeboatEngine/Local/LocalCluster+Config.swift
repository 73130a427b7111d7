import Foundation
import LifeboatCore

/// The `cluster.yml` that `lifeboat local up` writes for its members.
extension LocalCluster {
  /// RKE's keys for the nodes and backups, and the `lifeboat:` section for everything local.
  static func clusterYAML(_ state: LocalClusterState, spec: LocalClusterSpec, etcd: String) -> String {
    var lines = [
      "# Written by `lifeboat local up`: RKE's cluster.yml keys, plus Lifeboat's own `lifeboat:` section.",
      "nodes:",
    ]
    for m in state.members {
      lines += ["  - address: \(m.address)", "    hostname_override: \(m.node)", "    role: [controlplane, etcd, worker]"]
    }
    lines += ["services:", "  etcd:", "    backup_config:", "      enabled: true", "      interval_hours: 12", "      retention: 6"]
    if let s3 = spec.s3 {
      lines += ["      s3backupconfig:", "        bucket_name: \(quote(s3.bucketName))", "        endpoint: \(quote(s3.endpoint))"]
      if let v = s3.accessKey { lines.append("        access_key: \(quote(v))") }
      if let v = s3.secretKey { lines.append("        secret_key: \(quote(v))") }
      if let v = s3.region { lines.append("        region: \(quote(v))") }
      if let v = s3.folder { lines.append("        folder: \(quote(v))") }
      if let v = s3.customCA {
        lines.append("        custom_ca: |-")
        lines += v.split(whereSeparator: \.isNewline).map { "          " + $0 }
      }
    }
    lines += [
      "lifeboat:",
      "  etcd_tls: \(state.tls)",
      "  health_timeout: 60",
      "  runtime:",
    ]
    if state.runtime == .docker {
      lines.append("    type: docker")
    } else {
      lines += ["    type: supervised", "    etcd: \(quote(etcd))"]
      if let quota = spec.quotaBackendBytes { lines.append("    extra_args: [\"--quota-backend-bytes=\(quota)\"]") }
    }
    if spec.s3InsecureHTTP { lines.append("  s3_insecure_http: true") }
    if let proxy = spec.s3Proxy { lines += ["  s3:", "    proxy: \(quote(proxy))"] }
    lines += spec.lifeboatSettings.map { "  " + $0 }
    if !spec.postRestoreHooks.isEmpty {
      lines.append("  post_restore_hooks:")
      for hook in spec.postRestoreHooks { lines.append("    - \(quote(hook))") }
    }
    lines.append("  nodes:")
    for m in state.members {
      lines += [
        "    \(m.address):",
        "      client_port: \(m.clientPort)",
        "      peer_port: \(m.peerPort)",
        "      agent_port: \(m.agentPort ?? 0)",
        "      data_dir: \(quote(m.dataDir))",
        "      snapshot_dir: \(quote(m.snapshotDir ?? ""))",
        "      run_dir: \(quote(m.runDir))",
      ]
      if let host = m.dockerHost { lines.append("      docker_host: \(quote(host))") }
    }
    return lines.joined(separator: "\n") + "\n"
  }

  static func quote(_ s: String) -> String {
    "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
  }
}
