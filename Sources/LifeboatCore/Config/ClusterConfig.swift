import Foundation

/// RKE's `cluster.yml`, as far as Lifeboat uses it, plus Lifeboat's own optional `lifeboat:`
/// section. Keys Lifeboat does not read are ignored (real RKE files carry many); keys it reads are
/// type-checked, with errors naming the file, line and key; the `lifeboat:` section is strict.
///
/// ```yaml
/// nodes:
///   - address: 10.0.0.1
///     internal_address: 10.0.0.1      # etcd URLs use it when set
///     hostname_override: node1        # member name etcd-<hostname_override or address>
///     role: [controlplane, etcd, worker]
/// services:
///   etcd:
///     backup_config: { interval_hours: 12, retention: 6, s3backupconfig: {...} }
/// lifeboat:                           # optional; every key has a default (see LifeboatSettings)
///   agent_port: 2382
/// ```
public struct ClusterConfig: Sendable, Equatable {
  /// Every node in the file, in file order.
  public var nodes: [NodeEntry]
  public var backup: BackupConfig
  public var lifeboat: LifeboatSettings
  /// RKE's `cluster_name` (default `local`): names Lifeboat's lock in etcd.
  public var clusterName: String = "local"
  /// Where the file was read from (for the state file next to it and for messages).
  public var path: String

  public struct NodeEntry: Sendable, Equatable {
    public var address: String
    public var internalAddress: String?
    public var hostnameOverride: String?
    public var roles: [String]

    public var isEtcd: Bool { roles.contains("etcd") }
  }

  /// The etcd nodes, resolved with Lifeboat's settings: what every other component uses.
  public var etcdNodes: [EtcdNode] {
    nodes.filter(\.isEtcd).map { entry in
      let override = lifeboat.nodes[entry.address] ?? .init()
      let host = entry.internalAddress ?? entry.address
      let scheme = lifeboat.etcdTLS ? "https" : "http"
      let clientPort = override.clientPort ?? lifeboat.clientPort
      let peerPort = override.peerPort ?? lifeboat.peerPort
      return EtcdNode(
        address: entry.address,
        memberName: "etcd-" + (entry.hostnameOverride?.lowercased() ?? entry.address),
        clientURL: "\(scheme)://\(Self.hostForURL(host)):\(clientPort)",
        peerURL: "\(scheme)://\(Self.hostForURL(host)):\(peerPort)",
        agentURL: "https://\(Self.hostForURL(entry.address)):\(override.agentPort ?? lifeboat.agentPort)",
        agentPort: override.agentPort ?? lifeboat.agentPort,
        snapshotDir: override.snapshotDir ?? lifeboat.snapshotDir,
        dataDir: override.dataDir ?? lifeboat.dataDir,
        dataDirStated: override.dataDir != nil || lifeboat.dataDirStated,
        runDir: override.runDir ?? lifeboat.runDir,
        certificateName: "kube-etcd-" + host.replacingOccurrences(of: ".", with: "-").replacingOccurrences(of: ":", with: "-"))
    }
  }

  /// When recurring snapshots run: `lifeboat.schedule` (cron), else `lifeboat.interval_seconds`,
  /// else `backup_config.interval_hours`.
  public var recurringSchedule: Schedule {
    if let cron = lifeboat.schedule { return .cron(cron, lifeboat.timezone) }
    if let seconds = lifeboat.intervalSeconds { return .interval(TimeInterval(seconds)) }
    return .interval(TimeInterval(backup.intervalHours) * 3600)
  }

  /// When the agents drill the newest snapshot (`lifeboat.drill`); nil: no scheduled drills.
  public var drillSchedule: Schedule? {
    guard let drill = lifeboat.drill else { return nil }
    if let cron = drill.schedule { return .cron(cron, lifeboat.timezone) }
    return drill.intervalSeconds.map { .interval(TimeInterval($0)) }
  }

  /// Where a node's scheduled drills put their scratch directories.
  public func drillScratchDir(_ node: EtcdNode) -> String { lifeboat.drill?.scratchDir ?? node.runDir + "/drills" }

  /// Which snapshots `prune` keeps: the `keep_*` counts when set, else RKE's
  /// `retention × interval_hours`.
  public var retentionPolicy: RetentionPolicy {
    let counts = RetentionPolicy(
      keepLast: lifeboat.keepLast, keepHourly: lifeboat.keepHourly, keepDaily: lifeboat.keepDaily, keepWeekly: lifeboat.keepWeekly)
    if counts.countsBased { return counts }
    return .rke(retention: backup.retention, intervalHours: backup.intervalHours)
  }

  /// The bucket's own policy (`lifeboat.s3_keep_last/_hourly/_daily/_weekly`), or nil when the
  /// bucket follows the nodes' (`retentionPolicy`, the default).
  public var s3RetentionPolicy: RetentionPolicy? {
    let counts = RetentionPolicy(
      keepLast: lifeboat.s3KeepLast, keepHourly: lifeboat.s3KeepHourly, keepDaily: lifeboat.s3KeepDaily,
      keepWeekly: lifeboat.s3KeepWeekly)
    return counts.countsBased ? counts : nil
  }

  /// `etcd-node1=https://10.0.0.1:2380,...`: every etcd member, for `--initial-cluster`.
  public var initialCluster: String { etcdNodes.map { "\($0.memberName)=\($0.peerURL)" }.joined(separator: ",") }

  /// RKE's initial cluster token.
  public static let clusterToken = "etcd-cluster-1"

  /// The node whose address (or internal address, or hostname override) is `name`.
  public func etcdNode(_ name: String) throws(LifeboatError) -> EtcdNode {
    let matches = etcdNodes.filter { node in
      node.address == name || node.memberName == name || node.memberName == "etcd-" + name.lowercased()
        || nodes.first { $0.address == node.address }?.internalAddress == name
    }
    guard let node = matches.first else {
      throw .usage("\(path): no etcd node \(name) (etcd nodes: \(etcdNodes.map(\.address).joined(separator: ", ")))")
    }
    return node
  }

  /// The state file RKE keeps next to the cluster file (`cluster.yml` -> `cluster.rkestate`),
  /// or `lifeboat.state_file`.
  public var stateFilePath: String {
    if let file = lifeboat.stateFile { return Self.resolve(file, relativeTo: path) }
    let url = URL(fileURLWithPath: path)
    return url.deletingPathExtension().appendingPathExtension("rkestate").path
  }

  static func hostForURL(_ host: String) -> String { host.contains(":") ? "[\(host)]" : host }

  static func resolve(_ file: String, relativeTo config: String) -> String {
    if file.hasPrefix("/") { return file }
    return URL(fileURLWithPath: config).deletingLastPathComponent().appendingPathComponent(file).path
  }
}

/// One etcd node, everything resolved.
public struct EtcdNode: Sendable, Equatable, Codable {
  /// The address in `cluster.yml`: how the operator and the agents name the node.
  public var address: String
  /// `etcd-<hostname_override or address>`.
  public var memberName: String
  public var clientURL: String
  public var peerURL: String
  /// The node's agent, always HTTPS with mutual TLS.
  public var agentURL: String
  public var agentPort: Int
  public var snapshotDir: String
  public var dataDir: String
  /// Whether cluster.yml states the data dir (else it is RKE's default, and the docker runtime's
  /// agent takes the one its container really binds).
  public var dataDirStated: Bool?
  /// Where the agent keeps its own files (supervised etcd's PID file and log, restore staging).
  public var runDir: String
  /// The node's certificate in the state file's bundle, `kube-etcd-<ip with - for .>`.
  public var certificateName: String
}

/// `services.etcd.backup_config` (and the legacy `snapshot`/`creation`/`retention`).
public struct BackupConfig: Sendable, Equatable {
  public var enabled = true
  public var intervalHours = 12
  public var retention = 6
  public var safeTimestamp = false
  public var timeoutSeconds = 300
  public var s3: S3BackupConfig?
}

/// `services.etcd.backup_config.s3backupconfig` (one word, as RKE spells it).
public struct S3BackupConfig: Sendable, Equatable {
  public var accessKey: String?
  public var secretKey: String?
  public var bucketName: String
  public var region: String?
  public var endpoint: String
  public var customCA: String?
  public var folder: String?

  public init(
    accessKey: String?, secretKey: String?, bucketName: String, region: String?, endpoint: String, customCA: String? = nil,
    folder: String?
  ) {
    self.accessKey = accessKey
    self.secretKey = secretKey
    self.bucketName = bucketName
    self.region = region
    self.endpoint = endpoint
    self.customCA = customCA
    self.folder = folder
  }
}

/// `lifeboat.s3`: Lifeboat's S3 settings beside RKE's `s3backupconfig`. The keys themselves come
/// from `s3backupconfig` or, without them, from the AWS credential chain of the process.
public struct LifeboatS3Settings: Sendable, Equatable {
  /// HTTP proxy URL, or `none` to ignore `HTTPS_PROXY`/`HTTP_PROXY`. Default: the environment's.
  public var proxy: String?
  /// Server-side encryption of written objects: `AES256` or `aws:kms` (with `sse_kms_key_id`).
  public var sse: String?
  public var sseKMSKeyID: String?
  /// SSE-C: a file on each node holding the 256-bit key (HTTPS endpoints only).
  public var sseCustomerKeyFile: String?
  /// Object Lock on every object written: `GOVERNANCE` or `COMPLIANCE`, for `object_lock_days`
  /// days (a number, or `prune`: until RKE's retention × interval_hours would prune it).
  public var objectLockMode: String?
  public var objectLockDays: String?
  /// `crc32c` (default) or `off`.
  public var checksum: String?

  public init() {}
}

/// The strict `lifeboat:` section: Lifeboat-only settings, every one with a default.
public struct LifeboatSettings: Sendable, Equatable {
  /// Port of the node agents (HTTPS, mutual TLS). Default 2382.
  public var agentPort = 2382
  public var clientPort = 2379
  public var peerPort = 2380
  /// etcd serves TLS (RKE always does). Default true.
  public var etcdTLS = true
  /// RKE's snapshot directory. Default `/opt/rke/etcd-snapshots`.
  public var snapshotDir = "/opt/rke/etcd-snapshots"
  /// The member's data directory on the host. Default `/var/lib/etcd` (RKE binds it into the
  /// container as `/var/lib/rancher/etcd`).
  public var dataDir = "/var/lib/etcd"
  /// Whether `data_dir` was given.
  public var dataDirStated = false
  /// The agent's own directory. Default `/var/lib/lifeboat`.
  public var runDir = "/var/lib/lifeboat"
  /// The state file; default: next to cluster.yml with the extension `.rkestate`.
  public var stateFile: String?
  /// The node's certificates, read when there is no state file (an agent on an RKE node needs
  /// only `kube-ca.pem` and the `kube-etcd-*` files RKE put there). Default `/etc/kubernetes/ssl`.
  public var certDir = "/etc/kubernetes/ssl"
  /// Whether `cert_dir` was given (else the docker runtime's agent reads it from its container).
  public var certDirStated = false
  /// How etcd is stopped, started and restored on the nodes.
  public var runtime = RuntimeSettings()
  /// Common names allowed to call the agents besides `kube-etcd` and `kube-admin`.
  public var allowedClients: [String] = []
  /// Shell commands run on the operator's host after a good restore, in order.
  public var postRestoreHooks: [String] = []
  /// Allow an `http://` S3 endpoint in `s3backupconfig` (RKE allows only HTTPS). Default false.
  public var s3InsecureHTTP = false
  /// `lifeboat.compression`: how the agents' snapshots (recurring and `save --config`) compress
  /// the db: `fast` (default), `best` (about 17% smaller for about 4x the CPU) or `none`.
  public var compression = Compression.fast
  /// `lifeboat.s3`: how the agents and the CLI reach the bucket of `s3backupconfig`.
  public var s3 = LifeboatS3Settings()
  /// `lifeboat.encryption.age_recipients`: the S3 copies of snapshots are encrypted to these
  /// age recipients (`<name>.zip.age`); local copies stay plain RKE archives. Default: none.
  public var ageRecipients: [AgeRecipient] = []
  /// `lifeboat.encryption.encrypt_local`: the nodes' copies are encrypted too (`<name>.zip.age`,
  /// the same bytes as the bucket's). Agents then cannot read them: no scheduled drills, and a
  /// restore needs `--age-identity`. Default false.
  public var encryptLocal = false

  /// What this config encrypts, to whom, in one line (recipients are public); nil: nothing.
  public var encryptionSummary: String? {
    guard !ageRecipients.isEmpty else { return nil }
    return "age to " + ageRecipients.map(\.description).joined(separator: ", ")
      + (encryptLocal ? " (S3 and local copies)" : " (S3 copies)")
  }
  /// How long a restored cluster may take to become healthy. Default 120 seconds.
  public var healthTimeoutSeconds = 120
  /// Per-node overrides, keyed by the node's address.
  public var nodes: [String: NodeOverride] = [:]
  /// Recurring snapshots at the times of this cron expression (instead of every
  /// `interval_hours`), in `timezone` (default UTC).
  public var schedule: CronExpression?
  public var timezone: TimeZone = TimeZone(identifier: "UTC")!
  /// Recurring snapshots every this many seconds (tests and short intervals).
  public var intervalSeconds: Int?
  /// Count-based retention (restic's): set any of them to replace RKE's age rule.
  public var keepLast: Int?
  /// The bucket's own retention counts (`s3_keep_*`); all nil: the bucket follows the nodes' policy.
  public var s3KeepLast: Int?
  public var s3KeepHourly: Int?
  public var s3KeepDaily: Int?
  public var s3KeepWeekly: Int?
  public var keepHourly: Int?
  public var keepDaily: Int?
  public var keepWeekly: Int?

  /// Scheduled restore drills (`lifeboat.drill`); nil: none.
  public var drill: DrillSettings?

  public struct NodeOverride: Sendable, Equatable {
    public var clientPort: Int?
    public var peerPort: Int?
    public var agentPort: Int?
    public var snapshotDir: String?
    public var dataDir: String?
    public var runDir: String?
    /// docker: this node's engine, when not `runtime.docker_host`.
    public var dockerHost: String?
    public init() {}
  }
}

/// Scheduled restore drills, run by one agent per slot (`lifeboat.drill`):
/// `{schedule: "<cron>" | interval_seconds: N, snapshot: latest, scratch_dir: DIR, timeout: S}`.
public struct DrillSettings: Sendable, Equatable {
  /// At the times of this cron expression (in `lifeboat.timezone`)...
  public var schedule: CronExpression?
  /// ... or every this many seconds (exactly one of the two).
  public var intervalSeconds: Int?
  /// Which snapshot: `latest`, the newest in the drilling node's snapshot directory (the only
  /// choice today).
  public var snapshot = "latest"
  /// Where the scratch directory goes; default `<run_dir>/drills` (on disk, unlike a tmpfs /tmp).
  public var scratchDir: String?
  /// The whole drill's time limit. Default 1800 seconds.
  public var timeoutSeconds = 1800
  public init() {}
}

/// How a node's etcd runs (`lifeboat.runtime`).
public struct RuntimeSettings: Sendable, Equatable {
  public enum Kind: String, Sendable, Equatable, CaseIterable {
    /// RKE's nodes: a Docker container named `etcd`; restore runs in a container of its image.
    case docker
    /// A systemd unit.
    case systemd
    /// The operator's own stop/start commands.
    case command
    /// Lifeboat starts etcd itself (detached, PID recorded in the node's run dir), with flags
    /// derived from the config: `lifeboat local up` and the tests.
    case supervised
  }
  public var kind: Kind = .docker
  /// docker: container name. Default `etcd`.
  public var container = "etcd"
  /// docker: the etcd image for the restore container; default: the running container's image.
  public var image: String?
  /// docker: the engine's socket, `unix:///var/run/docker.sock` by default (a node's
  /// `lifeboat.nodes.<address>.docker_host` wins).
  public var dockerHost = "unix:///var/run/docker.sock"
  /// systemd: unit name. Default `etcd`.
  public var unit = "etcd"
  /// command: shell commands.
  public var stopCommand: String?
  public var startCommand: String?
  /// supervised: the etcd binary. Default `etcd` from PATH.
  public var etcdBinary = "etcd"
  /// The restore tool on the host (systemd, command, supervised): default `etcdutl` if found,
  /// else `etcdctl`.
  public var restoreTool: String?
  /// supervised: extra etcd flags.
  public var extraArgs: [String] = []

  public init(kind: Kind = .docker, container: String = "etcd", image: String? = nil, unit: String = "etcd") {
    self.kind = kind
    self.container = container
    self.image = image
    self.unit = unit
  }
}
