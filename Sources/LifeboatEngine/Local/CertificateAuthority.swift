import Crypto
import Foundation
import LifeboatCore
import SwiftASN1
import X509

/// A certificate and its private key, PEM encoded. The key never appears in descriptions.
public struct IssuedCertificate: Sendable, CustomStringConvertible {
  public var certificatePEM: String
  public var keyPEM: String
  public var description: String { "IssuedCertificate(key: **redacted**)" }
}

/// A throwaway certificate authority for local clusters and tests, issuing certificates with
/// the common names an RKE cluster uses: `kube-ca` for the CA, `kube-etcd` for every etcd node
/// (server and client auth, IP SANs), `kube-admin` for the operator, `kube-node` for workers.
/// Keys are ECDSA P-256.
public struct CertificateAuthority: Sendable {
  public let certificatePEM: String
  private let key: P256.Signing.PrivateKey
  private let certificate: Certificate

  public var keyPEM: String { key.pemRepresentation }

  public init(commonName: String = "kube-ca", validity: TimeInterval = 10 * 365 * 86400) throws(LifeboatError) {
    let key = P256.Signing.PrivateKey()
    do {
      let name = try DistinguishedName { CommonName(commonName) }
      let now = Date()
      let certificate = try Certificate(
        version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
        notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(validity),
        issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
        extensions: try Certificate.Extensions {
          Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
          Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
          SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
        },
        issuerPrivateKey: .init(key))
      self.key = key
      self.certificate = certificate
      self.certificatePEM = try certificate.serializeAsPEM().pemString
    } catch {
      throw .failure("cannot create a certificate authority: \(error)")
    }
  }

  /// Issues a certificate for `commonName` (and `organization`), valid for server and client
  /// authentication, with the given IP addresses and DNS names as subject alternative names.
  public func issue(
    commonName: String, organization: String? = nil, ipAddresses: [String] = [], dnsNames: [String] = [],
    validity: TimeInterval = 10 * 365 * 86400
  ) throws(LifeboatError) -> IssuedCertificate {
    let leafKey = P256.Signing.PrivateKey()
    do {
      let subject = try DistinguishedName {
        if let organization { OrganizationName(organization) }
        CommonName(commonName)
      }
      var names: [GeneralName] = dnsNames.map { .dnsName($0) }
      for ip in ipAddresses {
        guard let bytes = Self.ipv4Bytes(ip) else { throw LifeboatError.usage("not an IPv4 address: \(ip)") }
        names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
      }
      let now = Date()
      let leaf = try Certificate(
        version: .v3, serialNumber: .init(), publicKey: .init(leafKey.publicKey),
        notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(validity),
        issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
        extensions: try Certificate.Extensions {
          Critical(BasicConstraints.notCertificateAuthority)
          Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
          try ExtendedKeyUsage([.serverAuth, .clientAuth])
          if !names.isEmpty { SubjectAlternativeNames(names) }
        },
        issuerPrivateKey: .init(key))
      return IssuedCertificate(certificatePEM: try leaf.serializeAsPEM().pemString, keyPEM: leafKey.pemRepresentation)
    } catch let error as LifeboatError {
      throw error
    } catch {
      throw .failure("cannot issue a certificate for \(commonName): \(error)")
    }
  }

  static func ipv4Bytes(_ text: String) -> [UInt8]? {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
    return parts.count == 4 ? parts : nil
  }
}
