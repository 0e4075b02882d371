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
//
// Presets write and check client configuration; they do not fork the
// client. [KgoOpts] returns a preset's options, [ApplyKgo] puts them in
// front of an application's own []kgo.Opt and refuses every option that
// contradicts the preset, and [ApplySarama] / [ValidateSarama] do the same
// for a *sarama.Config. Every contradiction is reported at once, each as a
// [*ConfigError] naming the setting and the fix, joined with errors.Join and
// matchable with errors.Is(err, [ErrUnsafeConfig]).
//
// [Producer] wraps a *kgo.Client built from a preset: [Producer.Send] returns
// only once the broker acknowledged the record as the preset requires, or
// with a [*DeliveryError] that says whether the record may have been written
// ([ErrOutcomeUnknown]) or was certainly not ([ErrNotWritten]).
// [SaramaSyncProducer] does the same over sarama's SyncProducer.
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
// # Options
//
// Options have bare names (KgoProducer, not WithKgoProducer), as in every
// kafkaguard package, and each constructor or function takes its own option
// type (AuditOpt for Audit). The producers take the application's own
// []kgo.Opt or *sarama.Config rather than options of their own.
package produce
