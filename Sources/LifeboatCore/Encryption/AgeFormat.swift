import Crypto
import Foundation

/// The age file format (age-encryption.org/v1), for X25519 recipients: a text header (one
/// stanza per recipient wrapping a random 16-byte file key, then an HMAC of the header), a
/// 16-byte nonce, and the payload as ChaCha20-Poly1305 STREAM in 64 KiB chunks (nonce: an 11-byte
/// big-endian chunk counter and a last-chunk flag). Every primitive is swift-crypto's; the format
/// itself is written by hand (no Swift age library exists on the mirror), and checked both ways
/// against Debian's `age` CLI in the tests.
public enum AgeFormat {
  public static let intro = "age-encryption.org/v1"
  public static let chunkSize = 64 * 1024
  public static let tagSize = 16
  public static let nonceSize = 16
  static let x25519Label = "age-encryption.org/v1/X25519"

  /// The header for `recipients` wrapping `fileKey`, MAC line included.
  static func header(fileKey: SymmetricKey, recipients: [AgeRecipient]) throws(LifeboatError) -> [UInt8] {
    var text = intro + "\n"
    for recipient in recipients {
      let ephemeral = Curve25519.KeyAgreement.PrivateKey()
      let share = Array(ephemeral.publicKey.rawRepresentation)
      guard let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: recipient.publicKey),
        let shared = try? ephemeral.sharedSecretFromKeyAgreement(with: peer)
      else { throw .usage("age recipient \(recipient) cannot be used (a low-order key)") }
      let wrapKey = shared.hkdfDerivedSymmetricKey(
        using: SHA256.self, salt: share + recipient.publicKey, sharedInfo: Array(x25519Label.utf8), outputByteCount: 32)
      let body = seal(fileKey.withUnsafeBytes { Array($0) }, key: wrapKey, nonce: [UInt8](repeating: 0, count: 12))
      text += "-> X25519 \(base64(share))\n" + wrapped(base64(body))
    }
    text += "---"
    let mac = HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: headerKey(fileKey))
    return Array((text + " " + base64(Array(mac)) + "\n").utf8)
  }

  /// A header as read: its stanzas, the bytes the MAC covers, the MAC, and its length.
  struct Header {
    struct Stanza {
      var type: String
      var arguments: [String]
      var body: [UInt8]
    }
    var stanzas: [Stanza]
    var macInput: [UInt8]
    var mac: [UInt8]
    var length: Int
  }

  /// Parses the header at the start of `bytes` (which must hold all of it).
  static func parseHeader(_ bytes: [UInt8], name: String) throws(LifeboatError) -> Header {
    func bad(_ why: String) -> LifeboatError { .verification("\(name) is not a valid age file: \(why)") }
    if bytes.starts(with: Array("-----BEGIN AGE ENCRYPTED FILE-----".utf8)) {
      throw .usage("\(name) is ASCII-armored age (age -a): encrypt without -a")
    }
    var position = 0
    func line() -> String? {
      guard let end = bytes[position...].firstIndex(of: 0x0A) else { return nil }
      defer { position = end + 1 }
      guard let text = String(validating: bytes[position..<end], as: UTF8.self) else { return "\u{0}" }
      return text
    }
    guard line() == intro else { throw bad("it does not start with \(intro)") }
    var stanzas: [Header.Stanza] = []
    while true {
      let lineStart = position
      guard let next = line() else { throw bad("the header has no end") }
      if next.hasPrefix("--- ") {
        guard let mac = unbase64(String(next.dropFirst(4))), mac.count == 32 else { throw bad("the header MAC is malformed") }
        return Header(stanzas: stanzas, macInput: Array(bytes[..<(lineStart + 3)]), mac: mac, length: position)
      }
      guard next.hasPrefix("-> ") else { throw bad("a header line is neither a stanza nor its end") }
      let parts = next.dropFirst(3).split(separator: " ", omittingEmptySubsequences: false).map(String.init)
      guard let type = parts.first, !type.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else { throw bad("an empty stanza argument") }
      var body = ""
      while true {
        guard let bodyLine = line() else { throw bad("a stanza body has no end") }
        guard bodyLine.count <= 64 else { throw bad("a stanza body line is longer than 64 columns") }
        body += bodyLine
        if bodyLine.count < 64 { break }
      }
      guard let decoded = unbase64(body) else { throw bad("a stanza body is not base64") }
      stanzas.append(Header.Stanza(type: type, arguments: Array(parts.dropFirst()), body: decoded))
    }
  }

  /// The file key from the first X25519 stanza one of `identities` opens, checked against the MAC.
  static func fileKey(_ header: Header, identities: [AgeIdentity], name: String) throws(LifeboatError) -> SymmetricKey {
    if header.stanzas.contains(where: { $0.type == "scrypt" }) {
      throw .usage("\(name) is encrypted with a passphrase (age -p): Lifeboat reads files encrypted to X25519 recipients (age -r)")
    }
    for stanza in header.stanzas where stanza.type == "X25519" {
      guard stanza.arguments.count == 1, let share = unbase64(stanza.arguments[0]), share.count == 32, stanza.body.count == 32,
        let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: share)
      else {
        throw .verification("\(name) is not a valid age file: a malformed X25519 stanza")
      }
      for identity in identities {
        guard let shared = try? identity.privateKey.sharedSecretFromKeyAgreement(with: peer) else { continue }
        let isZero = shared.withUnsafeBytes { $0.allSatisfy { $0 == 0 } }
        if isZero { continue }
        let wrapKey = shared.hkdfDerivedSymmetricKey(
          using: SHA256.self, salt: share + identity.recipient.publicKey, sharedInfo: Array(x25519Label.utf8), outputByteCount: 32)
        guard let fileKey = open(stanza.body, key: wrapKey, nonce: [UInt8](repeating: 0, count: 12)), fileKey.count == 16 else {
          continue
        }
        let key = SymmetricKey(data: fileKey)
        guard HMAC<SHA256>.isValidAuthenticationCode(header.mac, authenticating: header.macInput, using: headerKey(key)) else {
          throw .verification("\(name): the age header's MAC does not match: the header was altered")
        }
        return key
      }
    }
    let recipients = header.stanzas.filter { $0.type == "X25519" }.count
    throw .usage(
      "no --age-identity opens \(name): it is encrypted to \(recipients) X25519 recipient\(recipients == 1 ? "" : "s"), none of them yours")
  }

  static func headerKey(_ fileKey: SymmetricKey) -> SymmetricKey {
    HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: [UInt8](), info: Array("header".utf8), outputByteCount: 32)
  }

  static func payloadKey(_ fileKey: SymmetricKey, nonce: [UInt8]) -> SymmetricKey {
    HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: nonce, info: Array("payload".utf8), outputByteCount: 32)
  }

  /// The STREAM nonce of chunk `index`.
  static func chunkNonce(_ index: UInt64, last: Bool) -> [UInt8] {
    var nonce = [UInt8](repeating: 0, count: 12)
    for i in 0..<8 { nonce[3 + i] = UInt8(truncatingIfNeeded: index >> (8 * (7 - i))) }
    nonce[11] = last ? 1 : 0
    return nonce
  }

  static func seal(_ plaintext: some DataProtocol, key: SymmetricKey, nonce: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    seal(plaintext, key: key, nonce: nonce, appendingTo: &out)
    return out
  }

  /// Appends the sealed chunk (ciphertext, then tag) to `out`.
  static func seal(_ plaintext: some DataProtocol, key: SymmetricKey, nonce: [UInt8], appendingTo out: inout [UInt8]) {
    let box = try! ChaChaPoly.seal(plaintext, using: key, nonce: try! ChaChaPoly.Nonce(data: nonce))
    out.append(contentsOf: box.ciphertext)
    out.append(contentsOf: box.tag)
  }

  static func open(_ ciphertext: some DataProtocol, key: SymmetricKey, nonce: [UInt8]) -> [UInt8]? {
    guard ciphertext.count >= tagSize else { return nil }
    let split = ciphertext.index(ciphertext.endIndex, offsetBy: -tagSize)
    // The box is made from the two slices (it copies them once, into its combined form).
    guard let box = try? ChaChaPoly.SealedBox(
      nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: ciphertext[..<split], tag: ciphertext[split...]),
      let plain = try? ChaChaPoly.open(box, using: key)
    else { return nil }
    return [UInt8](plain)
  }

  /// Unpadded standard base64, as age writes it.
  static func base64(_ bytes: [UInt8]) -> String {
    var text = Data(bytes).base64EncodedString()
    while text.hasSuffix("=") { text.removeLast() }
    return text
  }

  /// Unpadded standard base64, strictly: padding or other characters are refused (age does).
  static func unbase64(_ text: String) -> [UInt8]? {
    guard !text.contains("="), text.utf8.allSatisfy({ $0 != 0x0A && $0 != 0x0D }) else { return nil }
    let padded = text + String(repeating: "=", count: (4 - text.count % 4) % 4)
    guard let data = Data(base64Encoded: padded), base64([UInt8](data)) == text else { return nil }
    return [UInt8](data)
  }

  /// Base64 text in lines of 64 columns, the last one shorter (empty if need be).
  static func wrapped(_ text: String) -> String {
    var out = ""
    var rest = Substring(text)
    while rest.count >= 64 {
      out += rest.prefix(64) + "\n"
      rest = rest.dropFirst(64)
    }
    return out + rest + "\n"
  }
}

/// Encrypts a stream to age recipients: `begin()` (header and nonce), `update` for the bytes in
/// order, `finish()` for the last chunk. Full chunks go out as soon as a later byte shows they are
/// not the last; memory stays at one chunk.
public struct AgeEncryptor: Sendable {
  private let fileKey: SymmetricKey
  private let recipients: [AgeRecipient]
  private var payloadKey: SymmetricKey?
  private var buffer: [UInt8] = []
  private var index: UInt64 = 0

  public init(recipients: [AgeRecipient]) {
    self.fileKey = SymmetricKey(size: .init(bitCount: 128))
    self.recipients = recipients
    buffer.reserveCapacity(AgeFormat.chunkSize + 1)
  }

  /// The header and the payload nonce: the first bytes of the file.
  public mutating func begin() throws(LifeboatError) -> [UInt8] {
    var nonce = [UInt8](repeating: 0, count: AgeFormat.nonceSize)
    for i in nonce.indices { nonce[i] = UInt8.random(in: 0...255) }
    payloadKey = AgeFormat.payloadKey(fileKey, nonce: nonce)
    return try AgeFormat.header(fileKey: fileKey, recipients: recipients) + nonce
  }

  /// Encrypts `bytes`; returns the chunks completed (possibly none).
  public mutating func update(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    update(bytes, appendingTo: &out)
    return out
  }

  /// Encrypts `bytes` and appends the chunks completed (possibly none) to `out`, which a caller
  /// that encrypts a stream hands in again and again (`BufferPool`).
  public mutating func update(_ bytes: [UInt8], appendingTo out: inout [UInt8]) {
    // Sized once: growing by doubling would hold about one and a half copies at each step.
    out.reserveCapacity(out.count + Self.sealedSize(completing: buffer.count + bytes.count))
    var rest = bytes[...]
    while !rest.isEmpty {
      if buffer.count == AgeFormat.chunkSize {
        // More bytes follow: this full chunk is not the last.
        AgeFormat.seal(buffer, key: payloadKey!, nonce: AgeFormat.chunkNonce(index, last: false), appendingTo: &out)
        index += 1
        buffer.removeAll(keepingCapacity: true)
      }
      if buffer.isEmpty, rest.count > AgeFormat.chunkSize {
        // A whole chunk with more after it: sealed straight from the input, without the copy.
        AgeFormat.seal(
          rest.prefix(AgeFormat.chunkSize), key: payloadKey!, nonce: AgeFormat.chunkNonce(index, last: false), appendingTo: &out)
        index += 1
        rest = rest.dropFirst(AgeFormat.chunkSize)
        continue
      }
      let take = min(AgeFormat.chunkSize - buffer.count, rest.count)
      buffer.append(contentsOf: rest.prefix(take))
      rest = rest.dropFirst(take)
    }
  }

  /// The most bytes `update` appends for `pending` bytes not yet sealed: the full chunks among
  /// them, each with its tag.
  public static func sealedSize(completing pending: Int) -> Int {
    pending / AgeFormat.chunkSize * (AgeFormat.chunkSize + AgeFormat.tagSize)
  }

  /// The last chunk (1 to 64 KiB, or empty for an empty payload).
  public mutating func finish() -> [UInt8] {
    defer { buffer = [] }
    return AgeFormat.seal(buffer, key: payloadKey!, nonce: AgeFormat.chunkNonce(index, last: true))
  }

  /// Size of the file for `plaintext` bytes after a header of `headerSize` bytes.
  public static func encryptedSize(plaintext: UInt64, headerSize: Int) -> UInt64 {
    let chunks = max(1, (plaintext + UInt64(AgeFormat.chunkSize) - 1) / UInt64(AgeFormat.chunkSize))
    return UInt64(headerSize + AgeFormat.nonceSize) + plaintext + chunks * UInt64(AgeFormat.tagSize)
  }
}
