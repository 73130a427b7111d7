import EtcdClient
import Foundation
import LifeboatCore
import Metrics

/// The cluster's last drill, kept in etcd at `/lifeboat/drill/<cluster>` by the agent that ran
/// it (written while it holds the lock): what `status` and every agent report.
public struct DrillRecord: Codable, Sendable, Equatable {
  /// When it ended.
  public var time: Date
  /// The node that ran it.
  public var node: String
  /// The snapshot drilled (nil when there was none to drill).
  public var snapshot: String?
  public var passed: Bool
  /// The first check that failed, or what stopped the drill: one line.
  public var failure: String?
  public var durationSeconds: Double
  /// The last drill that passed (this one, or carried over from the record before).
  public var lastSuccess: Date?
  /// Where the restore tool and the throwaway etcd ran.
  public var runner: String?

  public init(
    time: Date, node: String, snapshot: String?, passed: Bool, failure: String?, durationSeconds: Double, lastSuccess: Date?
  ) {
    self.time = time
    self.node = node
    self.snapshot = snapshot
    self.passed = passed
    self.failure = failure
    self.durationSeconds = durationSeconds
    self.lastSuccess = lastSuccess
  }

  static func key(cluster: String) -> String { "/lifeboat/drill/\(cluster)" }

  /// The cluster's last drill as etcd holds it (nil: none recorded), read through the first
  /// member that answers.
  public static func read(cluster: String, connection: EtcdConnection) async throws(LifeboatError) -> DrillRecord? {
    let key = key(cluster: cluster)
    var problems: [String] = []
    for endpoint in connection.endpoints {
      do {
        let found = try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { client in
          try await client.range(prefix: key).first { String(decoding: $0.key, as: UTF8.self) == key }
        }
        guard let found else { return nil }
        guard let record = decode(found.value) else {
          throw LifeboatError(.verification, "the last drill's record in etcd (\(key)) is not readable")
        }
        return record
      } catch let error as LifeboatError {
        throw error
      } catch {
        problems.append("\(endpoint): \(error)")
      }
    }
    throw .unavailable("cannot read the last drill from etcd: \(problems.joined(separator: "; "))")
  }

  static func decode(_ bytes: some Collection<UInt8>) -> DrillRecord? {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    return try? decoder.decode(DrillRecord.self, from: Data(bytes))
  }

  func encoded() -> String {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = .sortedKeys
    return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
  }

  /// One line: "passed" or "FAILED (check: detail)", the snapshot, where and when. What etcd
  /// holds is printed as one line without control characters (anyone with write access to
  /// etcd could have put it there).
  public var summary: String {
    let formatter = ISO8601DateFormatter()
    let result = passed ? "passed" : "FAILED: \(Self.oneLine(failure ?? "unknown"))"
    return "\(formatter.string(from: time))  \(Self.oneLine(snapshot ?? "no snapshot", limit: 200))  \(result)  (on \(Self.oneLine(node, limit: 100)), \(String(format: "%.1f", durationSeconds)) s)"
  }

  /// `text` on one line, control and format characters dropped, at most `limit` characters.
  public static func oneLine(_ text: String, limit: Int = 500) -> String {
    let kept = text.unicodeScalars.map { scalar -> String in
      if scalar == "\n" || scalar == "\r" || scalar == "\t" { return " " }
      switch scalar.properties.generalCategory {
      case .control, .format, .lineSeparator, .paragraphSeparator: return ""
      default: return String(scalar)
      }
    }.joined()
    return kept.count > limit ? String(kept.prefix(limit)) + "..." : kept
  }
}

/// How an agent's last attempt at a drill slot ended.
public enum DrillResult: Codable, Sendable, Equatable, CustomStringConvertible {
  /// This agent drilled the snapshot and every check held.
  case passed
  /// This agent drilled and a check failed, or the drill could not be carried out.
  case failed(message: String)
  /// Another agent drilled the slot.
  case runByAnotherAgent
  /// Not run: no quorum, so no lock (a drill waits for a healthy cluster).
  case noQuorum
  /// Not run: the previous drill is still in progress, or a restore has files on this node.
  case skipped(reason: String)
  /// Waiting: a recurring snapshot run holds the cluster's lock.
  case waiting(holder: String)

  public var isFailure: Bool { if case .failed = self { true } else { false } }

  public var description: String {
    switch self {
    case .passed: "passed"
    case .failed(let message): "FAILED: \(message)"
    case .runByAnotherAgent: "run by another agent"
    case .noQuorum: "not run: no quorum"
    case .skipped(let reason): "skipped: \(reason)"
    case .waiting(let holder): "waiting: the cluster's lock is held by \(holder)"
    }
  }
}

/// What `GET /v1/drill`, `/healthz` and `lifeboat status` show of an agent's drills.
public struct DrillState: Codable, Sendable, Equatable {
  public var enabled: Bool
  public var schedule: String
  public var nextRun: Date?
  public var running = false
  /// This agent's last attempt.
  public var lastAttempt: Date?
  public var lastResult: DrillResult?
  /// The cluster's last drill, as this agent last read or wrote it.
  public var last: DrillRecord?
  /// Drills this agent carried out, and those of them that failed.
  public var runs = 0
  public var failures = 0
}

/// The agent's drill metrics (swift-metrics; exported at `/metrics`).
struct DrillMetrics {
  let runs = Counter(label: "lifeboat_drill_runs_total")
  let failures = Counter(label: "lifeboat_drill_failures_total")
  let lastSuccess = Gauge(label: "lifeboat_drill_last_success_timestamp_seconds")
  let duration = Gauge(label: "lifeboat_drill_duration_seconds")
}
