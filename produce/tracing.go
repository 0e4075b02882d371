package produce

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkaguard/kafkaguard/internal/tracekit"
)

// Tracing traces every record a kgo client produces, with OpenTelemetry. It
// is a kgo hook: pass it among the client's options with kgo.WithHooks(t),
// to New (a [Producer]) or to any client built from [ApplyKgo]. Without it
// nothing is traced and nothing costs.
//
// Each record gets a "send TOPIC" span of kind producer, a child of the span
// of the context the record was sent with (Send's, SendAsync's, or kgo's
// Produce's ctx, which kgo keeps as the record's Context), from when the
// client buffers the record to its acknowledgement or failure. The span's
// W3C trace context goes into the record's traceparent and tracestate
// headers, where consume.Tracing (and franz-go's kotel plugin, and other
// OpenTelemetry Kafka instrumentations) find it; a record that already has a
// traceparent header keeps it, so that a record forwarded with its headers
// (a retry marker, a dead letter, a republished record) stays in its
// origin's trace. Attributes: messaging.system=kafka,
// messaging.operation.type=send, messaging.destination.name and, once
// acknowledged, messaging.destination.partition.id and
// messaging.kafka.offset; a failed record sets the status to error and
// records the error.
//
// franz-go's kotel plugin (github.com/twmb/franz-go/plugin/kotel) writes
// the same headers, with its own span names; give it
// kotel.TracerPropagator(propagation.TraceContext{}), as its default is the
// global propagator, which propagates nothing unless the application set
// one.
type Tracing struct{ tracer trace.Tracer }

// NewTracing returns the hook that traces with a tracer of tp, which must
// not be nil (pass otel.GetTracerProvider() for the global provider).
func NewTracing(tp trace.TracerProvider) (*Tracing, error) {
	if tp == nil {
		return nil, fmt.Errorf("produce: NewTracing: nil trace.TracerProvider: %w", ErrInvalidConfig)
	}
	return &Tracing{tracer: tracekit.Tracer(tp)}, nil
}

// OnProduceRecordBuffered implements kgo.HookProduceRecordBuffered: it
// starts r's send span and writes its trace context into r's headers.
func (t *Tracing) OnProduceRecordBuffered(r *kgo.Record) {
	ctx, _ := t.tracer.Start(r.Context, "send "+r.Topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(tracekit.KeySystem.String("kafka"), tracekit.KeyOperation.String("send"),
			tracekit.KeyDestination.String(r.Topic)))
	if !tracekit.Extract(r.Headers, "").IsValid() {
		tracekit.Inject(ctx, &r.Headers, "")
	}
	r.Context = ctx
}

// OnProduceRecordUnbuffered implements kgo.HookProduceRecordUnbuffered: it
// ends r's send span with the outcome.
func (t *Tracing) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	span := trace.SpanFromContext(r.Context)
	if err == nil {
		span.SetAttributes(tracekit.RecordAttrs("send", r.Topic, r.Partition, r.Offset)...)
	}
	tracekit.End(span, err)
}
