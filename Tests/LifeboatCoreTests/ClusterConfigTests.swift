import Foundation
import LifeboatCore
import LifeboatEngine
import Testing

@Suite struct ClusterConfigTests {
  /// Shaped like a real RKE cluster.yml: many keys Lifeboat does not read.
  static let rke = """
    cluster_name: prod
    kubernetes_version: v1.27.16-rancher1-1
    ssh_key_path: ~/.ssh/id_rsa
    nodes:
      - address: 203.0.113.10
        internal_address: 10.0.0.1
        hostname_override: CP-1
        user: rancher
        role: [controlplane, etcd]
        labels: {zone: a}
      - address: 203.0.113.11
        internal_address: 10.0.0.2
        role:
          - etcd
      - address: 203.0.113.20
        role: [worker]
    services:
      kube-api:
        service_cluster_ip_range: 10.43.0.0/16
      etcd:
        image: rancher/mirrored-coreos-etcd:v3.5.9
        extra_args: {election-timeout: "5000"}
        backup_config:
          enabled: true
          interval_hours: 6
          retention: 12
          safe_timestamp: true
          s3backupconfig:
            access_key: AKIAEXAMPLE
            secret_key: "secret/with+chars"
            bucket_name: rke-backups
            region: eu-west-1
            endpoint: s3.eu-west-1.amazonaws.com
            folder: prod
    network:
      plugin: canal
    ingress:
      provider: nginx
    system_images:
      etcd: rancher/mirrored-coreos-etcd:v3.5.9
    """

  @Test func readsTheKeysThatMatterAndIgnoresTheRest() throws {
    let config = try ClusterConfig.parse(Self.rke, path: "/etc/rke/cluster.yml")
    #expect(config.nodes.count == 3)
    let etcd = config.etcdNodes
    #expect(etcd.map(\.address) == ["203.0.113.10", "203.0.113.11"], "workers are not etcd nodes")
    #expect(etcd[0].memberName == "etcd-cp-1", "hostname_override, lowercased")
    #expect(etcd[1].memberName == "etcd-203.0.113.11", "the address when there is no override")
    #expect(etcd[0].peerURL == "https://10.0.0.1:2380", "internal_address for etcd URLs")
    #expect(etcd[0].clientURL == "https://10.0.0.1:2379")
    #expect(etcd[0].agentURL == "https://203.0.113.10:2382")
    #expect(etcd[0].certificateName == "kube-etcd-10-0-0-1")
    #expect(config.initialCluster == "etcd-cp-1=https://10.0.0.1:2380,etcd-203.0.113.11=https://10.0.0.2:2380")
    #expect(config.backup.intervalHours == 6)
    #expect(config.backup.retention == 12)
    #expect(config.backup.safeTimestamp)
    #expect(config.backup.s3?.bucketName == "rke-backups")
    #expect(config.backup.s3?.secretKey == "secret/with+chars")
    #expect(config.backup.s3?.folder == "prod")
    // Lifeboat's defaults: RKE's node layout.
    #expect(config.lifeboat.runtime.kind == .docker)
    #expect(etcd[0].snapshotDir == "/opt/rke/etcd-snapshots")
    #expect(etcd[0].dataDir == "/var/lib/etcd")
    #expect(config.stateFilePath == "/etc/rke/cluster.rkestate")
  }

  @Test func aWrongTypeNamesTheFileLineAndKey() throws {
    let text = Self.rke.replacingOccurrences(of: "interval_hours: 6", with: "interval_hours: six")
    #expect {
      try ClusterConfig.parse(text, path: "/x/cluster.yml")
    } throws: { error in
      let message = (error as! LifeboatError).message
      return message.hasPrefix("cluster.yml:25: services.etcd.backup_config.interval_hours: expected an integer")
    }
  }

  @Test func theLifeboatSectionIsStrict() throws {
    let text = Self.rke + "\nlifeboat:\n  agent_prot: 9000\n"
    #expect {
      try ClusterConfig.parse(text, path: "cluster.yml")
    } throws: { error in
      let message = (error as! LifeboatError).message
      return message.contains("lifeboat.agent_prot: unknown key") && message.contains("cluster.yml:42")
    }
  }

  /// Settings that can only fail are refused where they are written, naming line and key.
  @Test(arguments: [
    ("\nlifeboat:\n  health_timeout: -5\n", "lifeboat.health_timeout: must be at least 1"),
    ("\nlifeboat:\n  health_timeout: 0\n", "lifeboat.health_timeout: must be at least 1"),
    ("\nlifeboat:\n  interval_seconds: 0\n", "lifeboat.interval_seconds: must be at least 1"),
    ("\nlifeboat:\n  client_port: 70000\n", "not a port number"),
    // Found by a hostile review: these crashed prune and the agent with an arithmetic overflow.
    ("\nlifeboat:\n  interval_seconds: 9223372036854775807\n", "lifeboat.interval_seconds: must be at most"),
    ("\nlifeboat:\n  keep_daily: 9223372036854775807\n", "lifeboat.keep_daily: must be at most"),
    ("\nlifeboat:\n  health_timeout: 9223372036854775807\n", "lifeboat.health_timeout: must be at most"),
    ("\nlifeboat:\n  drill: {snapshot: latest}\n", "lifeboat.drill: give the drill a schedule (cron) or interval_seconds"),
    ("\nlifeboat:\n  drill:\n", "drill: give it a schedule (cron) or interval_seconds"),
    ("\nlifeboat:\n  drill: {schedule: '0 3 * * *', interval_seconds: 60}\n", "give the drill a schedule (cron) or interval_seconds"),
    ("\nlifeboat:\n  drill: {interval_seconds: 60, snapshot: oldest}\n", "lifeboat.drill.snapshot: only 'latest'"),
    ("\nlifeboat:\n  drill: {schedule: '61 * * * *'}\n", "lifeboat.drill.schedule"),
  ])
  func settingsThatCanOnlyFailAreRefused(extra: String, expected: String) {
    #expect {
      try ClusterConfig.parse(Self.rke + extra, path: "cluster.yml")
    } throws: { error in
      let message = (error as! LifeboatError).message
      return message.contains(expected) && message.hasPrefix("cluster.yml:")
    }
  }

  @Test(arguments: [("interval_hours: 6", "interval_hours: 9223372036854775807"), ("retention: 12", "retention: 9223372036854775807")])
  func hugeBackupIntervalsAndRetentionsAreRefused(from: String, to: String) {
    let text = Self.rke.replacingOccurrences(of: from, with: to)
    #expect(text != Self.rke)
    #expect {
      try ClusterConfig.parse(text, path: "cluster.yml")
    } throws: { error in
      (error as! LifeboatError).message.contains("must be at most")
    }
  }

  /// A restore moves the data dir aside: a run dir or snapshot dir inside it would go with it
  /// (the journal first of all).
  @Test(arguments: [
    "run_dir: /var/lib/etcd", "snapshot_dir: /var/lib/etcd/snapshots", "drill: {interval_seconds: 60, scratch_dir: /var/lib/etcd/drills}",
  ])
  func directoriesInsideTheDataDirAreRefused(setting: String) {
    #expect {
      try ClusterConfig.parse(Self.rke + "\nlifeboat:\n  \(setting)\n", path: "cluster.yml")
    } throws: { error in
      let message = (error as! LifeboatError).message
      return message.contains("inside its data_dir /var/lib/etcd") && message.contains("10.0.0.1") == false
        && message.contains("203.0.113.10")
    }
  }

  @Test func twoNodesWithOneMemberNameAreRefused() {
    let text = Self.rke.replacingOccurrences(of: "    role:\n      - etcd", with: "    hostname_override: cp-1\n    role:\n      - etcd")
    #expect(text != Self.rke)
    #expect {
      try ClusterConfig.parse(text, path: "cluster.yml")
    } throws: { error in
      let message = (error as! LifeboatError).message
      return message.contains("etcd-cp-1") && message.contains("203.0.113.10") && message.contains("203.0.113.11")
    }
  }

  @Test func lifeboatSettingsAndPerNodeOverrides() throws {
    let text = Self.rke + """

      lifeboat:
        agent_port: 9443
        etcd_tls: false
        runtime: {type: systemd, unit: etcd-member}
        post_restore_hooks: ["kubectl get nodes"]
        nodes:
          203.0.113.11: {client_port: 12379, data_dir: /data/etcd}
      """
    let config = try ClusterConfig.parse(text, path: "cluster.yml")
    #expect(config.lifeboat.runtime.kind == .systemd)
    #expect(config.lifeboat.runtime.unit == "etcd-member")
    #expect(config.lifeboat.postRestoreHooks == ["kubectl get nodes"])
    #expect(config.etcdNodes[1].clientURL == "http://10.0.0.2:12379")
    #expect(config.etcdNodes[1].dataDir == "/data/etcd")
    #expect(config.etcdNodes[0].agentURL == "https://203.0.113.10:9443", "the agents always use HTTPS")
    #expect(throws: LifeboatError.self) {
      try ClusterConfig.parse(Self.rke + "\nlifeboat:\n  nodes:\n    203.0.113.20: {client_port: 1}\n", path: "cluster.yml")
    }
    #expect(throws: LifeboatError.self) {
      try ClusterConfig.parse(Self.rke + "\nlifeboat:\n  data_dir: relative/path\n", path: "cluster.yml")
    }
    #expect(throws: LifeboatError.self) {
      try ClusterConfig.parse(Self.rke + "\nlifeboat:\n  runtime: {type: command, stop: x}\n", path: "cluster.yml")
    }
  }

  @Test func scheduledDrills() throws {
    #expect(try ClusterConfig.parse(Self.rke, path: "cluster.yml").drillSchedule == nil, "no drills unless configured")
    let text = Self.rke + "\nlifeboat:\n  timezone: Europe/Berlin\n  drill:\n    schedule: '30 4 * * sun'\n    snapshot: latest\n    timeout: 600\n"
    let config = try ClusterConfig.parse(text, path: "cluster.yml")
    #expect(config.drillSchedule?.description == "cron 30 4 * * sun (Europe/Berlin)")
    #expect(config.lifeboat.drill?.timeoutSeconds == 600)
    #expect(config.drillScratchDir(config.etcdNodes[0]) == config.etcdNodes[0].runDir + "/drills")
    let every = try ClusterConfig.parse(Self.rke + "\nlifeboat:\n  drill: {interval_seconds: 90, scratch_dir: /srv/drills}\n", path: "cluster.yml")
    #expect(every.drillSchedule == .interval(90))
    #expect(every.drillScratchDir(every.etcdNodes[1]) == "/srv/drills")
  }

  @Test func lifeboatS3Settings() throws {
    let text = Self.rke + "\nlifeboat:\n  s3:\n    proxy: http://proxy.corp:3128\n    sse: aws:kms\n    sse_kms_key_id: alias/etcd\n"
    let config = try ClusterConfig.parse(text, path: "cluster.yml")
    #expect(config.lifeboat.s3.proxy == "http://proxy.corp:3128")
    #expect(config.lifeboat.s3.sse == "aws:kms")
    #expect(config.lifeboat.s3.sseKMSKeyID == "alias/etcd")
    let locked = try ClusterConfig.parse(
      Self.rke + "\nlifeboat:\n  s3:\n    object_lock_mode: COMPLIANCE\n    object_lock_days: prune\n    checksum: off\n", path: "cluster.yml")
    #expect(locked.lifeboat.s3.objectLockMode == "COMPLIANCE")
    #expect(locked.lifeboat.s3.objectLockDays == "prune")
    #expect(locked.lifeboat.s3.checksum == "off")
    #expect(try ClusterConfig.parse(Self.rke, path: "cluster.yml").lifeboat.s3 == LifeboatS3Settings())
    for (bad, message) in [
      ("    sse: aes\n", "lifeboat.s3.sse: expected AES256 or aws:kms"), ("    sse_customer_key_file: key\n", "sse_customer_key_file"),
      ("    proxi: x\n", "lifeboat.s3.proxi: unknown key"), ("    object_lock_mode: GOVERNANCE\n", "go together"),
      ("    object_lock_mode: LEGAL\n    object_lock_days: 3\n", "expected GOVERNANCE or COMPLIANCE"),
      ("    object_lock_mode: GOVERNANCE\n    object_lock_days: soon\n", "or prune"), ("    checksum: md5\n", "expected crc32c or off"),
    ] {
      #expect {
        try ClusterConfig.parse(Self.rke + "\nlifeboat:\n  s3:\n" + bad, path: "cluster.yml")
      } throws: { error in
        (error as! LifeboatError).message.contains(message)
      }
    }
  }

  @Test func encryptionSettings() throws {
    let recipient = AgeIdentity.generate().recipient.description
    let config = try ClusterConfig.parse(
      Self.rke + "\nlifeboat:\n  encryption:\n    age_recipients: [\"\(recipient)\"]\n    encrypt_local: true\n", path: "cluster.yml")
    #expect(config.lifeboat.ageRecipients.map(\.description) == [recipient])
    #expect(config.lifeboat.encryptLocal)
    for (bad, message) in [
      ("  encryption:\n    age_recipients: [\"age1nope\"]\n", "entry 1: age recipient age1nope is not an X25519 recipient"),
      ("  encryption:\n    encrypt_local: true\n", "encrypt_local needs age_recipients"),
      ("  drill: {interval_seconds: 60}\n  encryption:\n    age_recipients: [\"\(recipient)\"]\n    encrypt_local: true\n", "cannot read encrypted local copies"),
    ] {
      #expect {
        try ClusterConfig.parse(Self.rke + "\nlifeboat:\n" + bad, path: "cluster.yml")
      } throws: { error in
        (error as! LifeboatError).message.contains(message)
      }
    }
  }

  @Test func compressionSetting() throws {
    #expect(try ClusterConfig.parse(Self.rke, path: "cluster.yml").lifeboat.compression == .fast)
    let best = try ClusterConfig.parse(Self.rke + "\nlifeboat:\n  compression: best\n", path: "cluster.yml")
    #expect(best.lifeboat.compression == .best)
    #expect {
      try ClusterConfig.parse(Self.rke + "\nlifeboat:\n  compression: gzip\n", path: "cluster.yml")
    } throws: { error in
      (error as! LifeboatError).message.contains("compression") && (error as! LifeboatError).message.contains("expected fast, best or none")
    }
  }

  @Test func legacySnapshotKeys() throws {
    let text = """
      nodes: [{address: 10.0.0.1, role: [etcd]}]
      services:
        etcd:
          snapshot: true
          creation: 6h
          retention: 24h
      """
    let config = try ClusterConfig.parse(text, path: "cluster.yml")
    #expect(config.backup.intervalHours == 6)
    #expect(config.backup.retention == 4)
  }

  @Test func missingRequiredPartsAreErrors() {
    #expect(throws: LifeboatError.self) { try ClusterConfig.parse("nodes: [{address: 10.0.0.1, role: [worker]}]", path: "c.yml") }
    #expect(throws: LifeboatError.self) {
      try ClusterConfig.parse(
        "nodes: [{address: 10.0.0.1, role: [etcd]}]\nservices: {etcd: {backup_config: {s3backupconfig: {endpoint: s3.amazonaws.com}}}}",
        path: "c.yml")
    }
    #expect(throws: LifeboatError.self) { try ClusterConfig.parse("nodes: [: :", path: "c.yml") }
  }

  @Test func stateFileCertificates() throws {
    let json = """
      {"currentState": {"certificatesBundle": {
        "kube-ca": {"certificatePEM": "-----BEGIN CERTIFICATE-----\\nX\\n-----END CERTIFICATE-----", "keyPEM": "", "path": "/etc/kubernetes/ssl/kube-ca.pem"},
        "kube-etcd-10-0-0-1": {"certificatePEM": "C", "keyPEM": "K", "path": "/etc/kubernetes/ssl/kube-etcd-10-0-0-1.pem", "keyPath": "/etc/kubernetes/ssl/kube-etcd-10-0-0-1-key.pem"}
      }}, "desiredState": {}}
      """
    let state = try RKEState.parse(Data(json.utf8), path: "cluster.rkestate")
    #expect(try state.certificate("kube-ca").keyPEM == nil, "an empty key is no key")
    #expect(try state.certificate("kube-etcd-10-0-0-1", needsKey: true).keyPath == "/etc/kubernetes/ssl/kube-etcd-10-0-0-1-key.pem")
    #expect(throws: LifeboatError.self) { try state.certificate("kube-ca", needsKey: true) }
    #expect(throws: LifeboatError.self) { try RKEState.parse(Data("{}".utf8), path: "x") }
  }

  @Test func dockerRuntimeRestoresAsRKEDoesInAContainerOfTheImage() async throws {
    let config = try ClusterConfig.parse(
      Self.rke + "\nlifeboat:\n  runtime: {type: docker, image: \"rancher/mirrored-coreos-etcd:v3.5.9\"}\n  nodes:\n    203.0.113.10: {docker_host: \"unix:///run/d1.sock\"}\n",
      path: "cluster.yml")
    let node = config.etcdNodes[0]
    let runtime = DockerRuntime(settings: config.lifeboat.runtime, node: node, config: config)
    #expect(runtime.host == "unix:///run/d1.sock")
    #expect(DockerRuntime(settings: config.lifeboat.runtime, node: config.etcdNodes[1], config: config).host == "unix:///var/run/docker.sock")
    let restore = try await runtime.restoreCommand(
      RestoreInvocation(
        database: "/opt/rke/etcd-snapshots/.restore/db", stagingDir: "/var/lib/.lifeboat-staged-1/etcd",
        memberName: node.memberName, initialCluster: config.initialCluster, token: ClusterConfig.clusterToken,
        peerURL: node.peerURL, skipHashCheck: false))
    // RKE's own command, with only the db's directory (read-only) and the staging dir bound, and no network.
    #expect(
      restore.rendered
        == "docker run --rm --network=none -e ETCDCTL_API=3 -v /opt/rke/etcd-snapshots/.restore:/opt/rke/etcd-snapshots/.restore:ro -v /var/lib/.lifeboat-staged-1:/var/lib/.lifeboat-staged-1 rancher/mirrored-coreos-etcd:v3.5.9 /usr/local/bin/etcdctl snapshot restore /opt/rke/etcd-snapshots/.restore/db --data-dir=/var/lib/.lifeboat-staged-1/etcd --name=etcd-cp-1 --initial-cluster=etcd-cp-1=https://10.0.0.1:2380,etcd-203.0.113.11=https://10.0.0.2:2380 --initial-cluster-token=etcd-cluster-1 --initial-advertise-peer-urls=https://10.0.0.1:2380"
    )
    for bad in ["tcp://10.0.0.1:2375", "unix://relative.sock", "unix:///" + String(repeating: "d", count: 120)] {
      #expect(throws: LifeboatError.self, "\(bad)") {
        try ClusterConfig.parse(Self.rke + "\nlifeboat:\n  runtime: {type: docker, docker_host: \"\(bad)\"}\n", path: "cluster.yml")
      }
    }
    let systemd = CommandRuntime(settings: RuntimeSettings(kind: .systemd, unit: "etcd-member"), node: node)
    #expect(systemd.stopCommand.rendered == "systemctl stop etcd-member")
    #expect(systemd.startCommand(quotaBackendBytes: nil).rendered == "systemctl start etcd-member")
  }
}
