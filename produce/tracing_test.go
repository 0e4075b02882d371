package produce_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kafkaguard/kafkaguard/produce"
)

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// The send span is a child of the record's context and its trace context
// goes into the traceparent header; a record that already has one (a record
// forwarded with its headers) keeps it; a failure sets the span's error.
func TestTracingHookWritesTheSendSpanIntoTheHeadersUnlessTheRecordHasOne(t *testing.T) {
	if _, err := produce.NewTracing(nil); !errors.Is(err, produce.ErrInvalidConfig) {
		t.Errorf("NewTracing(nil): %v, want ErrInvalidConfig", err)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	hook, err := produce.NewTracing(tp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("app").Start(context.Background(), "app")
	const forwarded = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	fresh := &kgo.Record{Topic: "orders", Context: ctx}
	kept := &kgo.Record{Topic: "orders", Context: ctx, Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(forwarded)}}}
	for _, r := range []*kgo.Record{fresh, kept} {
		hook.OnProduceRecordBuffered(r)
	}
	fresh.Partition, fresh.Offset = 2, 41
	hook.OnProduceRecordUnbuffered(fresh, nil)
	hook.OnProduceRecordUnbuffered(kept, errors.New("NOT_ENOUGH_REPLICAS"))
	parent.End()

	spans := exp.GetSpans()
	if len(spans) != 3 || spans[0].Name != "send orders" || spans[1].Name != "send orders" {
		t.Fatalf("spans %v, want two \"send orders\" and the app's", spans)
	}
	send := spans[0]
	if send.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("send span parent %s, want the record context's %s", send.Parent.SpanID(), parent.SpanContext().SpanID())
	}
	want := "00-" + send.SpanContext.TraceID().String() + "-" + send.SpanContext.SpanID().String() + "-01"
	if got := header(fresh, "traceparent"); got != want {
		t.Errorf("traceparent %q, want the send span's %q", got, want)
	}
	if got := header(kept, "traceparent"); got != forwarded || len(kept.Headers) != 1 {
		t.Errorf("a forwarded record's traceparent became %q (%d headers), want %q kept", got, len(kept.Headers), forwarded)
	}
	var offset string
	for _, kv := range send.Attributes {
		if kv.Key == "messaging.kafka.offset" {
			offset = kv.Value.Emit()
		}
	}
	if offset != "41" {
		t.Errorf("send span offset %q, want 41", offset)
	}
	if failed := spans[1]; failed.Status.Code.String() != "Error" || !strings.Contains(failed.Status.Description, "NOT_ENOUGH_REPLICAS") {
		t.Errorf("failed send: status %v %q, want the error", failed.Status.Code, failed.Status.Description)
	}
}
