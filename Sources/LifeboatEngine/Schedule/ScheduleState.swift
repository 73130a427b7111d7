import Foundation
import LifeboatCore
import Metrics

/// How an agent's last recurring run ended.
public enum RunResult: Codable, Sendable, Equatable, CustomStringConvertible {
  /// This agent saved the slot's snapshot and everything after it worked.
  case ok
  /// No quorum: this agent saved its own member's snapshot, locally.
  case noQuorum
  /// Another agent holds the lock or already ran the slot.
  case runByAnotherAgent
  /// Not run: the previous run is still in progress.
  case skippedOverlap
  /// Not run: a restore has files on this node.
  case pausedForRestore
  /// Waiting: a drill holds the cluster's lock (`holder`); the slot is tried again shortly.
  case waiting(holder: String)
  /// The run failed (`saved`: the snapshot was saved and only what came after failed).
  case failed(message: String, saved: Bool)

  public var isFailure: Bool { if case .failed = self { true } else { false } }

  public var description: String {
    switch self {
    case .ok: "ok"
    case .noQuorum: "no-quorum"
    case .runByAnotherAgent: "run by another agent"
    case .skippedOverlap: "skipped: the previous run is still in progress"
    case .pausedForRestore: "paused: a restore is in progress"
    case .waiting(let holder): "waiting: the cluster's lock is held by \(holder)"
    case .failed(let message, _): "failed: \(message)"
    }
  }
}

/// What `GET /v1/schedule` and `lifeboat status` show.
public struct ScheduleState: Codable, Sendable, Equatable {
  public var enabled: Bool
  public var schedule: String
  public var nextRun: Date?
  public var lastRun: Date?
  public var lastResult: RunResult?
  public var lastSnapshot: String?
  public var lastSuccess: Date?
  public var lastDurationSeconds: Double?
  public var lastSizeBytes: UInt64?
  /// Runs this agent carried out, failed, and skipped (a run still in progress, a restore).
  public var runs: Int = 0
  public var failures: Int = 0
  public var skips: Int = 0
  public var running: Bool = false
}

/// The agent's recurring-run metrics (swift-metrics; exported by the agent at `/metrics`).
struct ScheduleMetrics {
  let runs = Counter(label: "lifeboat_snapshot_runs_total")
  let failures = Counter(label: "lifeboat_snapshot_failures_total")
  let skips = Counter(label: "lifeboat_snapshot_skips_total")
  let lastSuccess = Gauge(label: "lifeboat_snapshot_last_success_timestamp_seconds")
  let lastDuration = Gauge(label: "lifeboat_snapshot_last_duration_seconds")
  let lastSize = Gauge(label: "lifeboat_snapshot_last_size_bytes")
  let kept = Gauge(label: "lifeboat_snapshots_kept")
}
