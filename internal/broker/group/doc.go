// Package group is the consumer-group coordinator of the bundled broker: it
// serves Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup) and the offset APIs (OffsetCommit, OffsetFetch, OffsetDelete,
// TxnOffsetCommit),
// plus DescribeGroups, ListGroups and DeleteGroups, with the semantics of
// Apache Kafka's GroupCoordinator (group-coordinator module, ClassicGroup).
//
// The server package decodes a request with kmsg, calls the matching
// [Coordinator] method and writes the returned response, which always has the
// request's version. No handler panics on any input.
//
// # Ownership and durability
//
// Groups map to partitions of __consumer_offsets with [PartitionFor], as Kafka
// does. A broker that leads offsets partition p calls [Coordinator.Load]; the
// coordinator replays the partition's records to rebuild committed offsets and
// group metadata (generation, leader, protocol, members and assignments), then
// serves every group that maps to p. Requests for groups of a partition that is
// not loaded are answered NOT_COORDINATOR.
//
// Every change that Kafka persists goes through [Store.Append] before it is
// visible or acknowledged: offset commits and deletions, the group metadata
// written when the leader's SyncGroup completes a rebalance, when a group
// becomes empty, when a static member is replaced, and group deletion. Records
// use Kafka's own key and value formats (kmsg's OffsetCommitKey/Value and
// GroupMetadataKey/Value), so the topic reads like Kafka's. The writes of one
// partition are applied in the order they are appended: one writer goroutine
// per loaded partition runs them in turn (consecutive offset commits share
// one Append). If Append fails, the clients get an error code and the
// in-memory state does not change.
//
// # Group life cycle
//
// A group moves between Empty, PreparingRebalance, CompletingRebalance and
// Stable, and is Dead while it is being deleted. JoinGroup parks the caller
// until every member has rejoined (or the rebalance timeout drops those that
// did not), then answers all members at once, the leader with every member's
// metadata for the protocol chosen by the members' votes. The leader's
// SyncGroup carries the assignment, which is persisted and handed to every
// member. Heartbeats keep a member alive: one that misses its session timeout
// is removed and the group rebalances. Static members (group.instance.id)
// keep their assignment across restarts without a rebalance.
//
// # Wiring it into a broker
//
// One [Coordinator] per broker. Call [Coordinator.Load] when the broker
// becomes leader of a __consumer_offsets partition (with a [Store] that
// appends to it with acks=all) and [Coordinator.Unload] when it stops leading
// it; answer FindCoordinator with [PartitionFor]'s leader. Pass each request's
// client id and peer address with [WithClient], and advertise [Versions] in
// ApiVersions. Handlers may block (JoinGroup, SyncGroup, and any handler
// whose change is being persisted), so call them off the connection's read
// loop or accept that the connection is busy, as Kafka does.
//
// Timers (session, rebalance, sync, initial delay) use the real clock;
// Config.Now only stamps records.
//
// # Transactional offset commits
//
// [Coordinator.TxnOffsetCommit] persists a producer's offsets as its
// transactional batch (the Store gets records with [Txn] set) and keeps them
// pending; [Coordinator.CompleteTxn] writes the transaction's marker through
// the Store, after the writes queued before it, and then applies (COMMIT) or
// drops (ABORT) them. Replay does the same from the batches' producer and
// marker ([Record.Txn]). While a commit is pending, OffsetFetch with
// RequireStable answers UNSTABLE_OFFSET_COMMIT for its partition (KIP-447).
//
// Not implemented: offset expiration (offsets.retention.minutes), the KIP-848
// consumer protocol, and topic IDs in OffsetCommit/OffsetFetch (v10) and
// TxnOffsetCommit (v6); unknown topics are the caller's to reject.
package group
