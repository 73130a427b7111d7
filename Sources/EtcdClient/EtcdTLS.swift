import Foundation

/// Mutual TLS material for talking to etcd: the CA that signed the members' certificates and the
/// client's certificate and key, all PEM. The key is never printed.
public struct EtcdTLS: Sendable, CustomStringConvertible {
  public var caPEM: [UInt8]
  public var certificatePEM: [UInt8]?
  public var keyPEM: [UInt8]?

  public init(caPEM: [UInt8], certificatePEM: [UInt8]?, keyPEM: [UInt8]?) {
    self.caPEM = caPEM
    self.certificatePEM = certificatePEM
    self.keyPEM = keyPEM
  }

  /// Reads the files as `etcdctl --cacert --cert --key` would; fails naming the missing one.
  public static func load(caFile: String, certFile: String?, keyFile: String?) throws(EtcdClientError) -> EtcdTLS {
    if (certFile == nil) != (keyFile == nil) {
      throw EtcdClientError(.invalidTLSFiles, endpoint: "", "--cert and --key go together")
    }
    let ca = try read(caFile, what: "CA certificate", marker: "CERTIFICATE")
    let cert = try certFile.map { (path) throws(EtcdClientError) in try read(path, what: "client certificate", marker: "CERTIFICATE") }
    let key = try keyFile.map { (path) throws(EtcdClientError) in try read(path, what: "client key", marker: "PRIVATE KEY") }
    return EtcdTLS(caPEM: ca, certificatePEM: cert, keyPEM: key)
  }

  private static func read(_ path: String, what: String, marker: String) throws(EtcdClientError) -> [UInt8] {
    guard FileManager.default.fileExists(atPath: path) else {
      throw EtcdClientError(.invalidTLSFiles, endpoint: "", "\(what) file \(path) does not exist")
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw EtcdClientError(.invalidTLSFiles, endpoint: "", "\(what) file \(path) cannot be read")
    }
    let bytes = [UInt8](data)
    guard String(decoding: bytes, as: UTF8.self).contains("-----BEGIN"),
      String(decoding: bytes, as: UTF8.self).contains(marker)
    else {
      throw EtcdClientError(.invalidTLSFiles, endpoint: "", "\(what) file \(path) is not PEM (\(marker) expected)")
    }
    return bytes
  }

  public var description: String { "EtcdTLS(ca, cert, key: **redacted**)" }
}
