// Package produce makes the no-loss producer configuration the default for
// applications that already use franz-go (kgo) or sarama.
//
// A [Preset] names a delivery contract:
//
//   - [NoLoss] (the zero value): acks=all, idempotent writes, retries until a
//     delivery timeout, at most 5 requests in flight (kept by the idempotent
//     producer), and a full buffer blocks rather than drops. Nothing
//     acknowledged is lost, nothing is duplicated by retries, and records
//     stay in order per partition.
//   - [StrictOrder]: NoLoss, except that idempotence may be switched off
//     (for clusters that deny IDEMPOTENT_WRITE); then exactly one request
//     may be in flight, so retries cannot reorder.
//   - [LeaderAck]: acks=1, for demonstrating the loss that happens when a
//     leader dies before its followers copied a record.
//   - [AtMostOnce]: acks=0 and no retries; records may be lost.
//   - [ExactlyOnce]: NoLoss inside transactions. A transactional id is
//     required (kgo.TransactionalID, sarama's Producer.Transaction.ID);
//     records are sent inside [Producer.Transact] or
//     [SaramaSyncProducer.Transact], which commits them all or aborts them
//     all; the consumer reading them uses read_committed
//     ([KgoConsumerOpts], [ApplySaramaConsumer]) and never sees an aborted
//     transaction's records. A second producer with the same
//     transactional id fences the first ([ErrFenced]).
//
// Presets write and check client configuration; they do not fork the
// client. [KgoOpts] returns a preset's options, [ApplyKgo] puts them in
// front of an application's own []kgo.Opt and refuses every option that
// contradicts the preset, and [ApplySarama] / [ValidateSarama] do the same
// for a *sarama.Config. Every contradiction is reported at once, each as a
// [*ConfigError] naming the setting and the fix, joined with errors.Join and
// matchable with errors.Is(err, [ErrUnsafeConfig]). Settings that kgo or
// sarama would refuse on their own (a transactional id with idempotence
// off, say) are named as the setting, not as the library's first error.
//
// [Producer] wraps a *kgo.Client built from a preset: [Producer.Send] returns
// only once the broker acknowledged the record as the preset requires, or
// with a [*DeliveryError] that says whether the record may have been written
// ([ErrOutcomeUnknown]) or was certainly not ([ErrNotWritten]).
// [SaramaSyncProducer] does the same over sarama's SyncProducer.
//
// [Producer.SendAsync] and [SaramaAsyncProducer.SendAsync] call a callback
// with the same outcome instead of returning it: exactly once per record,
// serially, and every outstanding callback has run when Flush or Close
// returns nil. [SaramaAsyncProducer] wraps sarama's AsyncProducer, reading
// its Successes and Errors on one goroutine of its own that ends with
// Close; it runs no transactions (ExactlyOnce needs [NewSaramaSync]).
//
// # Cost over the client
//
// The wrappers add no allocation per record to kgo's own but one:
// [Producer.SendAsync] binds a callback passed for many records once, and
// a closure made per record to the Producer with one small allocation;
// [Producer.Send] reuses a pooled waiter. Send with a context that
// never ends waits on the caller's goroutine as kgo's ProduceSync does;
// with one that can end it returns as soon as the context ends, even with
// the record in flight, at no cost of its own: [New]'s client does not
// linger (kgo.ProducerLinger(0) unless the options set one). With a linger
// it costs one goroutine per Send (only ProduceSync, run on that
// goroutine, cuts the linger short).
// BenchmarkNoLossProduce measures each way of sending against a raw
// kgo.Client; the README has the figures.
//
// Transact runs a function inside a transaction: it commits if the
// function returns nil and every record it sent was acknowledged, and
// aborts otherwise. A failed transaction is a [*TxnError] that matches
// [ErrTxnAborted] (nothing of it will ever be read committed) or, when the
// commit went unanswered, [ErrOutcomeUnknown]; and [ErrFenced] when a newer
// producer with the same transactional id took over.
//
// [Audit] is the preflight check of the cluster side of the checklist:
// replication.factor >= 3, min.insync.replicas >= 2 and
// unclean.leader.election.enable=false, read with DescribeConfigs and
// Metadata, reported per rule as pass or fail with the fix.
//
// # Metrics
//
// [Metrics] is a kgo hook that counts, as Prometheus collectors registered
// on the registry the application passes ([NewMetrics]), the records
// acknowledged, those failed by error class ([ErrorClass]) and those whose
// outcome is unknown, and the ack latency. Pass it to [New] (or to a client
// built from [ApplyKgo]) with kgo.WithHooks; its doc lists each metric.
//
// # Tracing
//
// [Tracing] is a kgo hook ([NewTracing]) that starts an OpenTelemetry
// "send TOPIC" span for each record, with the trace.TracerProvider the
// application passes, and writes its W3C trace context into the record's
// traceparent and tracestate headers, where consume.Tracing finds it. Pass
// it with kgo.WithHooks, as Metrics; its doc lists the attributes.
//
// # Options
//
// Options have bare names (KgoProducer, not WithKgoProducer), as in every
// kafkaguard package, and each constructor or function takes its own option
// type (AuditOpt for Audit). The producers take the application's own
// []kgo.Opt or *sarama.Config rather than options of their own.
package produce
