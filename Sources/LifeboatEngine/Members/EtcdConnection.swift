import EtcdClient
import Foundation
import LifeboatCore

/// How to reach the cluster: its client URLs and the TLS material, as `etcdctl` takes them.
public struct EtcdConnection: Sendable {
  public var endpoints: [EtcdEndpoint]
  public var client: EtcdClientConfiguration

  public init(endpoints: [EtcdEndpoint], client: EtcdClientConfiguration = .init()) {
    self.endpoints = endpoints
    self.client = client
  }

  /// Parses `--endpoints` (comma separated) and loads `--cacert/--cert/--key`. Checks everything
  /// before any connection is made: bad URLs and missing files are usage errors.
  public static func parse(
    endpoints raw: String, caFile: String?, certFile: String?, keyFile: String?
  ) throws(LifeboatError) -> EtcdConnection {
    let parts = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !parts.isEmpty else { throw .usage("--endpoints is empty") }
    var endpoints: [EtcdEndpoint] = []
    for part in parts {
      do { endpoints.append(try EtcdEndpoint(parsing: part)) } catch {
        throw .usage("invalid endpoint \(part): \(error.message)")
      }
    }
    var configuration = EtcdClientConfiguration()
    if caFile == nil && (certFile != nil || keyFile != nil) {
      throw .usage("--cert and --key need --cacert (the CA that signed the etcd members' certificates)")
    }
    if let caFile {
      do { configuration.tls = try EtcdTLS.load(caFile: caFile, certFile: certFile, keyFile: keyFile) } catch {
        throw .usage(error.message)
      }
      if let certFile, let keyFile, let cert = configuration.tls?.certificatePEM, let key = configuration.tls?.keyPEM,
        KeyPairCheck.mismatch(certificatePEM: cert, keyPEM: key) == true
      {
        throw .usage("the key \(keyFile) does not belong to the certificate \(certFile)")
      }
      if let plain = endpoints.first(where: { $0.scheme == .http }) {
        throw .usage("\(plain) is plain http, but TLS files were given: use https:// endpoints")
      }
    }
    return EtcdConnection(endpoints: endpoints, client: configuration)
  }
}
