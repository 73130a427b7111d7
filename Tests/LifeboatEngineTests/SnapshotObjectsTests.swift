import EtcdAPI
import Foundation
import LifeboatEngine
import SwiftProtobuf
import Testing

/// `SnapshotObjects.keyField` reads the key of a serialized `mvccpb.KeyValue` without decoding
/// it; SwiftProtobuf's own encoder and decoder are the oracle.
@Suite struct SnapshotObjectsTests {
  @Test func theKeyFieldIsWhatSwiftProtobufDecodes() throws {
    var rng = SystemRandomNumberGenerator()
    for round in 0..<300 {
      var kv = Mvccpb_KeyValue()
      kv.key = Data((0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
      kv.createRevision = Int64.random(in: 0...Int64.max, using: &rng)
      kv.modRevision = Int64.random(in: 0...1_000_000, using: &rng)
      kv.version = round % 3 == 0 ? 0 : Int64.random(in: 1...1000, using: &rng)
      kv.value = Data(repeating: UInt8(round % 256), count: round % 5 == 0 ? 0 : Int.random(in: 1...200_000, using: &rng))
      kv.lease = round % 2 == 0 ? 0 : -Int64.random(in: 1...Int64.max, using: &rng)
      let bytes: [UInt8] = try kv.serializedBytes()
      let found = SnapshotObjects.keyField(of: bytes[...])
      let decoded = try Mvccpb_KeyValue(serializedBytes: bytes)
      if decoded.key.isEmpty {
        #expect(found == nil || found!.isEmpty, "an empty key is not written")
      } else {
        #expect(found.map { Data($0) } == decoded.key, "round \(round)")
      }
    }
  }

  @Test func fieldsInAnotherOrderAndBrokenBytes() throws {
    var kv = Mvccpb_KeyValue()
    kv.key = Data("/registry/pods/default/p".utf8)
    kv.value = Data(repeating: 7, count: 1000)
    kv.modRevision = 42
    let bytes: [UInt8] = try kv.serializedBytes()
    // The value (field 5) and mod_revision (3) before the key: found all the same.
    let keyLength = 2 + kv.key.count
    let reordered = Array(bytes[keyLength...]) + Array(bytes[..<keyLength])
    #expect(try Mvccpb_KeyValue(serializedBytes: reordered).key == kv.key)
    #expect(SnapshotObjects.keyField(of: reordered[...]).map { Data($0) } == kv.key)
    // Cut short inside the value: not a KeyValue (the key after it is never reached).
    #expect(SnapshotObjects.keyField(of: reordered[..<(reordered.count - keyLength - 10)]) == nil)
    #expect(SnapshotObjects.keyField(of: [0xFF, 0xFF][...]) == nil)
    #expect(SnapshotObjects.keyField(of: [][...]) == nil)
    #expect(SnapshotObjects.keyField(of: [0x0A, 0x05, 0x61][...]) == nil, "a length past the end")
  }
}
