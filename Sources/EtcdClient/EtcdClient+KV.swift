import EtcdAPI
import Foundation
import GRPCCore

/// Keys, leases and the conditional writes of the recurring snapshots' lock.
extension EtcdClient {
  // MARK: - KV (used by tests and the local demo)

  @discardableResult
  public func put(_ key: String, _ value: [UInt8]) async throws(EtcdClientError) -> Int64 {
    let kv = Etcdserverpb_KV.Client(wrapping: grpc)
    var request = Etcdserverpb_PutRequest()
    request.key = Data(key.utf8)
    request.value = Data(value)
    let r = try await call { try await kv.put(request, options: self.options(timeout: self.configuration.requestTimeout)) }
    return r.header.revision
  }

  /// Writes many keys with few requests: one `Txn` per 100 puts (etcd allows 128 operations per
  /// transaction). Prefer this to many `put` calls: on plaintext connections etcd 3.4 answers
  /// most unary calls with a RST_STREAM, and the HTTP/2 stack closes a connection after 200 of
  /// those within 10 seconds (its rapid-reset protection).
  public func putAll(_ pairs: [(key: String, value: [UInt8])]) async throws(EtcdClientError) {
    let kv = Etcdserverpb_KV.Client(wrapping: grpc)
    var start = 0
    while start < pairs.count {
      let end = min(pairs.count, start + 100)
      var txn = Etcdserverpb_TxnRequest()
      txn.success = pairs[start..<end].map { pair in
        var put = Etcdserverpb_PutRequest()
        put.key = Data(pair.key.utf8)
        put.value = Data(pair.value)
        var op = Etcdserverpb_RequestOp()
        op.requestPut = put
        return op
      }
      _ = try await call { try await kv.txn(txn, options: self.options(timeout: self.configuration.requestTimeout)) }
      start = end
    }
  }

  // MARK: - Leases and a lock (recurring snapshots)

  /// A lease of `ttl` seconds; keys put with it vanish when it expires or is revoked.
  public func grantLease(ttl: Int64) async throws(EtcdClientError) -> Int64 {
    let lease = Etcdserverpb_Lease.Client(wrapping: grpc)
    var request = Etcdserverpb_LeaseGrantRequest()
    request.ttl = ttl
    let r = try await call { try await lease.leaseGrant(request, options: self.options(timeout: self.configuration.requestTimeout)) }
    return r.id
  }

  public func revokeLease(_ id: Int64) async throws(EtcdClientError) {
    let lease = Etcdserverpb_Lease.Client(wrapping: grpc)
    var request = Etcdserverpb_LeaseRevokeRequest()
    request.id = id
    _ = try await call { try await lease.leaseRevoke(request, options: self.options(timeout: self.configuration.requestTimeout)) }
  }

  /// One transaction: if `lockKey` does not exist and `stampKey` was last modified at
  /// `stampModRevision` (0: it does not exist), puts `lockKey = holder` with `lease`. Returns
  /// whether it did. (The holder writes the stamp when its run succeeds.)
  public func takeLock(
    lockKey: String, holder: String, lease: Int64, stampKey: String, stampModRevision: Int64
  ) async throws(EtcdClientError) -> Bool {
    let kv = Etcdserverpb_KV.Client(wrapping: grpc)
    var absent = Etcdserverpb_Compare()
    absent.key = Data(lockKey.utf8)
    absent.target = .create
    absent.result = .equal
    absent.createRevision = 0
    var unchanged = Etcdserverpb_Compare()
    unchanged.key = Data(stampKey.utf8)
    unchanged.target = .mod
    unchanged.result = .equal
    unchanged.modRevision = stampModRevision
    var lockPut = Etcdserverpb_PutRequest()
    lockPut.key = Data(lockKey.utf8)
    lockPut.value = Data(holder.utf8)
    lockPut.lease = lease
    var op = Etcdserverpb_RequestOp()
    op.requestPut = lockPut
    var txn = Etcdserverpb_TxnRequest()
    txn.compare = [absent, unchanged]
    txn.success = [op]
    let r = try await call { try await kv.txn(txn, options: self.options(timeout: self.configuration.requestTimeout)) }
    return r.succeeded
  }

  /// Puts `puts` (key, value, lease) only if `key`'s value is `value`: a lock holder renewing its
  /// lock under a new lease, or stamping its slot while it still holds the lock.
  public func putIfValue(
    _ key: String, equals value: String, puts: [(key: String, value: String, lease: Int64)]
  ) async throws(EtcdClientError) -> Bool {
    let kv = Etcdserverpb_KV.Client(wrapping: grpc)
    var compare = Etcdserverpb_Compare()
    compare.key = Data(key.utf8)
    compare.target = .value
    compare.result = .equal
    compare.value = Data(value.utf8)
    var txn = Etcdserverpb_TxnRequest()
    txn.compare = [compare]
    txn.success = puts.map { p in
      var put = Etcdserverpb_PutRequest()
      put.key = Data(p.key.utf8)
      put.value = Data(p.value.utf8)
      put.lease = p.lease
      var op = Etcdserverpb_RequestOp()
      op.requestPut = put
      return op
    }
    let r = try await call { try await kv.txn(txn, options: self.options(timeout: self.configuration.requestTimeout)) }
    return r.succeeded
  }

  /// Keys starting with `prefix` (all keys for an empty prefix), in key order.
  public func range(prefix: String, serializable: Bool = false) async throws(EtcdClientError) -> [EtcdKeyValue] {
    let kv = Etcdserverpb_KV.Client(wrapping: grpc)
    var request = Etcdserverpb_RangeRequest()
    let start = Array(prefix.utf8)
    request.key = start.isEmpty ? Data([0]) : Data(start)
    request.rangeEnd = Data(Self.prefixEnd(start))
    request.serializable = serializable
    let r = try await call { try await kv.range(request, options: self.options(timeout: self.configuration.requestTimeout)) }
    return r.kvs.map {
      EtcdKeyValue(
        key: [UInt8]($0.key), value: [UInt8]($0.value), createRevision: $0.createRevision,
        modRevision: $0.modRevision, version: $0.version)
    }
  }

  /// Every key (keys only, no values) at `revision`, in key order, read `batch` at a time: a
  /// read of the whole key space that never holds more than one batch.
  public func forEachKey(
    revision: Int64, batch: Int64 = 10_000, _ body: (Data) -> Void
  ) async throws(EtcdClientError) {
    let kv = Etcdserverpb_KV.Client(wrapping: grpc)
    var start = Data([0])
    while true {
      var request = Etcdserverpb_RangeRequest()
      request.key = start
      request.rangeEnd = Data([0])
      request.keysOnly = true
      request.limit = batch
      request.revision = revision
      let r = try await call { try await kv.range(request, options: self.options(timeout: self.configuration.requestTimeout)) }
      for item in r.kvs { body(item.key) }
      guard r.more, let last = r.kvs.last?.key else { return }
      start = last + Data([0])
    }
  }

  /// Deletes every key starting with `prefix`; returns how many.
  @discardableResult
  public func deletePrefix(_ prefix: String) async throws(EtcdClientError) -> Int64 {
    let kv = Etcdserverpb_KV.Client(wrapping: grpc)
    var request = Etcdserverpb_DeleteRangeRequest()
    let start = Array(prefix.utf8)
    request.key = start.isEmpty ? Data([0]) : Data(start)
    request.rangeEnd = Data(Self.prefixEnd(start))
    let r = try await call { try await kv.deleteRange(request, options: self.options(timeout: self.configuration.requestTimeout)) }
    return r.deleted
  }

  /// The end of the range of keys that start with `prefix` (`[0]`, meaning "to the end", when
  /// no such key exists).
  static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
    var end = prefix
    while let last = end.last {
      if last < 0xff {
        end[end.count - 1] = last + 1
        return end
      }
      end.removeLast()
    }
    return [0]
  }
}
