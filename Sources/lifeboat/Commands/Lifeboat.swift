import ArgumentParser
import LifeboatCore

struct Lifeboat: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lifeboat",
    abstract: "etcd backup and disaster recovery for Kubernetes clusters, compatible with RKE.",
    discussion: """
      Exit codes: 0 success; 1 failure; 2 usage or bad input; 3 snapshot not found; \
      4 verification failed; 5 cluster or node unreachable or unhealthy; 6 storage error; \
      7 restore failed, every node rolled back; 8 restore failed, rollback incomplete; \
      9 another restore is in progress or was interrupted (see snapshot restore --recover).
      """,
    version: LifeboatVersion.current,
    subcommands: [Snapshot.self, Local.self, AgentCommand.self, StatusCommand.self]
  )
}

struct Snapshot: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Save, list, inspect, verify, drill and delete etcd snapshots, locally and in S3; restore and prune clusters.",
    subcommands: [SnapshotSave.self, SnapshotList.self, SnapshotInspect.self, SnapshotVerify.self, SnapshotDelete.self, SnapshotRestore.self, SnapshotPrune.self, SnapshotDrillCommand.self]
  )
}

struct Local: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "A local etcd cluster on 127.0.0.x to try Lifeboat on (the embedded default).",
    subcommands: [LocalUp.self, LocalEnv.self, LocalDown.self]
  )
}
