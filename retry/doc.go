// Package retry is kafkaguard's failed-message retry path: the alternative to
// max.in.flight.requests.per.connection=1 that the reliability notes name —
// the consumer records a failure marker and moves on, and a scheduled job
// retries the failed messages later, with monitoring and alerts.
//
// Unlike retry topics that give up per-key order or commit automatically, it
// loses nothing, and keeps per-key order when asked:
//
//   - A Parker (consumer side) writes a failed record's marker to the retry
//     topic (default "<topic>.retry") and returns only once every in-sync
//     replica has it; only then may the consumer commit the record's offset.
//     Its Park method is the consume package's Parker hook.
//   - A Job (retry side) consumes the retry topic as a consumer group, holds
//     each marker until its due time, runs the handler, and on failure writes
//     a new marker with one more attempt — acknowledged before the old one is
//     committed — or, after MaxAttempts or a Permanent error, writes the record
//     to the dead-letter topic (default "<topic>.dlq") with its error history
//     and calls the alert hook.
//   - KeyLocks (optional, see KeyOrder) is the set of keys with a pending
//     marker, rebuilt at start from the retry topic, so that later records of
//     such a key are parked behind the earlier one and retried in order.
//
// # Marker format
//
// A marker is a Kafka record on the retry topic with the original record's
// key and value, the original headers, and these headers (all names start
// with HeaderPrefix, values are UTF-8 text):
//
//	kafkaguard.retry.kind          "marker" (see Kind)
//	kafkaguard.retry.topic         original topic
//	kafkaguard.retry.partition     original partition, decimal
//	kafkaguard.retry.offset        original offset, decimal
//	kafkaguard.retry.timestamp     original timestamp, Unix ms
//	kafkaguard.retry.attempts      failed handler runs so far, decimal
//	kafkaguard.retry.due           earliest next attempt, Unix ms
//	kafkaguard.retry.first-failed  first park, Unix ms
//	kafkaguard.retry.error         one per failed attempt, oldest first:
//	                               {"attempt":1,"at":"RFC 3339","error":"..."}
//	kafkaguard.retry.traceparent   with Tracing: the W3C trace context of the span
//	kafkaguard.retry.tracestate    that wrote the marker (see Tracing)
//
// A dead letter has the same headers with kind "dead-letter", no due time, and
// kafkaguard.retry.reason. An application not written in Go can park records
// by writing markers in this format and run `kafkaguard retry-job`.
//
// The original topic, partition and offset identify a failed record across
// its markers: when a record has several markers (a re-park, or a duplicate
// left by a consumer that crashed between parking and committing), only the
// newest runs; the older ones are recognised as superseded.
//
// # Dead letters
//
// DeadLetters reads a dead-letter topic (either header format), read_committed
// so that the dead letters of aborted transactions (see Exactly once) are
// not listed: Read selects
// records by partition, offset range, key and error text, Get returns one
// with its whole history, Summarize groups them by cause and age, and Replay
// sends selected ones back to their source topic or, as fresh markers, to
// their retry topic. Replay is idempotent for replays run one after the
// other: every record it writes carries HeaderReplayedFrom (the dead
// letter's topic/partition@offset), and it first reads the destination from
// shortly before the oldest selected dead letter was written and skips the
// dead letters it finds there. Two replays of the same dead letters running
// at the same moment can both write them. It is what "kafkaguard dlq" runs.
//
// # Spring interop
//
// With Headers(SpringHeaders), a Parker and a Job write Spring Kafka's
// headers instead, on Spring's default topic names (TOPIC-retry and
// TOPIC-dlt), so that a Go service and a Spring service share retry and
// dead-letter topics:
//
//	kafka_dlt-original-topic           UTF-8
//	kafka_dlt-original-partition       4-byte big-endian int
//	kafka_dlt-original-offset          8-byte big-endian long
//	kafka_dlt-original-timestamp       8-byte big-endian long, Unix ms
//	kafka_dlt-original-timestamp-type  "CreateTime", or as Spring recorded it
//	kafka_dlt-original-consumer-group  as Spring recorded it, if it did
//	kafka_dlt-exception-fqcn           SpringHandlerErrorClass or SpringPermanentErrorClass
//	kafka_dlt-exception-message        the last error
//	kafka_dlt-exception-stacktrace     the class and message, then the history
//	retry_topic-original-timestamp     BigInteger.toByteArray(), Unix ms
//	retry_topic-attempts               4-byte big-endian int: the attempt that runs next
//	retry_topic-backoff-timestamp      BigInteger.toByteArray(), Unix ms: the due time
//
// one of each, as Spring's recoverer leaves them, followed by this
// package's kafkaguard.retry.error history (and reason, for a dead letter),
// which Spring carries along. Every reader of this package (ParseMarker, the
// Job, KeyLocks, DeadLetters) recognises a record in Spring's format whatever
// the mode: the original record is the one the kafka_dlt-original-* headers
// name, a Spring exception counts as the latest failed attempt, and a record
// read from a topic named *-dlt is a dead letter. A Job follows one retry
// topic and re-parks on it: Spring's single-topic layout (TOPIC-retry), or
// one of its per-attempt topics (TOPIC-retry-0, ...) given with RetryTopic,
// whose dead letters go to TOPIC-dlt (see SourceTopic). Key order writes
// resolution records Spring has no equivalent for, so KeyOrder requires the
// kafkaguard mode. Republish writes the kafkaguard format in either mode: a
// Go Parker continues the record's attempts, a Spring listener of the source
// topic sees a new record.
//
// # Delivery guarantees
//
// Nothing is lost: a marker's offset is committed only after its outcome — a
// success, a new marker or a dead letter — is durable, and the Job commits
// per partition only up to the first marker not finished (ordering.Tracker,
// with the finished ones above it in the commit metadata). A crash runs some
// markers again: delivery to the handler is at least once. Attempt counts
// only ever come from markers, so a crash never makes a record reach the
// dead-letter topic before MaxAttempts failed attempts.
//
// # Exactly once
//
// With ExactlyOnce, a Job writes each marker's outcome in one Kafka
// transaction with the retry topic's consumer offset: a success commits the
// marker's offset (with the records Republish writes, if that is the
// handler), a re-park writes the new marker and commits, a dead letter
// writes to the dead-letter topic and commits. A transaction ends every
// CommitInterval and carries the commit checkpoints (offset and metadata),
// so a crash at any point neither loses nor doubles a re-park or a dead
// letter as a read_committed reader of the retry and dead-letter topics sees
// them. The Job reads the retry topic read_committed, its transactional id
// is TransactionalID(group, instance) (a restart of the instance fences the
// previous incarnation and aborts its open transaction), and a rebalance
// aborts the open transaction as franz-go's GroupTransactSession does: the
// markers it held run again. The handler's own effects are not transactional:
// an HTTP call or a command (HTTPPost, Exec) may run twice for one marker —
// at-least-once side effects — only the Kafka outputs are exactly once.
// KeyOrder is refused in this mode, and readers of the dead-letter topic
// and of topics Republish writes to must read read_committed
// (produce.KgoConsumerOpts(produce.ExactlyOnce)).
//
// # Scheduling
//
// Due times are kept in a timer heap: one timer for the earliest marker, so a
// marker due in an hour never delays one due now. Due markers run on at most
// Concurrency goroutines. At most MaxBuffered markers are held; beyond that
// the Job stops fetching. The delay after the n-th failed attempt is drawn
// from Backoff (exponential with jitter, capped).
//
// # Key order
//
// With KeyOrder on both the Parker and the Job (sharing or each opening a
// KeyLocks): while a key has a pending marker, Parker.Wrap parks later records
// of the key behind it without running them; the Job runs the markers of one
// key strictly one at a time, in the order the records were first read
// (original partition, then offset), re-parks included, and when a key's
// record leaves the retry path writes a "resolved" record that unlocks the
// key in every KeyLocks. Records without a key are not ordered. Key order
// assumes the retry topic's partition count does not change, so that all
// markers of a key share a partition.
//
// # Topics
//
// The retry and dead-letter topics are no-loss topics like any other
// (replication factor 3, min.insync.replicas 2, unclean leader election
// off). CheckTopics tells before a Job starts whether they exist, and
// CreateTopics creates the missing ones with those settings;
// `kafkaguard retry-job` does both (--create-topics).
//
// # Monitoring
//
// NewMetrics registers Prometheus counters (parked, retried, succeeded,
// dead-lettered) and gauges (backlog, oldest-marker age); OnAlert sets
// thresholds on backlog, age and dead letters. Every park, retry outcome and
// alert is also logged with log/slog.
//
// # Tracing
//
// With Tracing, a Parker and a Job start OpenTelemetry spans with the
// trace.TracerProvider the application passes: "park TOPIC" for each marker
// written, "retry TOPIC" for each attempt the Job runs (the handler's
// context carries it), "dead-letter TOPIC" for each dead letter. A park or
// dead-letter span writes its own trace context into the record it writes,
// as HeaderTraceParent and HeaderTraceState beside the original record's
// traceparent, and the Job makes each retry span a child of the span that
// wrote its marker: a failed record is one trace, send → handle → park →
// retry → … → dead-letter, and every retry-path span links to the original
// record's span. HTTPPost passes the retry span on to the service in the
// traceparent header, Exec to the command in TRACEPARENT. Tracing lists the
// parents and attributes.
//
// # Options
//
// Options have bare names (MaxAttempts, RetryTopic), as in every kafkaguard
// package, and each constructor takes its own option type: ParkerOpt for
// NewParker, JobOpt for NewJob, LocksOpt for NewKeyLocks. An option's return
// type says where it applies (Opt: all three; RetryOpt: Parker and Job;
// GroupOpt: Job and KeyLocks), so an option that does not apply to a
// constructor does not compile.
package retry
