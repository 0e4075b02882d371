package retry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/retry"
)

// spanNamed returns the one span named name, failing the test if there is
// not exactly one.
func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1; spans: %s", len(found), name, spanList(spans))
	}
	return found[0]
}

func spanList(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "\n  %q %s parent %s links %d", s.Name, s.SpanContext.SpanID(), s.Parent.SpanID(), len(s.Links))
	}
	return b.String()
}

func attr(s tracetest.SpanStub, key attribute.Key) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// checkChild fails unless child's parent is parent's span.
func checkChild(t *testing.T, child, parent tracetest.SpanStub) {
	t.Helper()
	if child.Parent.SpanID() != parent.SpanContext.SpanID() || child.SpanContext.TraceID() != parent.SpanContext.TraceID() {
		t.Errorf("span %q: parent %s/%s, want %q %s/%s", child.Name, child.Parent.TraceID(), child.Parent.SpanID(),
			parent.Name, parent.SpanContext.TraceID(), parent.SpanContext.SpanID())
	}
}

// checkLinked fails unless s links to to's span as the record's span.
func checkLinked(t *testing.T, s, to tracetest.SpanStub) {
	t.Helper()
	for _, l := range s.Links {
		if l.SpanContext.SpanID() == to.SpanContext.SpanID() && l.SpanContext.TraceID() == to.SpanContext.TraceID() {
			return
		}
	}
	t.Errorf("span %q has no link to %q (%s); links: %v", s.Name, to.Name, to.SpanContext.SpanID(), s.Links)
}

// A record sent in a span, whose handler fails in the consumer and again in
// the retry Job (MaxAttempts 2), leaves one trace: send → handle → park →
// retry → dead-letter, each a child of the one before, each retry-path span
// linked to the send span, the handler's own span a child of handle.
func TestTracingFollowsARecordFromItsProducerThroughParkAndRetryToTheDeadLetter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "traced", 1)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	hook, err := produce.NewTracing(tp)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := produce.New(ctx, produce.NoLoss, kgo.SeedBrokers(e.c.Bootstrap()...), kgo.WithHooks(hook))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pr.Close(context.Background()) }()
	app := tp.Tracer("app")
	sctx, order := app.Start(ctx, "place order")
	if err := pr.Send(sctx, &kgo.Record{Topic: e.topic, Key: []byte("order-1"), Value: []byte("42 EUR")}); err != nil {
		t.Fatal(err)
	}
	order.End()

	parker, err := retry.NewParker(e.cl, retry.RetryBackoff(fastBackoff), retry.MaxAttempts(2), retry.Tracing(tp))
	if err != nil {
		t.Fatal(err)
	}
	c, err := consume.New(func(ctx context.Context, r *kgo.Record) error {
		_, charge := app.Start(ctx, "charge card")
		charge.End()
		return errors.New("card declined")
	}, consume.KgoOpts(kgo.SeedBrokers(e.c.Bootstrap()...), kgo.ConsumerGroup("traced-consumer"), kgo.ConsumeTopics(e.topic)),
		consume.RetryPath(parker), consume.Tracing(tp))
	if err != nil {
		t.Fatal(err)
	}
	cctx, stopConsumer := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- c.Run(cctx) }()
	defer func() { stopConsumer(); <-consumed }()

	j, err := retry.NewJob(func(ctx context.Context, m *retry.Marker) error {
		return errors.New("card declined again")
	}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.MaxAttempts(2), retry.Tracing(tp))
	if err != nil {
		t.Fatal(err)
	}
	runJob(t, j)
	testkit.WaitFor(t, 30*time.Second, "the dead-letter span", func() bool {
		for _, s := range exp.GetSpans() {
			if s.Name == "dead-letter "+e.topic {
				return true
			}
		}
		return false
	}, func() string { return spanList(exp.GetSpans()) })

	spans := exp.GetSpans()
	root := spanNamed(t, spans, "place order")
	send := spanNamed(t, spans, "send "+e.topic)
	handle := spanNamed(t, spans, "handle "+e.topic)
	charge := spanNamed(t, spans, "charge card")
	park := spanNamed(t, spans, "park "+e.topic)
	attempt := spanNamed(t, spans, "retry "+e.topic)
	dead := spanNamed(t, spans, "dead-letter "+e.topic)

	checkChild(t, send, root)
	checkChild(t, handle, send)
	checkChild(t, charge, handle)
	checkChild(t, park, handle)
	checkChild(t, attempt, park) // through the marker's kafkaguard.retry.traceparent
	checkChild(t, dead, attempt)
	for _, s := range []tracetest.SpanStub{park, attempt, dead} {
		checkLinked(t, s, send)
	}
	for s, want := range map[*tracetest.SpanStub]trace.SpanKind{&send: trace.SpanKindProducer, &handle: trace.SpanKindConsumer,
		&park: trace.SpanKindProducer, &attempt: trace.SpanKindConsumer, &dead: trace.SpanKindProducer} {
		if s.SpanKind != want {
			t.Errorf("span %q: kind %v, want %v", s.Name, s.SpanKind, want)
		}
	}
	for _, c := range []struct {
		s        tracetest.SpanStub
		key      attribute.Key
		want     string
		contains bool
	}{
		{handle, "kafkaguard.outcome", consume.OutcomeParked, false},
		{handle, "messaging.destination.name", e.topic, false},
		{park, "messaging.destination.name", e.topic + retry.RetrySuffix, false},
		{park, retry.AttrAttempts, "1", false},
		{park, retry.AttrOrigin, e.topic + "/", true},
		{attempt, retry.AttrAttempt, "2", false},
		{attempt, "kafkaguard.outcome", retry.OutcomeDeadLettered, false},
		{dead, "messaging.destination.name", e.topic + retry.DeadLetterSuffix, false},
		{dead, retry.AttrReason, retry.ReasonMaxAttempts, false},
	} {
		got := attr(c.s, c.key)
		if got != c.want && !(c.contains && strings.HasPrefix(got, c.want)) {
			t.Errorf("span %q: %s = %q, want %q", c.s.Name, c.key, got, c.want)
		}
	}
	for _, s := range []tracetest.SpanStub{handle, attempt} {
		if s.Status.Code.String() != "Error" || !strings.Contains(s.Status.Description, "card declined") {
			t.Errorf("span %q: status %v %q, want the handler's error", s.Name, s.Status.Code, s.Status.Description)
		}
	}

	// The dead letter carries the record's trace context and its own.
	dls := readAll(t, e.c, e.topic+retry.DeadLetterSuffix)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	headers := map[string]string{}
	for _, h := range dls[0].Headers {
		headers[h.Key] = string(h.Value)
	}
	if want := fmt.Sprintf("00-%s-%s-01", send.SpanContext.TraceID(), send.SpanContext.SpanID()); headers["traceparent"] != want {
		t.Errorf("dead letter traceparent %q, want the send span's %q", headers["traceparent"], want)
	}
	if want := fmt.Sprintf("00-%s-%s-01", dead.SpanContext.TraceID(), dead.SpanContext.SpanID()); headers[retry.HeaderTraceParent] != want {
		t.Errorf("dead letter %s %q, want the dead-letter span's %q", retry.HeaderTraceParent, headers[retry.HeaderTraceParent], want)
	}
}
