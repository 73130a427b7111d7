import Foundation
import LifeboatCore
import X509

/// A client certificate and key that do not belong together fail every TLS handshake with a
/// message about the peer; this says what is wrong, before any connection.
enum KeyPairCheck {
  /// nil when the key is the certificate's, or when either cannot be parsed here (the TLS
  /// library then says why).
  static func mismatch(certificatePEM: [UInt8], keyPEM: [UInt8]) -> Bool? {
    guard let certificate = try? Certificate(pemEncoded: String(decoding: certificatePEM, as: UTF8.self)),
      let key = try? Certificate.PrivateKey(pemEncoded: String(decoding: keyPEM, as: UTF8.self))
    else { return nil }
    return key.publicKey != certificate.publicKey
  }
}
