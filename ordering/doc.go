// Package ordering processes the records of Kafka partitions in parallel
// without losing, duplicating or reordering them, and tracks which offset of
// each partition is safe to commit.
//
// It has two pieces that work on their own, with no Kafka client involved:
//
//   - A [Dispatcher] runs a handler over submitted records on a fixed pool of
//     worker goroutines. In [KeyOrder] mode the records of one key (within a
//     partition) run strictly one after another, in offset order, while
//     different keys run in parallel; [PartitionOrder] runs one record at a
//     time per partition and [Unordered] runs every record independently. The
//     number of records held (queued, running or failed) is bounded: Submit
//     blocks when the bound is reached, so memory stays bounded even when one
//     key is stuck. A handler error blocks only what the mode orders behind
//     the record (its key, its partition, or nothing) until the failure is
//     resolved with [Dispatcher.Resolve] or re-run with [Dispatcher.Retry];
//     a failed record is never skipped silently.
//
//   - A [Tracker] follows one partition: offsets are added in offset order
//     when dispatched and marked done in any order. [Tracker.Checkpoint]
//     returns the offset to commit (every record below it is done; offsets
//     that were never added, such as compacted records or transaction
//     markers, are not waited for) and commit metadata that lists the records
//     already done above that offset.
//
// # Commit metadata
//
// Kafka stores a metadata string with every committed offset. After a crash
// a consumer restarts from the committed offset, so records that had
// completed above it would run again. The Tracker encodes those records into
// the metadata, and a Tracker resumed from the committed offset and metadata
// ([ResumeTracker], [Dispatcher.Assign]) skips them. The encoding is
//
//	"kg1:" + base64url(uvarint(offset), uvarint(gap), uvarint(done), uvarint(gap), uvarint(done), ...)
//
// without padding: the committed offset, then alternating run lengths of
// not-done and done offsets starting at the committed offset. The first gap
// may be zero, every other run is at least one, and the string is kept within
// a byte limit (Kafka's broker setting offset.metadata.max.bytes, 4096 by
// default) by dropping runs from the tail. Dropping only ever removes claims,
// so a truncated string makes some done records run again but never claims a
// record done that was not. A gap between two done records that was never
// added (it was not delivered, so it is not a record the consumer will see)
// is encoded as done to keep the string short; any other offset that was not
// seen done is encoded as not done.
//
// # Usage
//
// A consumer assigns each partition with its committed offset and metadata,
// submits every fetched record in offset order, periodically commits
// [Dispatcher.Checkpoint], and on revocation commits what [Dispatcher.Revoke]
// returns:
//
//	d, err := ordering.New(handle, ordering.OrderBy(ordering.KeyOrder), ordering.Concurrency(64))
//	...
//	err = d.Assign(tp, ordering.Checkpoint{Offset: committed, Metadata: meta})
//	for _, r := range fetched {
//		err = d.Submit(ctx, ordering.Message[*kgo.Record]{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r})
//	}
//	cp, err := d.Checkpoint(tp) // commit cp.Offset with cp.Metadata
//
// # Metrics
//
// [NewMetrics] registers Prometheus collectors on the registry the
// application passes, and [ReportMetrics] makes a Dispatcher count into
// them: records handled and failed and handler latency per topic, and per
// partition the records in flight, queued, blocked and the keys blocked by
// a failure. [Metrics] lists each metric.
//
// # Options
//
// Options have bare names (Concurrency, OrderBy), as in every kafkaguard
// package, and are of type Opt. What depends on the record type T is not an
// option but a parameter of the generic constructor (NewWithFailureFunc's
// failure func), so a mismatched type does not compile.
package ordering
