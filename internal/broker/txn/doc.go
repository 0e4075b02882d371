// Package txn is the transaction coordinator of the bundled broker: the state
// of each transactional id (KIP-98, with KIP-447's group-aware offsets), kept
// with the semantics of Apache Kafka 4.4's TransactionCoordinator,
// TransactionMetadata and TransactionStateManager, classic flow
// (transaction.version 1; KIP-890 part 2 is not implemented).
//
// This package is built in slices. What exists today:
//
//   - [State] and [CanTransition]: Kafka's eight states and its table of
//     legal previous states.
//   - [Metadata]: one transactional id's state, and its pure transitions
//     ([Metadata.InitProducerID], [Metadata.Fence], [Metadata.AddPartitions],
//     [Metadata.EndTxn], [Metadata.Complete]). Each returns the next
//     metadata without changing its receiver, or a kerr error the client
//     gets (PRODUCER_FENCED, INVALID_PRODUCER_ID_MAPPING, INVALID_TXN_STATE,
//     CONCURRENT_TRANSACTIONS), so the coordinator can persist the next
//     state first and make it visible only once it is durable.
//   - [Encode] and [Decode]: records of the internal __transaction_state
//     topic in Kafka's own TransactionLogKey / TransactionLogValue formats
//     (kmsg's TxnMetadataKey and TxnMetadataValue), and [PartitionFor].
//   - [Coordinator]: serves InitProducerID with a transactional id,
//     AddPartitionsToTxn (v0-3), AddOffsetsToTxn and EndTxn (v0-4) for the
//     partitions loaded into it ([Coordinator.Load] replays one with a
//     group.Replay and persists through a group.Store, the interfaces of the
//     group coordinator), writes markers through a [MarkerWriter] in the
//     background, resumes prepared transactions on load, and aborts timed-out
//     ones ([Coordinator.AbortTimedOut]). The server wires it like the group
//     coordinator (internal/broker/server/txns.go).
//   - Transactional offsets (KIP-447), in internal/broker/group: the server
//     serves AddOffsetsToTxn (v0-4) with [Coordinator.AddOffsetsToTxn] and
//     TxnOffsetCommit (v0-4, member and generation checked from v3) with
//     group.Coordinator.TxnOffsetCommit, which persists the offsets as one
//     transactional batch of the producer (no sequence) in the group's
//     __consumer_offsets partition and keeps them pending per producer. A
//     marker for a __consumer_offsets partition is written through the
//     group coordinator (group.Coordinator.CompleteTxn, Kafka 4's
//     completeTransaction), which then applies (COMMIT) or drops (ABORT) the
//     producer's pending offsets; replay on load does the same from the log.
//     OffsetFetch with RequireStable answers UNSTABLE_OFFSET_COMMIT for a
//     partition with a pending commit. franz-go's GroupTransactSession,
//     sarama's AddMessageToTxn/AddOffsetsToTxn and Kafka's Java
//     TransactionalMessageCopier copy exactly once against the bundled
//     cluster (internal/broker/brokertest/ctp_test.go).
//   - Coordinator epochs: [Coordinator.Load] takes the leader epoch of the
//     __transaction_state partition as its coordinator epoch, which every
//     marker of the partition's transactions carries (WriteTxnMarkers'
//     CoordinatorEpoch, the marker record's value). A data partition records
//     per producer the coordinator epoch of its last marker and refuses an
//     older one with TRANSACTION_COORDINATOR_FENCED (Kafka's
//     ProducerAppendInfo), so a deposed coordinator still retrying the
//     markers of a transaction that the new coordinator completed cannot
//     close the producer's next transaction (same producer epoch in the
//     classic flow). A coordinator whose markers are fenced stops writing
//     them without completing the transaction, as Kafka's
//     TransactionMarkerRequestCompletionHandler does. The epoch is in the
//     log, so followers and replays know it.
//
// # The design the next slices follow
//
// State machine. A transactional id is Empty after InitProducerID, Ongoing
// once AddPartitionsToTxn or AddOffsetsToTxn names a partition, then
// PrepareCommit or PrepareAbort on EndTxn. In a Prepare state the
// coordinator writes a marker (a control batch whose key is COMMIT or ABORT,
// with the producer's id and epoch) to every partition of the transaction
// through the partition leaders (WriteTxnMarkers), and when all are written
// moves to CompleteCommit or CompleteAbort. While a Prepare state lasts,
// InitProducerID, AddPartitionsToTxn and EndTxn answer
// CONCURRENT_TRANSACTIONS and the client retries. InitProducerID on an
// Ongoing transaction, and a transaction open past its timeout, fence: the
// epoch is bumped (PrepareEpochFence, kept in memory only) and the
// transaction is aborted with the bumped epoch, so the old producer's
// requests get PRODUCER_FENCED. Dead is a transactional id being expired.
//
// Durability. The coordinator of a transactional id is the leader of its
// __transaction_state partition ([PartitionFor], Kafka's hash, as groups use
// for __consumer_offsets). The topic is created like the offsets topic (RF =
// min(3, brokers), min.insync.replicas 2 where possible). Every transition
// except PrepareEpochFence is appended with acks=all before it is applied in
// memory or answered, exactly as internal/broker/group's Store does for
// groups; a broker that becomes leader of a partition replays it ([Decode]
// each record, the last one of an id wins, a tombstone removes it) and then
// resumes every transaction left in PrepareCommit or PrepareAbort by writing
// its markers again (markers are idempotent for the partitions: a second
// marker of the same producer epoch finds no open transaction). An Ongoing
// transaction found on load keeps running until it ends or times out.
//
// The partition side (next slices, in internal/broker/partition and log):
// each partition tracks, per producer id, the first offset of its open
// transaction; the last stable offset (LSO) is the smallest such offset, else
// the high watermark; a marker closes the producer's transaction and, for an
// abort, records (producer id, first offset, last offset) in the
// aborted-transactions index. Fetch with read_committed answers up to the LSO
// with the aborted transactions that overlap the answer; ListOffsets latest
// with read_committed answers the LSO.
//
// # Not yet (in the order the next slices should take them)
//
//   - transactional.id expiration (Dead).
//
// Partition leaders verify a producer's first transactional batch (a Produce or the group
// coordinator's TxnOffsetCommit) with [Coordinator.Verify], asked directly or with
// AddPartitionsToTxn v4 VerifyOnly (KIP-890 part 1).
//
// The partition side keeps Kafka's per-segment .txnindex of aborted
// transactions and producer snapshots at segment rolls and clean shutdown
// (internal/broker/partition/snapshot.go, internal/broker/log/txnindex.go):
// a partition opens from its latest snapshot, the .txnindex files below it
// and a scan of the log after it. Markers carry the coordinator epoch (the
// leader epoch of the __transaction_state partition); a partition refuses a
// marker older than its producer's last one with
// TRANSACTION_COORDINATOR_FENCED, and a fenced coordinator stops.
//
// Nothing in this package panics on any input; records it cannot decode are
// reported as errors.
package txn
