// Package partition is one broker's replica of one partition of the bundled
// broker: its log (internal/broker/log), its role (leader or follower, from
// the controller's state), the ISR and high watermark as leader, and the
// state Kafka keeps per partition for idempotent and transactional producers.
//
// Producer state is, per producer id, its epoch and its last five batches
// (to answer a retry with the offsets the batch was first written at), and,
// for transactions, the first offset of each open transaction (the last
// stable offset is the earliest) and the aborted transactions read_committed
// fetches filter out. It follows every batch appended, as leader or
// follower, and persists as Kafka's does: each abort marker adds an entry to
// its segment's .txnindex, and at each segment roll and clean Close a
// producer snapshot (<offset>.snapshot; snapshot.go documents the format) is
// written atomically. Open loads the latest snapshot, the aborted
// transactions below it from the .txnindex files, and scans only the log
// after it; a file that is torn, corrupt or disagrees with the other is
// ignored and everything is rebuilt from a scan of the whole log. A follower's
// truncation reloads the state the same way from the snapshots left at or
// below the new end.
package partition
