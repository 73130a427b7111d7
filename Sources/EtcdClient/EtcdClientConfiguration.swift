/// How an `EtcdClient` connects and how long it waits. Every field has a documented default.
public struct EtcdClientConfiguration: Sendable {
  /// TLS material; nil means plaintext for `http://` endpoints and system trust roots for `https://`.
  public var tls: EtcdTLS?
  /// Deadline of each unary request (status, member list, KV). Default 5 seconds.
  public var requestTimeout: Duration
  /// How long a snapshot stream may stay silent before it is abandoned. There is no limit on
  /// the stream's total duration: large databases take as long as they take. Default 30 seconds.
  public var snapshotIdleTimeout: Duration
  /// Deadline of `HashKV`, which reads every key and revision the member holds: seconds on
  /// small databases, minutes on etcd's 8 GiB maximum (a 5-second deadline failed every check
  /// of an 8 GiB restore). Default 10 minutes.
  public var hashTimeout: Duration
  /// Largest message accepted or sent. Default 64 MiB (snapshot chunks are 32 KiB).
  public var maxMessageBytes: Int
  /// HTTP/2 flow-control window: how much etcd may send ahead of what Lifeboat has consumed.
  /// It bounds the memory a slow disk can make the stream use. Default 2 MiB: full speed on a
  /// LAN (2 MiB per round trip is 400 MB/s at 5 ms); raise it for far-away members.
  public var windowSize: Int

  public init(
    tls: EtcdTLS? = nil, requestTimeout: Duration = .seconds(5), snapshotIdleTimeout: Duration = .seconds(30),
    maxMessageBytes: Int = 64 << 20, windowSize: Int = 2 << 20, hashTimeout: Duration = .seconds(600)
  ) {
    self.tls = tls
    self.requestTimeout = requestTimeout
    self.hashTimeout = hashTimeout
    self.snapshotIdleTimeout = snapshotIdleTimeout
    self.maxMessageBytes = maxMessageBytes
    self.windowSize = windowSize
  }
}
