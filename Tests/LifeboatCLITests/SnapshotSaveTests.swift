import ArgumentParser
import LifeboatCore
import Testing

@testable import lifeboat

/// `lifeboat snapshot save`: flags, defaults and the checks made before any connection.
@Suite struct SnapshotSaveTests {
  static let endpoint = ["--endpoints", "http://127.0.0.1:2379"]

  func save(_ arguments: [String]) throws -> SnapshotSave {
    try parse(["snapshot", "save"] + arguments, as: SnapshotSave.self)
  }

  @Test func defaults() throws {
    let save = try save(Self.endpoint)
    #expect(save.connection.endpoints == "http://127.0.0.1:2379")
    #expect(save.connection.cacert == nil)
    #expect(save.connection.cert == nil)
    #expect(save.connection.key == nil)
    #expect(save.storage.snapshotDir == "/opt/rke/etcd-snapshots")
    #expect(save.name == nil)
    #expect(save.stateFile == nil)
    #expect(save.safeTimestamp == false)
    #expect(save.compression == nil, "unset: fast without --config, lifeboat.compression with it")
    #expect(save.config == nil)
    #expect(save.remote.s3 == false)
  }

  @Test func everyFlagLandsInItsField() throws {
    let save = try save([
      "--endpoints", "https://10.0.0.1:2379,https://10.0.0.2:2379",
      "--cacert", "/etc/kubernetes/ssl/kube-ca.pem",
      "--cert", "/etc/kubernetes/ssl/kube-etcd.pem",
      "--key", "/etc/kubernetes/ssl/kube-etcd-key.pem",
      "--snapshot-dir", "/var/backups/etcd",
      "--name", "before-upgrade",
      "--state-file", "/etc/kubernetes/cluster.rkestate",
      "--safe-timestamp",
      "--compression", "best",
    ])
    #expect(save.connection.endpoints == "https://10.0.0.1:2379,https://10.0.0.2:2379")
    #expect(save.connection.cacert == "/etc/kubernetes/ssl/kube-ca.pem")
    #expect(save.connection.cert == "/etc/kubernetes/ssl/kube-etcd.pem")
    #expect(save.connection.key == "/etc/kubernetes/ssl/kube-etcd-key.pem")
    #expect(save.storage.snapshotDir == "/var/backups/etcd")
    #expect(save.name == "before-upgrade")
    #expect(save.stateFile == "/etc/kubernetes/cluster.rkestate")
    #expect(save.safeTimestamp == true)
    #expect(save.compression == .best)
    #expect(save.config == nil)
  }

  @Test func equalsSignFormAndAnyOrder() throws {
    let save = try save(["--compression=none", "--name=n1", "--snapshot-dir=/s", "--endpoints=http://h:1"])
    #expect(save.compression == Compression.none)
    #expect(save.name == "n1")
    #expect(save.storage.snapshotDir == "/s")
    #expect(save.connection.endpoints == "http://h:1")
  }

  @Test(arguments: [("fast", Compression.fast), ("best", .best), ("none", .none)])
  func compressionValues(value: String, expected: Compression) throws {
    #expect(try save(Self.endpoint + ["--compression", value]).compression == expected)
  }

  @Test(arguments: ["gzip", "FAST", "9", ""])
  func aBadCompressionIsAUsageError(value: String) {
    expectUsageError(
      ["snapshot", "save"] + Self.endpoint + ["--compression", value],
      messageContains: ["'\(value)'", "--compression", "fast", "best", "none"])
  }

  @Test(arguments: ["--compression", "--name", "--snapshot-dir", "--endpoints", "--state-file", "--config", "--cacert"])
  func anOptionWithoutItsValueIsAUsageError(option: String) {
    expectUsageError(["snapshot", "save", option], messageContains: [option])
  }

  @Test func saveThroughTheAgentsTakesConfig() throws {
    let save = try save(["--config", "/etc/rke/cluster.yml", "--name", "n"])
    #expect(save.config == "/etc/rke/cluster.yml")
    #expect(save.name == "n")
    #expect(save.connection.endpoints == nil)
  }

  // MARK: The connection (ConnectionOptions.connection(), before any request)

  @Test func withoutEndpointsTheConnectionIsAUsageError() throws {
    let save = try save([])
    expectLifeboatUsageError(messageContains: ["--endpoints is required"]) { try save.connection.connection() }
  }

  @Test(arguments: ["", " , ", ","])
  func emptyEndpointsAreAUsageError(value: String) throws {
    let save = try save(["--endpoints", value])
    expectLifeboatUsageError(messageContains: ["--endpoints is empty"]) { try save.connection.connection() }
  }

  @Test(arguments: ["127.0.0.1:2379", "ftp://127.0.0.1:2379", "http://127.0.0.1:notaport", "http://127.0.0.1:70000",
                    "http://127.0.0.1:2379/v3", "http://user@127.0.0.1:2379", "http://"])
  func badEndpointsAreAUsageError(value: String) throws {
    let save = try save(["--endpoints", "http://127.0.0.1:2379," + value])
    expectLifeboatUsageError(messageContains: ["invalid endpoint \(value)"]) { try save.connection.connection() }
  }

  @Test func endpointsAreSplitTrimmedAndGetEtcdsDefaultPort() throws {
    let save = try save(["--endpoints", "http://10.0.0.1, http://10.0.0.2:12379,,https://[::1]:2379"])
    let connection = try save.connection.connection()
    #expect(connection.endpoints.map(\.description) == ["http://10.0.0.1:2379", "http://10.0.0.2:12379", "https://[::1]:2379"])
    #expect(connection.client.tls == nil)
  }

  @Test(arguments: [["--cert", "client.pem"], ["--key", "client-key.pem"], ["--cert", "client.pem", "--key", "client-key.pem"]])
  func certOrKeyWithoutCACertIsAUsageError(tls: [String]) throws {
    let save = try save(["--endpoints", "https://127.0.0.1:2379"] + tls)
    expectLifeboatUsageError(messageContains: ["need --cacert"]) { try save.connection.connection() }
  }

  // MARK: --name (checked by SnapshotName before any connection)

  @Test(arguments: ["../x", "a/b", "a\\b", "..", ".", "x.zip", "x.part", "x.manifest.json", "tab\tname", String(repeating: "n", count: 201)])
  func badNamesAreUsageErrors(name: String) throws {
    let save = try save(Self.endpoint + ["--name", name])
    let raw = try #require(save.name)
    // `run()` turns --name into a SnapshotName first of all (unlike the read commands, save does
    // not drop a trailing .zip).
    expectLifeboatUsageError(messageContains: ["invalid snapshot name"]) { try SnapshotName(raw) }
  }

  @Test func anEmptyNameIsAUsageError() throws {
    let save = try save(Self.endpoint + ["--name", ""])
    #expect(save.name == "")
    expectLifeboatUsageError(messageContains: ["it is empty"]) { try SnapshotName(save.name!) }
  }

  @Test func aNameStartingWithADashIsTakenForAFlag() {
    // `--name -x` cannot give a name: -x is read as an (unknown) flag.
    expectUsageError(["snapshot", "save"] + Self.endpoint + ["--name", "-x"])
  }

  @Test func goodNamesAreKeptAsGiven() throws {
    let save = try save(Self.endpoint + ["--name", "rke_etcd_snapshot_2024-01-02T03:04:05Z"])
    #expect(try SnapshotName(save.name!).value == "rke_etcd_snapshot_2024-01-02T03:04:05Z")
  }

  @Test func positionalArgumentsAreRefused() {
    expectUsageError(["snapshot", "save"] + Self.endpoint + ["my-snapshot"], messageContains: ["my-snapshot"])
  }
}

/// `save --config`: cluster.yml says where etcd, the snapshot dirs and S3 are; flags that would
/// say otherwise are refused instead of ignored, and --compression is honoured.
@Suite struct ClusterSaveFlagTests {
  @Test(arguments: [
    ["--endpoints", "https://127.0.0.1:2379"], ["--cacert", "ca.pem"], ["--snapshot-dir", "/tmp/snaps"],
    ["--state-file", "x.rkestate"], ["--safe-timestamp"], ["--s3", "--bucket-name", "b"],
  ])
  func flagsThatClusterYAMLDecidesAreRefused(extra: [String]) {
    expectUsageError(["snapshot", "save", "--config", "cluster.yml"] + extra, messageContains: ["with --config", extra[0]])
  }

  @Test func compressionAndNameAreTaken() throws {
    let save = try parse(["snapshot", "save", "--config", "c.yml", "--name", "n1", "--compression", "best"], as: SnapshotSave.self)
    #expect(save.compression == .best)
    #expect(save.name == "n1")
  }
}

/// Found by a review: a save whose copies a restore refused (it started meanwhile) exited 6.
@Suite struct ClusterSaveOutcomeTests {
  @Test func aCopyRefusedByARestoreIsExit9AndOtherCopyFailuresExit6() throws {
    #expect(SnapshotSave.copyFailure([], name: "n") == nil)
    let refused = LifeboatError(.restoreInProgress, "copy refused: restore 20261130T000000Z-1 holds 10.0.0.2", node: "10.0.0.2")
    let full = LifeboatError.storage("10.0.0.3: disk full")
    #expect(try #require(SnapshotSave.copyFailure([full, refused], name: "n")).exitCode == 9)
    let storage = try #require(SnapshotSave.copyFailure([full], name: "n"))
    #expect(storage.exitCode == 6)
    #expect(storage.message == "saved n, but not every node has a copy: 10.0.0.3: disk full")
  }
}

/// `--age-recipient` and `--age-encrypt-local`: what each needs, checked before any connection.
@Suite struct SaveEncryptionFlagTests {
  static let recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

  @Test func aRecipientAloneNeedsS3OrEncryptLocal() {
    expectUsageError(
      ["snapshot", "save", "--endpoints", "http://127.0.0.1:2379", "--age-recipient", Self.recipient],
      messageContains: ["--age-recipient", "--s3", "--age-encrypt-local"])
  }

  @Test func encryptLocalNeedsARecipient() {
    expectUsageError(
      ["snapshot", "save", "--endpoints", "http://127.0.0.1:2379", "--age-encrypt-local"],
      messageContains: ["--age-encrypt-local needs --age-recipient"])
  }

  @Test func encryptLocalWithARecipientIsTaken() throws {
    let save = try parse(
      ["snapshot", "save", "--endpoints", "http://127.0.0.1:2379", "--age-recipient", Self.recipient, "--age-encrypt-local"],
      as: SnapshotSave.self)
    #expect(save.age.encryptLocal)
    #expect(save.age.recipients == [Self.recipient])
  }

  @Test func withConfigTheFileDecidesEncryption() {
    expectUsageError(
      ["snapshot", "save", "--config", "cluster.yml", "--age-encrypt-local"],
      messageContains: ["with --config", "lifeboat.encryption.encrypt_local"])
  }
}
