import Foundation
import Testing

/// Every integration test starts real etcd members; they run one at a time so that elections
/// on this 2-core machine are not starved.
@Suite(.serialized) enum Integration {}
