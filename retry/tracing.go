package retry

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkaguard/kafkaguard/internal/tracekit"
)

// Headers that carry, on a marker or a dead letter, the W3C trace context
// of the span that wrote it (see Tracing). The original record's own
// traceparent and tracestate headers are kept unchanged beside them.
const (
	HeaderTraceParent = HeaderPrefix + "traceparent"
	HeaderTraceState  = HeaderPrefix + "tracestate"
)

// Attribute keys of the retry spans (see Tracing).
const (
	AttrOrigin   = attribute.Key("kafkaguard.retry.origin")   // the original record, topic/partition@offset
	AttrAttempt  = attribute.Key("kafkaguard.retry.attempt")  // the attempt a retry span runs (2 for the first retry)
	AttrAttempts = attribute.Key("kafkaguard.retry.attempts") // failed attempts a marker or dead letter records
	AttrReason   = attribute.Key("kafkaguard.retry.reason")   // why a record was dead-lettered
	AttrLink     = attribute.Key("kafkaguard.link")           // what a link points to: "record"
)

// Outcomes of a retry span, in its kafkaguard.outcome attribute.
const (
	OutcomeSucceeded    = "succeeded"
	OutcomeReparked     = "reparked"
	OutcomeDeadLettered = "dead-lettered"
	OutcomeInterrupted  = "interrupted" // the Job shut down while the handler ran; the marker runs again
)

// Tracing makes a Parker or Job trace with a tracer of tp (never the global
// provider unless it is passed). A nil tp, the default, traces nothing.
//
//	span                 kind      parent                                  written by
//	park TOPIC           producer  the span of ctx (consume's handle span,  Parker.Park, a Job's re-park
//	                               or the retry span), else the record's
//	retry TOPIC          consumer  the span that wrote the marker (its      Job: one attempt of the handler
//	                               kafkaguard.retry.traceparent header),
//	                               else the record's
//	dead-letter TOPIC    producer  as park                                  Parker.Park, a Job
//
// TOPIC is the original record's topic. "The record's" span is the one its
// traceparent header names (produce.Tracing, kotel). Every one of these spans
// links to the record's span (link attribute kafkaguard.link=record), so
// the retry history stays reachable from the producer's span even where the
// parent chain is broken (a marker written without Tracing). A park or
// dead-letter span writes its own span context into the marker or dead
// letter as HeaderTraceParent and HeaderTraceState: the next retry span is
// its child, so the spans of one record form a chain producer → handle →
// park → retry → park → ... → dead-letter.
//
// Attributes: messaging.system=kafka, messaging.operation.type,
// messaging.destination.name, messaging.destination.partition.id and
// messaging.kafka.offset (the retry or dead-letter topic written, or the
// retry topic read), kafkaguard.retry.origin, kafkaguard.retry.attempts
// (park, dead-letter), kafkaguard.retry.attempt (retry),
// kafkaguard.retry.reason (dead-letter) and kafkaguard.outcome (retry:
// OutcomeSucceeded, OutcomeReparked, OutcomeDeadLettered or
// OutcomeInterrupted). A failed write or attempt sets the span's status to
// error and records the error.
func Tracing(tp trace.TracerProvider) RetryOpt {
	return retryOpt(func(c *config) { c.tracer = tracekit.Tracer(tp) })
}

// startSpan starts a span named op+" "+m.Topic for writing m: a child of
// parent if it is valid, else of the span of ctx, else of the original
// record's span; linked to the original record's span. It returns ctx and a
// nil span when tracing is off.
func startSpan(ctx context.Context, tr trace.Tracer, op string, m *Marker, parent trace.SpanContext, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if tr == nil {
		return ctx, nil
	}
	record := tracekit.Extract(m.Headers, "")
	var opts []trace.SpanStartOption
	switch {
	case parent.IsValid():
		ctx, opts = tracekit.Parent(ctx, parent)
	case trace.SpanContextFromContext(ctx).IsValid():
	default:
		ctx, opts = tracekit.Parent(ctx, record)
	}
	if record.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: record, Attributes: []attribute.KeyValue{AttrLink.String("record")}}))
	}
	// A copy, so that attrs does not escape: with tracing off the
	// caller's attributes stay on its stack.
	all := append(append(make([]attribute.KeyValue, 0, len(attrs)+1), attrs...), AttrOrigin.String(m.Origin.String()))
	opts = append(opts, trace.WithSpanKind(kind), trace.WithAttributes(all...))
	return tr.Start(ctx, op+" "+m.Topic, opts...)
}

// endWrite ends the span of a write of rec (nil span: tracing off).
func endWrite(span trace.Span, rec *kgo.Record, err error) {
	if span == nil {
		return
	}
	if err == nil {
		span.SetAttributes(tracekit.RecordAttrs("send", rec.Topic, rec.Partition, rec.Offset)...)
	}
	tracekit.End(span, err)
}

// injectTrace writes the trace context of ctx's span into rec as
// HeaderTraceParent and HeaderTraceState (nothing when span is nil).
func injectTrace(ctx context.Context, span trace.Span, rec *kgo.Record) {
	if span != nil {
		tracekit.Inject(ctx, &rec.Headers, HeaderPrefix)
	}
}

// markerTrace returns the span context a marker record carries in
// HeaderTraceParent, when the Job traces.
func (j *Job) markerTrace(r *kgo.Record) trace.SpanContext {
	if j.cfg.tracer == nil {
		return trace.SpanContext{}
	}
	return tracekit.Extract(r.Headers, HeaderPrefix)
}

// startAttempt starts the retry span of it's attempt; ctx and a nil span
// when tracing is off.
func (j *Job) startAttempt(ctx context.Context, it *item) (context.Context, trace.Span) {
	if j.cfg.tracer == nil {
		return ctx, nil
	}
	return startSpan(ctx, j.cfg.tracer, "retry", it.m, it.trace, trace.SpanKindConsumer,
		append(tracekit.RecordAttrs("process", j.retryTopic, it.part, it.offset), AttrAttempt.Int(it.m.Attempts+1))...)
}

// endAttempt ends a retry span with the handler's error and the outcome.
func (j *Job) endAttempt(ctx context.Context, span trace.Span, m *Marker, err error) {
	if span == nil {
		return
	}
	outcome := OutcomeSucceeded
	switch {
	case err != nil && ctx.Err() != nil:
		outcome = OutcomeInterrupted
	case err != nil && (IsPermanent(err) || m.Attempts+1 >= j.cfg.maxAttempts):
		outcome = OutcomeDeadLettered
	case err != nil:
		outcome = OutcomeReparked
	}
	span.SetAttributes(tracekit.KeyOutcome.String(outcome))
	tracekit.End(span, err)
}
