import Foundation
import LifeboatCore
import LifeboatEngine
import TestSupport
import Testing

/// The age format, checked both ways against Debian's `age` and `age-keygen`, at the sizes where
/// chunking can go wrong, and against damage.
@Suite struct AgeTests {
  static func encrypt(_ plaintext: [UInt8], to recipients: [AgeRecipient], feed: Int = 10_000) throws -> [UInt8] {
    var encryptor = AgeEncryptor(recipients: recipients)
    var out = try encryptor.begin()
    var rest = plaintext[...]
    while !rest.isEmpty {
      out += encryptor.update(Array(rest.prefix(feed)))
      rest = rest.dropFirst(feed)
    }
    return out + encryptor.finish()
  }

  static func decrypt(_ file: [UInt8], _ identities: [AgeIdentity]) async throws -> [UInt8] {
    let source = try await AgeDecryptingSource(base: BytesSource(name: "test.zip.age", bytes: file), identities: identities)
    var out: [UInt8] = []
    try await source.stream(from: 0, length: source.size, chunkSize: 100_000) { out += $0 }
    return out
  }

  static func keygen(_ dir: TemporaryDirectory, _ name: String) async throws -> (identity: String, recipient: AgeRecipient) {
    let result = try await ProcessRunner.run(ProcessRunner.which("age-keygen") ?? "/usr/bin/age-keygen", ["-o", dir.file(name)])
    #expect(result.status == 0, "\(result.stderr)")
    let line = try #require((result.stdout + result.stderr).split(separator: "\n").first { $0.contains("age1") })
    return (dir.file(name), try AgeRecipient(parsing: String(line[line.range(of: "age1")!.lowerBound...])))
  }

  static let sizes = [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 200_000]

  static func random(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255) } }

  @Test func bech32KeysRoundTrip() throws {
    let identity = AgeIdentity.generate()
    let parsed = try AgeIdentity.parse("# comment\n\n" + identity.encoded + "\n", origin: "test")
    #expect(parsed.map(\.recipient) == [identity.recipient])
    #expect(try AgeRecipient(parsing: identity.recipient.description) == identity.recipient)
    #expect(!"\(identity)".contains(identity.encoded), "an identity never prints its key")
    var broken = Array(identity.recipient.description)
    broken[10] = broken[10] == "q" ? "p" : "q"
    #expect(throws: LifeboatError.self) { try AgeRecipient(parsing: String(broken)) }
  }

  @Test func lifeboatEncryptsAndAgeDecrypts() async throws {
    try await withTemporaryDirectory { dir in
      let (identityFile, recipient) = try await Self.keygen(dir, "ops.key")
      let other = AgeIdentity.generate()
      for size in Self.sizes {
        let plaintext = Self.random(size)
        let file = try Self.encrypt(plaintext, to: [other.recipient, recipient])
        try Data(file).write(to: URL(fileURLWithPath: dir.file("x.age")))
        let result = try await ProcessRunner.run(ProcessRunner.which("age") ?? "/usr/bin/age", ["-d", "-i", identityFile, "-o", dir.file("x.out"), dir.file("x.age")])
        #expect(result.status == 0, "size \(size): \(result.stderr)")
        // age creates its output lazily: nothing decrypted, no file.
        let out = (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.file("x.out"))))) ?? []
        #expect(out == plaintext, "size \(size)")
        try? FileManager.default.removeItem(atPath: dir.file("x.out"))
        let macLine = file.firstRange(of: Array("\n--- ".utf8))!.upperBound
        let headerSize = file[macLine...].firstIndex(of: 0x0A)! + 1
        #expect(UInt64(file.count) == AgeEncryptor.encryptedSize(plaintext: UInt64(size), headerSize: headerSize), "size \(size)")
      }
    }
  }

  @Test func ageEncryptsAndLifeboatDecryptsAnyRange() async throws {
    try await withTemporaryDirectory { dir in
      let (identityFile, recipient) = try await Self.keygen(dir, "ops.key")
      let identities = try AgeIdentity.load(file: identityFile)
      for size in Self.sizes {
        let plaintext = Self.random(size)
        try Data(plaintext).write(to: URL(fileURLWithPath: dir.file("x.bin")))
        let result = try await ProcessRunner.run(ProcessRunner.which("age") ?? "/usr/bin/age", ["-r", recipient.description, "-o", dir.file("x.age"), dir.file("x.bin")])
        #expect(result.status == 0, "\(result.stderr)")
        let file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.file("x.age"))))
        #expect(try await Self.decrypt(file, identities) == plaintext, "size \(size)")
        let source = try await AgeDecryptingSource(base: BytesSource(name: "x.age", bytes: file), identities: identities)
        #expect(source.size == UInt64(size))
        for _ in 0..<20 where size > 0 {
          let offset = Int.random(in: 0..<size)
          let count = Int.random(in: 1...(size - offset))
          #expect(try await source.read(at: UInt64(offset), count: count) == Array(plaintext[offset..<(offset + count)]))
        }
      }
    }
  }

  @Test func aSecretKeyGivenAsARecipientIsNeverEchoed() {
    let identity = AgeIdentity.generate()
    do {
      _ = try AgeRecipient(parsing: identity.encoded)
      Issue.record("accepted a secret key as a recipient")
    } catch {
      #expect(error.kind == .usage)
      #expect(error.message.contains("an age identity (a secret key) was given as a recipient"))
      #expect(!error.message.contains(identity.encoded.dropFirst(15).prefix(20)))
    }
  }

  @Test func identityFilesAreBoundedAndOnlyTheirKeysTravel() async throws {
    try await withTemporaryDirectory { dir in
      let identity = AgeIdentity.generate()
      let big = "# " + String(repeating: "x", count: 2 << 20) + "\n" + identity.encoded + "\n"
      try big.write(toFile: dir.file("big.key"), atomically: true, encoding: .utf8)
      #expect(throws: LifeboatError.self) { try AgeIdentity.load(file: dir.file("big.key")) }
      let text = "# created: now\n# public key: \(identity.recipient)\n\n" + identity.encoded + "\n"
      #expect(AgeIdentity.keyLines(text) == identity.encoded + "\n")
      do throws(LifeboatError) {
        _ = try AgeIdentity.load(file: "/dev/null")
        Issue.record("/dev/null accepted")
      } catch {
        #expect(error.message.contains("holds no age identity"), "\(error.message)")
      }
    }
  }

  @Test func wrongOrNoMatchingIdentityIsOneUsageLine() async throws {
    let file = try Self.encrypt(Self.random(1000), to: [AgeIdentity.generate().recipient])
    do {
      _ = try await Self.decrypt(file, [AgeIdentity.generate()])
      Issue.record("decrypted with the wrong identity")
    } catch let error as LifeboatError {
      #expect(error.kind == .usage)
      #expect(error.message.contains("no --age-identity opens test.zip.age"), "\(error.message)")
    }
  }

  @Test func damageIsAVerificationErrorNeverPlaintext() async throws {
    let identity = AgeIdentity.generate()
    let plaintext = Self.random(3 * 65_536 + 100)
    let file = try Self.encrypt(plaintext, to: [identity.recipient])
    let headerEnd = file.firstRange(of: Array("\n--- ".utf8))!.upperBound + 44
    var cases: [(String, [UInt8])] = []
    var flipped = file
    flipped[file.count - 5000] ^= 1
    cases.append(("a flipped payload byte", flipped))
    cases.append(("cut at a chunk boundary", Array(file.prefix(headerEnd + 16 + 2 * (65_536 + 16)))))
    cases.append(("cut inside a chunk", Array(file.dropLast(30))))
    var swapped = file
    let a = headerEnd + 16
    let chunk = 65_536 + 16
    swapped.replaceSubrange(a..<(a + 2 * chunk), with: Array(file[(a + chunk)..<(a + 2 * chunk)]) + Array(file[a..<(a + chunk)]))
    cases.append(("two chunks swapped", swapped))
    cases.append(("an extra byte", file + [0]))
    var mac = file
    mac[headerEnd - 3] = mac[headerEnd - 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
    cases.append(("an altered MAC", mac))
    for (what, damaged) in cases {
      do {
        _ = try await Self.decrypt(damaged, [identity])
        Issue.record("\(what): decrypted")
      } catch let error as LifeboatError {
        #expect(error.kind == .verification, "\(what): \(error.message)")
        #expect(!error.message.contains("\n"))
      }
    }
  }

  @Test func armoredFilesAreRefusedByName() async throws {
    try await withTemporaryDirectory { dir in
      let (identityFile, recipient) = try await Self.keygen(dir, "ops.key")
      try Data("hello".utf8).write(to: URL(fileURLWithPath: dir.file("x.bin")))
      let result = try await ProcessRunner.run(ProcessRunner.which("age") ?? "/usr/bin/age", ["-a", "-r", recipient.description, "-o", dir.file("x.age"), dir.file("x.bin")])
      #expect(result.status == 0, "\(result.stderr)")
      let file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.file("x.age"))))
      await #expect(throws: LifeboatError.self) { try await Self.decrypt(file, try AgeIdentity.load(file: identityFile)) }
    }
  }
}
