import EtcdClient
import Foundation
import LifeboatCore
import SnapshotStores

/// A cluster config with its state file, and what derives from both: how to reach etcd and S3.
public struct ClusterContext: Sendable {
  public var config: ClusterConfig
  /// The state file's TLS material; nil only when the file is absent and etcd is plaintext.
  public var state: RKEState?

  public init(config: ClusterConfig, state: RKEState?) {
    self.config = config
    self.state = state
  }

  /// Reads `cluster.yml` and its state file; without a state file (an etcd node of a real RKE
  /// cluster), the node's certificate directory (`lifeboat.cert_dir`, `/etc/kubernetes/ssl`).
  public static func load(_ path: String) throws(LifeboatError) -> ClusterContext {
    try load(config: try ClusterConfig.load(path))
  }

  /// The state file (or certificate directory) of an already read config.
  public static func load(config: ClusterConfig) throws(LifeboatError) -> ClusterContext {
    if !FileManager.default.fileExists(atPath: config.stateFilePath), isDirectory(config.lifeboat.certDir) {
      return ClusterContext(config: config, state: try RKEState.load(certificateDirectory: config.lifeboat.certDir))
    }
    let state = try RKEState.load(config.stateFilePath)
    return ClusterContext(config: config, state: state)
  }

  /// How a node (with its `kube-etcd` certificate) or the operator (`kube-admin`) reaches etcd.
  public func etcdConnection(certificate name: String) throws(LifeboatError) -> EtcdConnection {
    var connection = EtcdConnection(endpoints: [])
    for node in config.etcdNodes {
      do { connection.endpoints.append(try EtcdEndpoint(parsing: node.clientURL)) } catch {
        throw .usage("\(config.path): bad client URL \(node.clientURL): \(error.message)")
      }
    }
    if config.lifeboat.etcdTLS {
      guard let state else { throw .usage("no state file: etcd's TLS certificates are in \(config.stateFilePath)") }
      let ca = try state.certificate("kube-ca")
      let own = try state.certificate(name, needsKey: true)
      connection.client.tls = EtcdTLS(
        caPEM: Array(ca.certificatePEM.utf8), certificatePEM: Array(own.certificatePEM.utf8), keyPEM: Array(own.keyPEM!.utf8))
    }
    return connection
  }

  /// The S3 bucket of `s3backupconfig`, when configured. Keys come from the file or, without
  /// them, from the AWS credential chain of this process (`CredentialChain`); the proxy from
  /// `lifeboat.s3.proxy` or the environment.
  public func s3Configuration(
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws(LifeboatError) -> S3Configuration? {
    guard let s3 = config.backup.s3 else { return nil }
    try S3Configuration.validate(bucket: s3.bucketName)
    let endpoint = try S3Endpoint(parsing: s3.endpoint, allowInsecureHTTP: config.lifeboat.s3InsecureHTTP)
    let proxySetting = config.lifeboat.s3.proxy
    let credentials = try CredentialChain.resolve(
      given: .init(
        accessKey: s3.accessKey, secretKey: s3.secretKey, source: .clusterConfig(config.path),
        names: "access_key and secret_key in \(config.path)"),
      environment: environment, region: s3.region ?? "", proxySetting: proxySetting)
    let settings = config.lifeboat.s3
    var configuration = S3Configuration(
      endpoint: endpoint, bucket: s3.bucketName, folder: s3.folder ?? "", region: s3.region ?? "",
      credentials: credentials, customCA: s3.customCA.map { Array($0.utf8) },
      proxy: try S3Proxy.resolve(
        setting: proxySetting, settingName: "lifeboat.s3.proxy", endpoint: endpoint, environment: environment))
    configuration.serverSideEncryption = try S3ServerSideEncryption.resolve(
      mode: settings.sse, kmsKeyID: settings.sseKMSKeyID, customerKeyFile: settings.sseCustomerKeyFile, endpoint: endpoint,
      prefix: "lifeboat.s3.")
    configuration.objectLock = try S3ObjectLock.resolve(
      mode: settings.objectLockMode, days: settings.objectLockDays,
      pruneAge: config.s3RetentionPolicy == nil ? config.retentionPolicy.maxAge : nil,
      names: ("lifeboat.s3.object_lock_mode", "lifeboat.s3.object_lock_days"))
    if let checksum = settings.checksum { configuration.checksum = try S3Checksum(setting: checksum, name: "lifeboat.s3.checksum") }
    return configuration
  }
}

/// `S3Store.with` with Lifeboat's typed errors.
func withS3<R>(
  _ configuration: S3Configuration, _ body: (S3Store) async throws(LifeboatError) -> R
) async throws(LifeboatError) -> R {
  do {
    return try await S3Store.with(configuration) { store in try await body(store) }
  } catch let error as LifeboatError {
    throw error
  } catch {
    throw .failure("S3: \(error)")
  }
}
