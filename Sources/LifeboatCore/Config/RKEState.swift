import Foundation

/// The TLS material of RKE's `cluster.rkestate` (`currentState.certificatesBundle`, falling back
/// to `desiredState`). The file holds private keys: nothing here is ever logged or printed.
public struct RKEState: Sendable {
  public struct Certificate: Sendable {
    public var name: String
    public var certificatePEM: String
    public var keyPEM: String?
    /// Where the node keeps the files (`/etc/kubernetes/ssl/kube-ca.pem`).
    public var path: String?
    public var keyPath: String?

    public init(name: String, certificatePEM: String, keyPEM: String?, path: String?, keyPath: String?) {
      self.name = name
      self.certificatePEM = certificatePEM
      self.keyPEM = keyPEM
      self.path = path
      self.keyPath = keyPath
    }
  }

  public var certificates: [String: Certificate]
  public var path: String

  public static func load(_ path: String) throws(LifeboatError) -> RKEState {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw .usage("cannot read the cluster state file \(path) (RKE writes it next to cluster.yml; it holds the certificates)")
    }
    return try parse(data, path: path)
  }

  /// A node's certificate directory as RKE leaves it (`/etc/kubernetes/ssl`): every `<name>.pem`
  /// with its `<name>-key.pem` when present. An etcd node holds `kube-ca.pem` and every etcd
  /// node's `kube-etcd-<ip>.pem`, which is all an agent needs: the cluster's full state file,
  /// with every private key of the cluster, need not be copied to the nodes.
  public static func load(certificateDirectory directory: String) throws(LifeboatError) -> RKEState {
    let files: [String]
    do { files = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
      throw .usage("cannot read the certificate directory \(directory): \(error.localizedDescription)")
    }
    var certificates: [String: Certificate] = [:]
    for file in files where file.hasSuffix(".pem") && !file.hasSuffix("-key.pem") {
      let name = String(file.dropLast(".pem".count))
      let path = "\(directory)/\(file)"
      let keyPath = "\(directory)/\(name)-key.pem"
      guard let pem = FileManager.default.contents(atPath: path), !pem.isEmpty else { continue }
      let key = FileManager.default.contents(atPath: keyPath)
      certificates[name] = Certificate(
        name: name, certificatePEM: String(decoding: pem, as: UTF8.self), keyPEM: key.map { String(decoding: $0, as: UTF8.self) },
        path: path, keyPath: key == nil ? nil : keyPath)
    }
    guard certificates["kube-ca"] != nil else { throw .usage("\(directory) holds no kube-ca.pem") }
    return RKEState(certificates: certificates, path: directory)
  }

  public static func parse(_ data: Data, path: String) throws(LifeboatError) -> RKEState {
    let object: Any
    do { object = try JSONSerialization.jsonObject(with: data) } catch {
      throw .usage("\(path) is not a cluster state file (not JSON)")
    }
    guard let root = object as? [String: Any] else { throw .usage("\(path) is not a cluster state file") }
    var certificates: [String: Certificate] = [:]
    for stateKey in ["desiredState", "currentState"] {
      guard let state = root[stateKey] as? [String: Any], let bundle = state["certificatesBundle"] as? [String: Any] else {
        continue
      }
      for (name, value) in bundle {
        guard let entry = value as? [String: Any], let pem = entry["certificatePEM"] as? String, !pem.isEmpty else { continue }
        certificates[name] = Certificate(
          name: name, certificatePEM: pem, keyPEM: (entry["keyPEM"] as? String).flatMap { $0.isEmpty ? nil : $0 },
          path: (entry["path"] as? String).flatMap { $0.isEmpty ? nil : $0 },
          keyPath: (entry["keyPath"] as? String).flatMap { $0.isEmpty ? nil : $0 })
      }
    }
    guard !certificates.isEmpty else { throw .usage("\(path) has no certificatesBundle") }
    return RKEState(certificates: certificates, path: path)
  }

  /// The certificate `name`, with its key when `needsKey`.
  public func certificate(_ name: String, needsKey: Bool = false) throws(LifeboatError) -> Certificate {
    guard let certificate = certificates[name] else {
      throw .usage("\(path): no certificate \(name) in certificatesBundle")
    }
    if needsKey, certificate.keyPEM == nil { throw .usage("\(path): the certificate \(name) has no key") }
    return certificate
  }

  /// A state file in RKE's layout holding `certificates` (what `lifeboat local up` writes).
  public static func encode(_ certificates: [Certificate]) throws(LifeboatError) -> [UInt8] {
    var bundle: [String: Any] = [:]
    for c in certificates {
      var entry: [String: Any] = ["name": c.name, "certificatePEM": c.certificatePEM]
      if let key = c.keyPEM { entry["keyPEM"] = key }
      if let path = c.path { entry["path"] = path }
      if let keyPath = c.keyPath { entry["keyPath"] = keyPath }
      bundle[c.name] = entry
    }
    let state: [String: Any] = ["certificatesBundle": bundle, "rkeConfig": [String: Any](), "encryptionConfig": ""]
    do {
      let data = try JSONSerialization.data(
        withJSONObject: ["desiredState": state, "currentState": state], options: [.prettyPrinted, .sortedKeys])
      return [UInt8](data)
    } catch { throw .failure("cannot encode the state file: \(error)") }
  }
}
