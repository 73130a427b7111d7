import Foundation
import LifeboatCore

/// The recurring run of one slot, carried out by the agent holding the lock (`holder`, its own
/// node): save (one pass, uploaded to S3 once), upload what earlier runs could not, have every
/// other node copy and prune its own directory, prune the holder's directory and S3, and copy to
/// every reachable node the kept snapshots it missed.
extension ClusterEngine {
  public struct RecurringReport: Sendable {
    public var saved: NodeSnapshot
    /// What failed after the snapshot was saved (the next run catches up).
    public var problems: [String]
  }

  /// Throws only when no snapshot was saved; problems after the save are in the report.
  public func recurringRun(name: SnapshotName, holder: any Node) async throws(LifeboatError) -> RecurringReport {
    // Never beside a restore, on any node: the run is skipped (and counted) instead.
    _ = try await reachable(refusingDuringRestore: "recurring run")
    let hasS3 = context.config.backup.s3 != nil
    let peers = nodes.filter { $0.address != holder.address }
    var problems: [String] = []
    var saved: NodeSaveReport
    do throws(LifeboatError) {
      saved = try await holder.saveSnapshot(NodeSaveRequest(name: name.value, upload: hasS3))
    } catch {
      // S3 refused before anything was written (the save checks the bucket first; a storage
      // error): keep the snapshot locally all the same; the next run uploads it.
      let written = ((try? await holder.listSnapshots()) ?? []).contains { $0.name == name.value }
      guard hasS3, error.kind == .storage, !written else { throw error }
      saved = try await holder.saveSnapshot(NodeSaveRequest(name: name.value, upload: false))
      saved.uploadError = error.message
    }
    if let uploadError = saved.uploadError { problems.append("upload: \(uploadError)") } else if hasS3 {
      do throws(LifeboatError) {
        let caught = try await catchUpS3(from: holder)
        if !caught.isEmpty { logger.info("uploaded earlier snapshots that had not reached S3: \(caught.joined(separator: ", "))") }
      } catch { problems.append("catching up uploads: \(error.message)") }
    }
    let copied = await copy(name, from: holder, to: peers, pruneAfter: true)
    problems += copied.failures.map(\.message)
    do throws(LifeboatError) {
      let own = ClusterEngine(context: context, nodes: [holder], logger: logger, check: check, progress: progress)
      problems += try await own.prune(dryRun: false, includeManual: false, includeS3: saved.uploadError == nil).failures
    } catch { problems.append("prune: \(error.message)") }
    problems += await catchUpPeers(from: holder, to: peers).map(\.message)
    return RecurringReport(saved: saved.snapshot, problems: problems)
  }
}
