import Dispatch
import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores

/// Everything that reads untrusted bytes, one entry each: the ZIP reader, the bbolt reader, the
/// manifest and cluster.yml parsers, the agent's Range header and request bodies, S3's XML. An
/// input may be refused (a `LifeboatError`), never crash, hang or read past its end.
enum FuzzTargets {
  static let all: [String: @Sendable ([UInt8]) -> Void] = [
    "zip": zip, "bolt": bolt, "manifest": manifest, "config": config, "range": range, "bodies": bodies, "s3xml": s3xml,
    "deflate": deflate, "age": age, "agekeys": agekeys,
  ]

  /// The ZIP reader over bytes in memory: the central directory, then every entry read in full.
  static func zip(_ bytes: [UInt8]) {
    blocking {
      guard let reader = try? await ZipReader(source: MemorySource(bytes: bytes)) else { return }
      for entry in reader.entries { _ = try? await reader.readAll(entry, limit: 1 << 20) }
    }
  }

  /// The bbolt reader (through `SnapshotStatus`, as `inspect` uses it) over a file of the bytes.
  static func bolt(_ bytes: [UInt8]) {
    let path = NSTemporaryDirectory() + "lifeboat-fuzz-bolt-\(getpid())"
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
    defer { try? FileManager.default.removeItem(atPath: path) }
    _ = try? SnapshotStatus.read(path: path)
  }

  static func manifest(_ bytes: [UInt8]) {
    _ = try? Manifest.decode(bytes, path: "fuzz.manifest.json")
  }

  static func config(_ bytes: [UInt8]) {
    guard let text = String(bytes: bytes, encoding: .utf8) else { return }
    guard let config = try? ClusterConfig.parse(text, path: "/fuzz/cluster.yml") else { return }
    _ = config.etcdNodes
    _ = config.retentionPolicy
    _ = config.recurringSchedule
  }

  /// The first 8 bytes are the file's size, the rest the header after `bytes=`.
  static func range(_ bytes: [UInt8]) {
    guard bytes.count >= 8 else { return }
    let size = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    let spec = String(decoding: bytes.dropFirst(8), as: UTF8.self)
    guard let r = ByteRange.parse(spec, size: size) else { return }
    precondition(r.lowerBound <= r.upperBound && r.upperBound < size, "range \(r) outside a file of \(size) bytes")
  }

  /// The agent's request bodies, decoded as the agent decodes them.
  static func bodies(_ bytes: [UInt8]) {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    let data = Data(bytes)
    _ = try? decoder.decode(NodeSaveRequest.self, from: data)
    _ = try? decoder.decode(FetchRequest.self, from: data)
    _ = try? decoder.decode(StageRequest.self, from: data)
    if let lease = try? decoder.decode(RestoreLease.self, from: data) { _ = lease.line }
    _ = try? decoder.decode(NodeRestoreStatus.self, from: data)
  }

  /// The Deflate block walker behind `--compression best`. A stream it accepts is also turned
  /// into a continuing one and ended with an empty final block, which must walk to the same size.
  static func deflate(_ bytes: [UInt8]) {
    guard let end = try? bytes.withBytes({ (b) throws(LifeboatError) in try DeflateBlockWalker.walk(b) }) else { return }
    precondition(end.finalBlockBit < end.endBit && end.endBit <= bytes.count * 8, "walk ended at \(end)")
    var joined = bytes
    DeflateChunks.makeContinuing(&joined, end: end)
    joined += [0x03, 0x00]
    let again = try? joined.withBytes { (b) throws(LifeboatError) in try DeflateBlockWalker.walk(b) }
    precondition(again?.decodedSize == end.decodedSize, "a continued stream walks to \(String(describing: again))")
  }

  /// The identity the `age` corpus is encrypted to (a key made for the fuzzer, guarding nothing):
  /// inputs that keep a valid header reach the payload's chunks.
  static let ageIdentity = try! AgeIdentity.parse(
    "AGE-SECRET-KEY-1CV53LFMDYZ0JPK2TY4Q8P3GS66DNU3MYAVVXZTA6CV0G337GGTHSN8S89R", origin: "fuzz")

  /// An age file as verify and restore open one (`AgeDecryptingSource`): the header, its
  /// stanzas and MAC, then the payload read whole and from a middle offset. What it accepts must
  /// decrypt to the size it announced, and the same bytes both ways.
  static func age(_ bytes: [UInt8]) {
    blocking {
      guard let source = try? await AgeDecryptingSource(base: MemorySource(bytes: bytes), identities: ageIdentity) else { return }
      var plain: [UInt8] = []
      guard (try? await source.stream(from: 0, length: source.size, chunkSize: 1 << 20) { plain += $0 }) != nil else { return }
      precondition(UInt64(plain.count) == source.size, "decrypted \(plain.count) bytes of \(source.size)")
      guard source.size > 1 else { return }
      let offset = source.size / 2
      let tail = try? await source.read(at: offset, count: Int(source.size - offset))
      precondition(tail.map { $0[...] == plain[Int(offset)...] } ?? false, "a read from the middle differs from the whole")
    }
  }

  /// Identity files (`--age-identity`) and recipients (`age1…`); a Bech32 string that decodes
  /// must encode back to itself (lower-cased).
  static func agekeys(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    _ = try? AgeIdentity.parse(text, origin: "fuzz")
    for line in text.split(whereSeparator: \.isNewline) {
      _ = try? AgeRecipient(parsing: String(line))
      if let (hrp, data) = Bech32.decode(String(line)) {
        precondition(Bech32.encode(hrp: hrp, data) == line.lowercased(), "\(line) does not encode back")
      }
    }
  }

  static func s3xml(_ bytes: [UInt8]) {
    S3ResponseParsers.parseAll(bytes)
  }

  /// Runs async code to completion from a synchronous entry point (libFuzzer's).
  static func blocking(_ body: @escaping @Sendable () async -> Void) {
    let done = DispatchSemaphore(value: 0)
    Task {
      await body()
      done.signal()
    }
    done.wait()
  }
}

/// Bytes in memory as a `ByteSource`; reads past the end are refused, as a file's would be.
struct MemorySource: ByteSource {
  let bytes: [UInt8]
  var name: String { "fuzz input" }
  var size: UInt64 { UInt64(bytes.count) }

  func read(at offset: UInt64, count: Int) async throws(LifeboatError) -> [UInt8] {
    guard count >= 0, offset <= size, UInt64(count) <= size - offset else { throw .verification("read past the end") }
    return Array(bytes[Int(offset)..<Int(offset) + count])
  }

  func stream(
    from offset: UInt64, length: UInt64, chunkSize: Int, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    guard offset <= size, length <= size - offset else { throw .verification("read past the end") }
    var position = Int(offset)
    let end = Int(offset + length)
    while position < end {
      let next = min(end, position + max(1, chunkSize))
      try await body(Array(bytes[position..<next]))
      position = next
    }
  }
}
