import Crypto
import Foundation
import LifeboatCore
import Logging

/// A bucket (and folder) of an S3-compatible object store. Objects are `[folder/]<key>`;
/// writes are multipart uploads that become visible only when completed (small objects: one
/// PUT); reads stream with Range requests and resume where a broken download stopped.
public final class S3Store: SnapshotStore {
  public let configuration: S3Configuration
  let transport: any S3Transport
  let logger: Logger
  private let http: AsyncHTTPTransport?

  public init(configuration: S3Configuration, transport: any S3Transport, logger: Logger) {
    self.configuration = configuration
    self.transport = transport
    self.logger = logger
    self.http = nil
  }

  /// A store for `configuration` with its own HTTP client; call `shutdown()` when done. This is
  /// the one place the request path is assembled: logging → retries → signing → HTTP.
  public init(configuration: S3Configuration, logger: Logger = Logger(label: "lifeboat.s3")) throws(LifeboatError) {
    let http = try AsyncHTTPTransport(
      endpoint: configuration.endpoint, customCA: configuration.customCA, proxy: configuration.proxy,
      timeout: configuration.requestTimeout)
    self.transport = LoggingTransport(
      base: RetryingTransport(
        base: SigningTransport(
          base: http, credentials: configuration.credentials, region: configuration.signingRegion,
          unsignedChecksummedPayloads: configuration.endpoint.secure), policy: configuration.retry, logger: logger),
      logger: logger)
    self.configuration = configuration
    self.logger = logger
    self.http = http
  }

  /// Closes the HTTP client of a store made with `init(configuration:logger:)`.
  public func shutdown() async {
    await http?.shutdown()
  }

  /// Runs `body` with a store for `configuration`, its HTTP client shut down afterwards.
  public static func with<R>(
    _ configuration: S3Configuration, logger: Logger = Logger(label: "lifeboat.s3"),
    _ body: (S3Store) async throws -> R
  ) async throws -> R {
    let store = try S3Store(configuration: configuration, logger: logger)
    return try await withCleanup({ try await body(store) }, cleanup: { await store.shutdown() })
  }

  public var location: String { configuration.location }
  var endpoint: S3Endpoint { configuration.endpoint }
  var bucket: String { configuration.bucket }

  // MARK: - Requests

  /// A request for an object (`key` is the full object key) or for the bucket (`key` nil).
  func request(
    _ method: String, objectKey: String?, query: [(String, String)] = [], headers: [(String, String)] = [],
    body: [UInt8] = [], operation: String
  ) -> S3HTTPRequest {
    let encodedKey = objectKey.map { S3Path.encode($0, keepSlash: true) }
    let host: String
    let path: String
    if configuration.pathStyle {
      host = endpoint.hostHeader(endpoint.host)
      path = "/" + S3Path.encode(bucket, keepSlash: false) + (encodedKey.map { "/" + $0 } ?? "")
    } else {
      host = endpoint.hostHeader("\(bucket).\(endpoint.host)")
      path = "/" + (encodedKey ?? "")
    }
    return S3HTTPRequest(
      method: method, host: host, path: path, query: query, headers: headers, body: body, operation: operation)
  }

  func send(_ request: S3HTTPRequest) async throws(LifeboatError) -> S3HTTPResponse {
    do { return try await transport.send(request) } catch {
      throw .storage("\(request.operation) at \(location): \(error.message)")
    }
  }

  /// One line for an unsuccessful answer, naming endpoint, bucket and what was asked.
  func failure(_ response: S3HTTPResponse, _ operation: String, key: String? = nil) -> LifeboatError {
    let (code, message) = S3XML.error(response.body)
    let what = "\(operation) at \(endpoint) (bucket \(bucket))"
    switch (response.status, code) {
    case (404, "NoSuchBucket"):
      return .storage("bucket \(bucket) not found at \(endpoint)")
    case (404, _):
      return .notFound("\(location)/\(key ?? "") not found")
    case (301, _), (400, "AuthorizationHeaderMalformed"), (400, "IllegalLocationConstraintException"):
      return .storage("\(what): the bucket is in another region than \(configuration.signingRegion) (set --region)")
    case (400, "InvalidRequest") where (message ?? "").contains("Server Side Encryption") || (message ?? "").contains("customer"):
      return .storage("\(what): \(key ?? "the object") is encrypted with a customer key (SSE-C): give --s3-sse-customer-key-file")
    case (403, _) where configuration.serverSideEncryption?.isCustomerKey == true && (message ?? "").contains("MD5"):
      return .storage("\(what): the SSE-C key (--s3-sse-customer-key-file) is not the one \(key ?? "the object") was written with")
    case (400, "KMS.NotFoundException"), (400, "KMSNotFoundException"), (403, "KMS.AccessDeniedException"):
      return .storage("\(what): the KMS key of --s3-sse-kms-key-id cannot be used: \(message ?? code ?? "")")
    case (401, _), (403, _):
      let reason = code ?? "HTTP \(response.status)"
      return .storage("access denied: \(what) answered \(reason): check the access key and secret key")
    default:
      let detail = [code, message].compactMap { $0 }.joined(separator: ": ")
      return .storage("\(what) failed: HTTP \(response.status)\(detail.isEmpty ? "" : " \(detail)")")
    }
  }

  /// Checks that the bucket exists and the keys open it (HeadBucket): a clear error before any data moves.
  public func checkWritable() async throws(LifeboatError) {
    let response = try await send(request("HEAD", objectKey: nil, operation: "check bucket"))
    if response.status == 404 { throw .storage("bucket \(bucket) not found at \(endpoint)") }
    guard response.isSuccess else { throw failure(response, "check bucket") }
  }

  /// Creates the bucket (tests and first-time setups).
  public func createBucket() async throws(LifeboatError) {
    let response = try await send(request("PUT", objectKey: nil, operation: "create bucket"))
    guard response.isSuccess else { throw failure(response, "create bucket") }
  }

  // MARK: - SnapshotStore

  public func makeWriter(for key: String, contentType: String, replace: Bool) async throws(LifeboatError)
    -> any ObjectWriter
  {
    try Self.validate(key: key)
    if !replace, try await exists(key) {
      throw .usage("\(location)/\(key) already exists; choose another name")
    }
    return S3MultipartWriter(store: self, key: key, contentType: contentType)
  }

  public func read(
    _ key: String, range: Range<UInt64>?, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    try Self.validate(key: key)
    if let range, range.isEmpty { return }
    let objectKey = configuration.objectKey(key)
    var offset = range?.lowerBound ?? 0
    var attempt = 1
    while true {
      let startedAt = offset
      var headers = sseAccess
      if let range {
        headers.append(("range", "bytes=\(offset)-\(range.upperBound - 1)"))
      } else if offset > 0 {
        headers.append(("range", "bytes=\(offset)-"))
      }
      let operation = "download \(key)"
      do {
        let response = try await transport.stream(request("GET", objectKey: objectKey, headers: headers, operation: operation)) {
          (chunk) async throws(LifeboatError) in
          offset += UInt64(chunk.count)
          try await body(chunk)
        }
        guard response.isSuccess else { throw failure(response, operation, key: key) }
        if let range, offset < range.upperBound {
          throw LifeboatError.verification("\(location)/\(key) ended at byte \(offset), before \(range.upperBound)")
        }
        return
      } catch let error as S3TransportFailure {
        // Failures before the first byte were already retried by RetryingTransport; here a
        // download that broke off after making progress resumes where it stopped.
        if offset > startedAt { attempt = 1 }
        guard error.transient, offset > startedAt, attempt < configuration.retry.attempts else {
          throw .storage("\(operation) at \(location): \(error.message)")
        }
        logger.notice("S3 \(operation): \(error.message); resuming at byte \(offset)")
        try? await Task.sleep(for: configuration.retry.delay(after: attempt))
        attempt += 1
      } catch let error as LifeboatError {
        throw error
      } catch {
        throw .storage("\(operation) at \(location): \(error)")
      }
    }
  }

  public func stat(_ key: String) async throws(LifeboatError) -> StoredObject {
    try Self.validate(key: key)
    let response = try await send(
      request("HEAD", objectKey: configuration.objectKey(key), headers: sseAccess, operation: "look up \(key)"))
    guard response.isSuccess else { throw failure(response, "look up \(key)", key: key) }
    let size = response.header("content-length").flatMap { UInt64($0) } ?? 0
    let modified = response.header("last-modified").flatMap(Self.httpDate) ?? Date(timeIntervalSince1970: 0)
    let until = response.header("x-amz-object-lock-retain-until-date").map(S3XML.date)
    let hold = response.header("x-amz-object-lock-legal-hold")?.uppercased() == "ON"
    let lock = until != nil || hold
      ? ObjectLockState(mode: response.header("x-amz-object-lock-mode"), retainUntil: until, legalHold: hold) : nil
    return StoredObject(key: key, size: size, modified: modified, lock: lock)
  }

  public func list() async throws(LifeboatError) -> [StoredObject] {
    let prefix = configuration.folder.isEmpty ? "" : configuration.folder + "/"
    var objects: [StoredObject] = []
    var token: String?
    repeat {
      var query = [("list-type", "2"), ("delimiter", "/"), ("prefix", prefix)]
      if let token { query.append(("continuation-token", token)) }
      let response = try await send(request("GET", objectKey: nil, query: query, operation: "list objects"))
      guard response.isSuccess else { throw failure(response, "list objects") }
      let result = try S3XML.decode(S3XML.ListBucketResult.self, response.body, what: "list objects")
      for object in result.contents ?? [] where object.key.hasPrefix(prefix) && object.key.count > prefix.count {
        objects.append(
          StoredObject(key: String(object.key.dropFirst(prefix.count)), size: object.size, modified: S3XML.date(object.lastModified)))
      }
      token = result.isTruncated == true ? result.nextContinuationToken : nil
    } while token != nil
    return objects.sorted { $0.key < $1.key }
  }

  public func delete(_ key: String) async throws(LifeboatError) {
    try Self.validate(key: key)
    let response = try await send(request("DELETE", objectKey: configuration.objectKey(key), operation: "delete \(key)"))
    guard response.isSuccess || response.status == 404 && S3XML.error(response.body).code != "NoSuchBucket" else {
      throw failure(response, "delete \(key)", key: key)
    }
  }

  // MARK: - Objects and multipart uploads

  /// Server-side encryption headers of a new object, and of requests for its data (SSE-C).
  var sseCreation: [(String, String)] { configuration.serverSideEncryption?.creationHeaders ?? [] }
  var sseAccess: [(String, String)] { configuration.serverSideEncryption?.accessHeaders ?? [] }

  /// One part as uploaded: its number, ETag and CRC-32C (when checksums are on).
  struct UploadedPart: Sendable {
    var number: Int
    var etag: String
    var crc32c: String?
  }

  /// Integrity headers of a body: CRC-32C when on; Content-MD5 when a lock needs one and the
  /// checksum is off (S3 refuses locked writes with neither).
  func integrityHeaders(_ body: [UInt8]) -> [(String, String)] {
    if configuration.checksum == .crc32c {
      // The SDKs' pair: the algorithm (what S3 asks of locked writes) and the value.
      return [("x-amz-sdk-checksum-algorithm", "CRC32C"), ("x-amz-checksum-crc32c", S3Checksum.crc32c(body))]
    }
    if configuration.objectLock != nil { return [("content-md5", Data(Insecure.MD5.hash(data: body)).base64EncodedString())] }
    return []
  }

  var lockHeaders: [(String, String)] { configuration.objectLock?.headers(now: Date()) ?? [] }

  func putObject(_ key: String, _ body: [UInt8], contentType: String) async throws(LifeboatError) {
    let response = try await send(
      request("PUT", objectKey: configuration.objectKey(key),
        headers: [("content-type", contentType)] + sseCreation + lockHeaders + integrityHeaders(body), body: body,
        operation: "upload \(key)"))
    guard response.isSuccess else { throw failure(response, "upload \(key)", key: key) }
  }

  func createMultipartUpload(_ key: String, contentType: String) async throws(LifeboatError) -> String {
    let response = try await send(
      request("POST", objectKey: configuration.objectKey(key), query: [("uploads", "")],
        headers: [("content-type", contentType)] + sseCreation + lockHeaders
          + (configuration.checksum == .crc32c ? [("x-amz-checksum-algorithm", "CRC32C")] : []),
        operation: "start upload of \(key)"))
    guard response.isSuccess else { throw failure(response, "start upload of \(key)", key: key) }
    return try S3XML.decode(S3XML.InitiateMultipartUploadResult.self, response.body, what: "start upload").uploadId
  }

  func uploadPart(_ key: String, uploadId: String, number: Int, _ body: [UInt8]) async throws(LifeboatError) -> UploadedPart {
    let operation = "upload part \(number) of \(key)"
    let integrity = integrityHeaders(body)
    let response = try await send(
      request("PUT", objectKey: configuration.objectKey(key), query: [("partNumber", "\(number)"), ("uploadId", uploadId)],
        headers: sseAccess + integrity, body: body, operation: operation))
    guard response.isSuccess, let etag = response.header("etag") else { throw failure(response, operation, key: key) }
    return UploadedPart(number: number, etag: etag, crc32c: integrity.first { $0.0 == "x-amz-checksum-crc32c" }?.1)
  }

  func completeMultipartUpload(
    _ key: String, uploadId: String, parts: [UploadedPart], size: UInt64
  ) async throws(LifeboatError) {
    let document = S3XML.CompleteMultipartUpload(parts: parts.map { .init(partNumber: $0.number, eTag: $0.etag, checksumCRC32C: $0.crc32c) })
    let operation = "complete upload of \(key)"
    var attempt = 1
    while true {
      let response = try await send(
        request("POST", objectKey: configuration.objectKey(key), query: [("uploadId", uploadId)],
          headers: [("content-type", "application/xml")], body: S3XML.encode(document, root: "CompleteMultipartUpload"),
          operation: operation))
      let code = S3XML.error(response.body).code
      if response.isSuccess && code == nil { return }
      // S3 may answer 200 and report an error in the body: that one is worth another attempt.
      if response.isSuccess && attempt < configuration.retry.attempts {
        try? await Task.sleep(for: configuration.retry.delay(after: attempt))
        attempt += 1
        continue
      }
      // A retried Complete whose first attempt succeeded unseen finds the upload gone: the
      // object is there, complete, if its size is ours.
      if response.status == 404, code == "NoSuchUpload", let object = try? await stat(key), object.size == size {
        return
      }
      throw failure(response, operation, key: key)
    }
  }

  /// Aborts an upload. Runs in its own task, so that it is sent even when the caller was
  /// cancelled (Ctrl-C): the whole point is to leave no unfinished upload behind.
  func abortMultipartUpload(_ key: String, uploadId: String) async {
    let operation = "abort upload of \(key)"
    let request = self.request(
      "DELETE", objectKey: configuration.objectKey(key), query: [("uploadId", uploadId)], operation: operation)
    let transport = self.transport
    let logger = self.logger
    await Task {
      do {
        let response = try await transport.send(request)
        if !response.isSuccess && response.status != 404 {
          logger.warning("S3 \(operation): HTTP \(response.status); the bucket may keep an unfinished upload")
        }
      } catch {
        logger.warning("S3 \(operation): \(error); the bucket may keep an unfinished upload")
      }
    }.value
  }

  /// Aborts uploads of `key` other than `keep`: a CreateMultipartUpload whose answer was lost
  /// and retried leaves one behind.
  func abortStrayUploads(_ key: String, keeping keep: String?) async {
    let objectKey = configuration.objectKey(key)
    guard let uploads = try? await unfinishedUploads(prefix: objectKey) else { return }
    for upload in uploads where upload.key == objectKey && upload.uploadId != keep {
      await abortMultipartUpload(key, uploadId: upload.uploadId)
    }
  }

  /// Multipart uploads not completed or aborted under the folder: (object key, upload id).
  public func unfinishedUploads(prefix: String? = nil) async throws(LifeboatError) -> [(key: String, uploadId: String)] {
    try await listUploads(prefix: prefix).map { ($0.key, $0.uploadId) }
  }

  /// ListMultipartUploads under `prefix` (default: the folder's).
  func listUploads(prefix: String? = nil) async throws(LifeboatError) -> [S3XML.ListMultipartUploadsResult.Upload] {
    let prefix = prefix ?? (configuration.folder.isEmpty ? "" : configuration.folder + "/")
    let response = try await send(
      request("GET", objectKey: nil, query: [("uploads", ""), ("prefix", prefix)], operation: "list unfinished uploads"))
    guard response.isSuccess else { throw failure(response, "list unfinished uploads") }
    return try S3XML.decode(S3XML.ListMultipartUploadsResult.self, response.body, what: "list uploads").uploads ?? []
  }

  /// Aborts the folder's multipart uploads started before `cutoff`: what a save killed with -9
  /// left (a running save's upload is younger). Returns "<key> (started <date>)" for each.
  public func abortUploads(startedBefore cutoff: Date) async throws(LifeboatError) -> [String] {
    let prefix = configuration.folder.isEmpty ? "" : configuration.folder + "/"
    var aborted: [String] = []
    for upload in try await listUploads() {
      guard let initiated = upload.initiated.map(S3XML.date), initiated < cutoff, upload.key.hasPrefix(prefix) else { continue }
      let key = String(upload.key.dropFirst(prefix.count))
      await abortMultipartUpload(key, uploadId: upload.uploadId)
      aborted.append("\(location)/\(key) (started \(S3ObjectLock.iso8601(initiated)))")
    }
    return aborted
  }

  static func httpDate(_ text: String) -> Date? {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "GMT")
    formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
    return formatter.date(from: text)
  }
}
