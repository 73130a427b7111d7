import Foundation
import LifeboatCore
import NIOSSL
import X509

/// The agents' mutual TLS, from the state file's certificates (`kube-ca`, the node's
/// `kube-etcd-<ip>`, the operator's `kube-admin`), and authorization by common name.
public enum AgentTLS {
  /// Common names always allowed to call an agent: etcd nodes (peers) and the operator.
  public static let defaultAllowedNames: Set<String> = ["kube-etcd", "kube-admin"]

  /// The agent's server side: its node certificate, client certificates required and verified
  /// against `kube-ca`.
  public static func server(state: RKEState, certificate: String) throws(LifeboatError) -> TLSConfiguration {
    let (chain, key) = try identity(state, certificate)
    var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: key)
    tls.trustRoots = .certificates(try roots(state))
    tls.certificateVerification = .noHostnameVerification
    tls.minimumTLSVersion = .tlsv12
    // How long closing a connection waits for the client's close_notify (NIOSSL's default, 5 s,
    // added that much to every stop of an agent that had served a client).
    tls.shutdownTimeout = .seconds(1)
    return tls
  }

  /// A client (the operator with `kube-admin`, or a peer agent with its node certificate).
  public static func client(state: RKEState, certificate: String) throws(LifeboatError) -> TLSConfiguration {
    let (chain, key) = try identity(state, certificate)
    var tls = TLSConfiguration.makeClientConfiguration()
    tls.certificateChain = chain
    tls.privateKey = key
    tls.trustRoots = .certificates(try roots(state))
    tls.certificateVerification = .fullVerification
    tls.minimumTLSVersion = .tlsv12
    return tls
  }

  static func roots(_ state: RKEState) throws(LifeboatError) -> [NIOSSLCertificate] {
    let ca = try state.certificate("kube-ca")
    do { return try NIOSSLCertificate.fromPEMBytes(Array(ca.certificatePEM.utf8)) } catch {
      throw .usage("\(state.path): kube-ca is not a PEM certificate")
    }
  }

  static func identity(_ state: RKEState, _ name: String) throws(LifeboatError) -> ([NIOSSLCertificateSource], NIOSSLPrivateKeySource) {
    let entry = try state.certificate(name, needsKey: true)
    do {
      let chain = try NIOSSLCertificate.fromPEMBytes(Array(entry.certificatePEM.utf8)).map { NIOSSLCertificateSource.certificate($0) }
      let key = try NIOSSLPrivateKey(bytes: Array(entry.keyPEM!.utf8), format: .pem)
      return (chain, .privateKey(key))
    } catch {
      throw .usage("\(state.path): the certificate or key of \(name) is not valid PEM")
    }
  }

  /// The subject common name of a DER certificate.
  public static func commonName(_ certificate: NIOSSLCertificate) -> String? {
    guard let der = try? certificate.toDERBytes(), let parsed = try? X509.Certificate(derEncoded: der) else { return nil }
    for rdn in parsed.subject {
      for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
        return String(describing: attribute.value)
      }
    }
    return nil
  }
}
