// Package consume is a Kafka group consumer that loses nothing, runs nothing
// twice that it need not, and keeps the order the application asks for,
// while handling records in parallel.
//
// The application gives a Handler and an Order:
//
//   - KeyOrder (the default): the records of one key of one partition run
//     one at a time, in offset order; different keys run in parallel.
//   - PartitionOrder: one record at a time per partition.
//   - Unordered: every record on its own.
//
// Auto-commit is always off. An offset is committed only when every record
// below it in its partition was handled: its handler returned nil, or the
// record was handed durably to the retry path (RetryPath, a Parker). With
// every commit goes metadata that names the records already handled above
// the committed offset (see package ordering), so after a crash a restarted
// consumer skips them and runs again only what was in flight.
//
// A handler error with no retry path blocks the record's key (KeyOrder) or
// partition (PartitionOrder) — never skipped silently: it is logged,
// reported to OnError, listed by Failures, and waits for Resolve or
// Retry. The other keys and partitions go on.
//
// # In-process retries
//
// [Retries] runs a failed handler again in-process, after a backoff
// (retry.Backoff), up to RetryPolicy.Attempts runs, before the record goes
// to the retry path or, without one, blocks; [Attempt] tells the handler
// which run it is. A transient failure (a timeout of a service the handler
// calls) is then absorbed without a parked marker or a blocked key. While a
// record waits for its next attempt it is still in flight: its key
// (KeyOrder) or partition (PartitionOrder) stays blocked behind it, no
// commit passes it, and it holds one of the Concurrency slots, so keep the
// backoffs short (seconds) and leave long delays to the retry package's
// topic. A revocation or a stop ends the wait at once; the record is left
// not done and runs again, from its first attempt, on the partition's next
// owner or the next start. Each retry counts in
// kafkaguard_consume_retries_total. Retries applies to a Consumer, a batch
// Consumer (a batch is retried whole) and a SaramaHandler alike;
// NewExactlyOnce refuses it, as a waiting record would hold its
// transaction window open.
//
// # Batches
//
// [NewBatch] runs a [BatchHandler] over batches: the records one poll
// returned for a partition, in offset order, at most BatchSize. The commit
// rules hold per batch: no offset of a batch is committed before the whole
// batch is handled, and a crash in the middle of a batch runs all of it
// again. The batches of a partition run one after another in KeyOrder and
// PartitionOrder (a batch holds many keys), in parallel in Unordered. A
// failed batch is retried as a unit (Retries, Consumer.Retry) and parked
// record by record (RetryPath). SaramaHandler and NewExactlyOnce have no
// batch variant: they take a record handler only.
//
// On revocation the consumer stops dispatching the revoked partitions,
// waits for their running records (at most DrainTimeout), commits, and
// only then lets the rebalance finish, so the next owner starts where this
// one stopped and no key's order is broken across members. When the
// context given to Run ends, the consumer stops fetching, waits for the
// records it holds, commits and leaves the group.
//
// Memory is bounded by MaxBuffered: when that many records are held
// (for example behind a stuck key), the consumer stops polling and pauses
// fetching of its partitions until half the buffer is free.
//
// # Global order
//
// Kafka orders records only within a partition. For one total order over
// all records, as the seed notes say: give the topic one partition, use
// PartitionOrder, and run one consumer (one group member; others may stand
// by, as only one member is assigned the partition). Per-key order needs
// none of that: produce with a key-hash partitioner (see package
// partitioner) so every record of a key lands in one partition, and use
// KeyOrder.
//
// # Clients
//
// Consumer runs over franz-go (kgo): the application passes its own kgo
// options (seeds, group, topics) with KgoOpts, and the Consumer adds
// kgo.DisableAutoCommit and kgo.BlockRebalanceOnPoll, owns the partition
// callbacks, and creates and closes the client. To run on a client the
// application creates and closes itself, create it with Hooks.KgoOpts and
// pass it with Client. SaramaHandler gives the same semantics to a sarama
// ConsumerGroup: it is a sarama.ConsumerGroupHandler that marks and commits
// only contiguous handled offsets, with the same metadata.
//
// # Exactly once
//
// [NewExactlyOnce] is the consume-transform-produce loop exactly once: its
// [TxnHandler] adds output records to an [Output], and each transaction
// window (TxnInterval, 100 ms by default) commits the window's outputs and
// the input offsets together, with the semantics of franz-go's
// kgo.GroupTransactSession (a rebalance or a revocation aborts the window,
// a zombie member is fenced by the broker). KeyOrder, PartitionOrder and
// Unordered run in parallel inside a window as they do in New. A window
// polls for TxnInterval, then waits for the records it holds (at most
// MaxBuffered) before it commits. Readers of the output must use
// read_committed (kgo.FetchIsolationLevel(kgo.ReadCommitted()),
// produce.KgoConsumerOpts(produce.ExactlyOnce)). There is no sarama
// variant yet: sarama 1.61's transactional producer can send KIP-447
// offsets (AddOffsetsToTxnWithGroupMetadata with the session's generation
// and member id), but it is not built here.
//
// # Metrics
//
// [NewMetrics] registers Prometheus collectors on the registry the
// application passes (never the global one unless it is passed), and
// [ReportMetrics] makes a Consumer or SaramaHandler count into them:
// records handled, failed and parked, handler latency, per partition the
// records in flight, queued and blocked and the keys blocked, the
// committed offset and lag, and rebalances. [Metrics] lists each metric.
//
// # Tracing
//
// [Tracing] makes a Consumer or SaramaHandler start an OpenTelemetry span
// for each record it handles, with the trace.TracerProvider the application
// passes (never the global one unless it is passed):
//
//	span          kind      parent
//	handle TOPIC  consumer  the span context of the record's traceparent and tracestate headers
//	                        (W3C trace context), or the span a kgo hook put in the record's
//	                        Context (kotel's receive span); a new root span when it has neither
//
// The span covers the handler and, after a failure, Park; the handler's
// context carries it, so the handler's spans and a retry.Parker's park span
// are its children. Attributes: messaging.system=kafka,
// messaging.operation.type=process, messaging.destination.name,
// messaging.destination.partition.id, messaging.kafka.offset, and
// kafkaguard.outcome: [OutcomeHandled], [OutcomeParked] or [OutcomeFailed].
// A failed handler sets the span's status to error and records the error.
// Records sent with produce.Tracing (or franz-go's kotel plugin with the
// W3C propagator) carry the headers. Without Tracing the hook costs no
// allocation.
//
// # Options
//
// Options have bare names (Concurrency, OrderBy), as in every kafkaguard
// package. Their type is their scope: Opt applies to New and NewSarama,
// ConsumerOpt (KgoOpts, Client) to New only, so an option that does not
// apply does not compile.
package consume
