package consume

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kafkaguard/kafkaguard/internal/tracekit"
	"github.com/kafkaguard/kafkaguard/ordering"
)

// handleAllocs is the allocations per record of the handle span hook of an
// engine with cfg.
func handleAllocs(cfg config) float64 {
	e := &engine[*kgo.Record]{cfg: cfg, toRecord: func(r *kgo.Record) *kgo.Record { return r }}
	r := &kgo.Record{Topic: "orders", Partition: 1, Offset: 7, Headers: []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}}
	m := ordering.Message[*kgo.Record]{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: r}
	ctx := context.Background()
	return testing.AllocsPerRun(200, func() {
		hctx, ht := e.startHandle(ctx, m)
		_ = hctx
		ht.end(nil, OutcomeHandled)
	})
}

// Without Tracing the per-record hook allocates nothing; with it, the
// measurement sees the span's allocations (so it can fail).
func TestTracingOffCostsNoAllocationPerRecord(t *testing.T) {
	if n := handleAllocs(defaultConfig()); n != 0 {
		t.Errorf("tracing off: %v allocations per record, want 0", n)
	}
	on := defaultConfig()
	on.tracer = tracekit.Tracer(sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter())))
	if n := handleAllocs(on); n == 0 {
		t.Errorf("tracing on: 0 allocations per record: the measurement does not see the hook")
	}
}

// The handle span's parent is the span context of the record's traceparent
// header, or the span a kgo hook put in the record's Context; a record
// without either starts a new trace rather than joining the span of the
// consumer's own context.
func TestHandleSpanIsAChildOfTheRecordsTraceparent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	cfg := defaultConfig()
	cfg.tracer = tracekit.Tracer(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	e := &engine[*kgo.Record]{cfg: cfg, toRecord: func(r *kgo.Record) *kgo.Record { return r }}
	traced := &kgo.Record{Topic: "orders", Headers: []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}}
	plain := &kgo.Record{Topic: "orders", Offset: 1}
	ambient, run := cfg.tracer.Start(context.Background(), "run")
	defer run.End()
	receiveCtx, receive := cfg.tracer.Start(context.Background(), "orders receive") // as kotel's fetch hook does
	received := &kgo.Record{Topic: "orders", Offset: 2, Context: receiveCtx, Headers: traced.Headers}
	for _, r := range []*kgo.Record{traced, plain, received} {
		_, ht := e.startHandle(ambient, ordering.Message[*kgo.Record]{Topic: r.Topic, Offset: r.Offset, Value: r})
		ht.end(errors.New("boom"), OutcomeFailed)
	}
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	if spans[2].Parent.SpanID() != receive.SpanContext().SpanID() {
		t.Errorf("record with a span in its Context: parent %s, want that span %s", spans[2].Parent.SpanID(), receive.SpanContext().SpanID())
	}
	if got := spans[0].Parent.SpanID().String(); got != "b7ad6b7169203331" || !spans[0].Parent.IsRemote() {
		t.Errorf("traced record: parent %s (remote %v), want the traceparent's b7ad6b7169203331", got, spans[0].Parent.IsRemote())
	}
	if spans[1].Parent.IsValid() {
		t.Errorf("record without traceparent: parent %s, want a new root", spans[1].Parent.SpanID())
	}
	if spans[0].Name != "handle orders" || spans[0].Status.Description != "boom" {
		t.Errorf("span %q status %q, want \"handle orders\" with the handler's error", spans[0].Name, spans[0].Status.Description)
	}
}
