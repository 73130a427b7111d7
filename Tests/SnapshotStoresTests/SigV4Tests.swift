import Crypto
import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import Testing

/// Signature V4 checked on its own (moto does not check signatures by default): against the
/// worked examples of S3's documentation ("Signature Calculations for the Authorization Header:
/// Transferring Payload in a Single Chunk") and against botocore's `S3SigV4Auth`.
@Suite struct SigV4Tests {
  // The documentation's example credentials (not a real key).
  static let docCredentials = S3Credentials(
    accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: Secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
  static let docDate = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
  static let host = "examplebucket.s3.amazonaws.com"

  func authorization(
    _ method: String, _ path: String, query: [(String, String)] = [], headers: [(String, String)] = [],
    payloadHash: String = SigV4Signer.emptyPayloadHash
  ) -> String {
    let signer = SigV4Signer(credentials: Self.docCredentials, region: "us-east-1")
    let added = signer.sign(
      method: method, path: path, query: query,
      headers: [("host", Self.host)] + headers + [("x-amz-content-sha256", payloadHash)], payloadHash: payloadHash,
      date: Self.docDate)
    return added.first { $0.0 == "authorization" }!.1
  }

  @Test func getObjectWithRange() {
    #expect(
      authorization("GET", "/test.txt", headers: [("range", "bytes=0-9")])
        == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
  }

  @Test func putObjectWithAnEncodedKey() {
    let body = Array("Welcome to Amazon S3.".utf8)
    let hash = SHA256.hash(data: body).hexString
    #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
    let value = authorization(
      "PUT", "/" + S3Path.encode("test$file.text", keepSlash: true),
      headers: [("date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
      payloadHash: hash)
    #expect(value.hasSuffix("Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"))
    #expect(value.contains("SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class"))
  }

  @Test func getBucketLifecycle() {
    #expect(
      authorization("GET", "/", query: [("lifecycle", "")])
        .hasSuffix("Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"))
  }

  @Test func listObjects() {
    #expect(
      authorization("GET", "/", query: [("max-keys", "2"), ("prefix", "J")])
        .hasSuffix("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"))
  }

  @Test func pathsEncodeRKENamesOnce() {
    #expect(
      S3Path.encode("prod/rke_etcd_snapshot_2020-10-15T16:47:24+02:00.zip", keepSlash: true)
        == "prod/rke_etcd_snapshot_2020-10-15T16%3A47%3A24%2B02%3A00.zip")
    #expect(S3Path.encode("a b~c", keepSlash: false) == "a%20b~c")
    #expect(S3Path.encode("x/y", keepSlash: false) == "x%2Fy")
  }

  /// The same requests signed by botocore (installed with awscli) at a fixed time give the same
  /// Authorization header, for keys with `+`, `:` and spaces, queries and a session token.
  @Test func agreesWithBotocore() async throws {
    struct Case {
      var method: String
      var key: String
      var query: [(String, String)]
      var body: String
      var token: String?
    }
    let cases = [
      Case(method: "PUT", key: "prod/rke_etcd_snapshot_2020-10-15T16:47:24+02:00.zip", query: [], body: "archive bytes", token: nil),
      Case(method: "GET", key: "folder with space/2020-10-15T14:53:26Z_etcd.manifest.json", query: [], body: "", token: nil),
      Case(method: "PUT", key: "a+b:c d.zip", query: [("partNumber", "3"), ("uploadId", "abc/def+ghi=")], body: "part", token: "session/token+x"),
      Case(method: "GET", key: "", query: [("list-type", "2"), ("prefix", "prod/"), ("delimiter", "/"), ("continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")], body: "", token: nil),
    ]
    let credentials = S3Credentials(accessKey: "LIFEBOATTESTKEY", secretKey: Secret("secret+/key=with:odd chars"))
    let date = Date(timeIntervalSince1970: 1_764_000_000)
    for c in cases {
      let path = "/" + S3Path.encode("mybucket", keepSlash: false) + (c.key.isEmpty ? "" : "/" + S3Path.encode(c.key, keepSlash: true))
      var creds = credentials
      creds.sessionToken = c.token.map(Secret.init)
      let signer = SigV4Signer(credentials: creds, region: "eu-central-1")
      let body = Array(c.body.utf8)
      let hash = body.isEmpty ? SigV4Signer.emptyPayloadHash : SHA256.hash(data: body).hexString
      let ours = signer.sign(
        method: c.method, path: path, query: c.query, headers: [("host", "127.0.0.1:9000")], payloadHash: hash, date: date
      ).first { $0.0 == "authorization" }!.1

      let url = "http://127.0.0.1:9000" + path + (c.query.isEmpty ? "" : "?" + c.query.map { "\(S3Path.encode($0.0, keepSlash: false))=\(S3Path.encode($0.1, keepSlash: false))" }.joined(separator: "&"))
      let script = """
        import sys, datetime
        from unittest import mock
        import botocore.auth
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        method, url, body, token = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4] or None
        creds = Credentials("LIFEBOATTESTKEY", "secret+/key=with:odd chars", token)
        request = AWSRequest(method=method, url=url, data=body)
        fixed = datetime.datetime(2025, 11, 24, 16, 0, 0)
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=fixed):
            S3SigV4Auth(creds, "s3", "eu-central-1").add_auth(request)
        print(request.headers["Authorization"].replace(", ", ","))
        """
      let result = try await ProcessRunner.run("/usr/bin/env", ["python3", "-c", script, c.method, url, c.body, c.token ?? ""])
      #expect(result.status == 0, "\(result.stderr)")
      #expect(ours == result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "\(c.method) \(c.key)")
    }
  }
}
