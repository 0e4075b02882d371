package consume

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	"github.com/kafkaguard/kafkaguard/internal/tracekit"
	"github.com/kafkaguard/kafkaguard/ordering"
)

// Outcomes of a handle span, in its kafkaguard.outcome attribute.
const (
	// OutcomeHandled: the handler returned nil.
	OutcomeHandled = "handled"
	// OutcomeParked: the handler failed and the record was parked on the
	// retry path.
	OutcomeParked = "parked"
	// OutcomeFailed: the handler failed and the record was not parked; it
	// blocks its key or partition (or, if its partition was revoked, runs
	// again on the next owner).
	OutcomeFailed = "failed"
)

// Tracing makes a Consumer or SaramaHandler trace every record it handles
// with a tracer of tp (never the global provider unless it is passed). Each
// record gets a "handle TOPIC" span of kind consumer whose parent is the
// span context the record's traceparent and tracestate headers carry (W3C
// trace context, as produce.Tracing, franz-go's kotel plugin and other
// OpenTelemetry Kafka instrumentations write them), or a new root span when
// they carry none. When a kgo hook put a span in the record's Context (the
// "receive" span of kotel's consumer hooks, which extract the same
// headers), that span is the parent. The span covers the handler and, after a failure, Park;
// the handler's context carries it, so the handler's own spans, and those of
// a retry.Parker, are its children. A nil tp, the default, traces nothing
// and costs nothing. See the package doc for the attributes.
func Tracing(tp trace.TracerProvider) Opt {
	return bothOpt(func(c *config) { c.tracer = tracekit.Tracer(tp) })
}

// handleTrace is the handle span of one record; its zero value (tracing
// off) does nothing.
type handleTrace struct{ span trace.Span }

// startHandle starts m's handle span and returns the handler's context,
// or ctx and a zero handleTrace when tracing is off.
func (e *engine[T]) startHandle(ctx context.Context, m ordering.Message[T]) (context.Context, handleTrace) {
	if e.cfg.tracer == nil {
		return ctx, handleTrace{}
	}
	r := e.toRecord(m.Value)
	parent := tracekit.Extract(r.Headers, "")
	if r.Context != nil {
		// A kgo hook (kotel's receive span, say) put the record's span here.
		if sc := trace.SpanContextFromContext(r.Context); sc.IsValid() {
			parent = sc
		}
	}
	pctx, opts := tracekit.Parent(ctx, parent)
	opts = append(opts, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(tracekit.RecordAttrs("process", m.Topic, m.Partition, m.Offset)...))
	hctx, span := e.cfg.tracer.Start(pctx, "handle "+m.Topic, opts...)
	return hctx, handleTrace{span}
}

// end ends the span with the handler's error and the record's outcome.
func (t handleTrace) end(handlerErr error, outcome string) {
	if t.span == nil {
		return
	}
	t.span.SetAttributes(tracekit.KeyOutcome.String(outcome))
	tracekit.End(t.span, handlerErr)
}

// outcome is the outcome of a handler run that was not parked.
func outcome(err error) string {
	if err == nil {
		return OutcomeHandled
	}
	return OutcomeFailed
}
