package retry

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// Without Tracing the span hooks of a park and of an attempt allocate
// nothing.
func TestTracingOffCostsNoAllocation(t *testing.T) {
	m := &Marker{Origin: Origin{Topic: "orders", Offset: 3}, Attempts: 1}
	rec := &kgo.Record{Topic: "orders.retry"}
	j := &Job{cfg: newConfig[JobOpt](nil), retryTopic: "orders.retry"}
	it := &item{m: m}
	ctx := context.Background()
	n := testing.AllocsPerRun(200, func() {
		wctx, span := startSpan(ctx, nil, "park", m, trace.SpanContext{}, trace.SpanKindProducer, AttrAttempts.Int(m.Attempts))
		injectTrace(wctx, span, rec)
		endWrite(span, rec, nil)
		actx, aspan := j.startAttempt(ctx, it)
		j.endAttempt(actx, aspan, m, nil)
		_ = j.markerTrace(rec)
	})
	if n != 0 {
		t.Errorf("tracing off: %v allocations, want 0", n)
	}
}
