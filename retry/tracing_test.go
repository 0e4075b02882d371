package retry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
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
	return spansNamed(t, spans, name, 1)[0]
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

// spansNamed returns the spans named name, oldest first, failing the test
// unless there are n.
func spansNamed(t *testing.T, spans tracetest.SpanStubs, name string, n int) []tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != n {
		t.Fatalf("%d spans named %q, want %d; spans: %s", len(found), name, n, spanList(spans))
	}
	slices.SortFunc(found, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	return found
}

// A record sent in a span, whose handler fails in the consumer and twice in
// the retry Job (MaxAttempts 3), leaves one trace: send → handle → park →
// retry → park → retry → dead-letter, each a child of the one before, each
// retry-path span linked to the send span, the handler's own span a child of
// handle. The same with an ExactlyOnce Job, whose writes go through
// transactions.
func TestTracingFollowsARecordFromItsProducerThroughParkAndRetryToTheDeadLetter(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name string
		opts []retry.JobOpt
	}{{"at-least-once", nil}, {"exactly-once", []retry.JobOpt{retry.ExactlyOnce("traced-1"), retry.CommitInterval(100 * time.Millisecond)}}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testTracingChain(t, "traced-"+mode.name, mode.opts...)
		})
	}
}

func testTracingChain(t *testing.T, topic string, jobOpts ...retry.JobOpt) {
	e := newEnv(t, topic, 1)
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

	parker, err := retry.NewParker(e.cl, retry.RetryBackoff(fastBackoff), retry.MaxAttempts(3), retry.Tracing(tp))
	if err != nil {
		t.Fatal(err)
	}
	c, err := consume.New(func(ctx context.Context, r *kgo.Record) error {
		_, charge := app.Start(ctx, "charge card")
		charge.End()
		return errors.New("card declined")
	}, consume.KgoOpts(kgo.SeedBrokers(e.c.Bootstrap()...), kgo.ConsumerGroup(topic+"-consumer"), kgo.ConsumeTopics(e.topic)),
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
	}, append([]retry.JobOpt{retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.MaxAttempts(3),
		retry.Tracing(tp)}, jobOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	stopJob := runJob(t, j)
	testkit.WaitFor(t, 30*time.Second, "the dead-letter span", func() bool {
		for _, s := range exp.GetSpans() {
			if s.Name == "dead-letter "+e.topic {
				return true
			}
		}
		return false
	}, func() string { return spanList(exp.GetSpans()) })
	if err := stopJob(); err != nil { // an ExactlyOnce Job commits its last transaction
		t.Fatal(err)
	}

	spans := exp.GetSpans()
	root := spanNamed(t, spans, "place order")
	send := spanNamed(t, spans, "send "+e.topic)
	handle := spanNamed(t, spans, "handle "+e.topic)
	charge := spanNamed(t, spans, "charge card")
	parks := spansNamed(t, spans, "park "+e.topic, 2)
	attempts := spansNamed(t, spans, "retry "+e.topic, 2)
	dead := spanNamed(t, spans, "dead-letter "+e.topic)

	checkChild(t, send, root)
	checkChild(t, handle, send)
	checkChild(t, charge, handle)
	checkChild(t, parks[0], handle)
	checkChild(t, attempts[0], parks[0]) // through the marker's kafkaguard.retry.traceparent
	checkChild(t, parks[1], attempts[0])
	checkChild(t, attempts[1], parks[1])
	checkChild(t, dead, attempts[1])
	for _, s := range []tracetest.SpanStub{parks[0], attempts[0], parks[1], attempts[1], dead} {
		checkLinked(t, s, send)
		if s.SpanKind != map[bool]trace.SpanKind{true: trace.SpanKindConsumer, false: trace.SpanKindProducer}[strings.HasPrefix(s.Name, "retry ")] {
			t.Errorf("span %q: kind %v", s.Name, s.SpanKind)
		}
	}
	if send.SpanKind != trace.SpanKindProducer || handle.SpanKind != trace.SpanKindConsumer {
		t.Errorf("kinds: send %v, handle %v; want producer, consumer", send.SpanKind, handle.SpanKind)
	}
	for _, c := range []struct {
		s        tracetest.SpanStub
		key      attribute.Key
		want     string
		contains bool
	}{
		{handle, "kafkaguard.outcome", consume.OutcomeParked, false},
		{handle, "messaging.destination.name", e.topic, false},
		{parks[0], "messaging.destination.name", e.topic + retry.RetrySuffix, false},
		{parks[0], retry.AttrAttempts, "1", false},
		{parks[0], retry.AttrOrigin, e.topic + "/", true},
		{attempts[0], retry.AttrAttempt, "2", false},
		{attempts[0], "kafkaguard.outcome", retry.OutcomeReparked, false},
		{parks[1], retry.AttrAttempts, "2", false},
		{attempts[1], retry.AttrAttempt, "3", false},
		{attempts[1], "kafkaguard.outcome", retry.OutcomeDeadLettered, false},
		{dead, "messaging.destination.name", e.topic + retry.DeadLetterSuffix, false},
		{dead, retry.AttrReason, retry.ReasonMaxAttempts, false},
	} {
		got := attr(c.s, c.key)
		if got != c.want && !(c.contains && strings.HasPrefix(got, c.want)) {
			t.Errorf("span %q: %s = %q, want %q", c.s.Name, c.key, got, c.want)
		}
	}
	for _, s := range []tracetest.SpanStub{handle, attempts[0], attempts[1]} {
		if s.Status.Code.String() != "Error" || !strings.Contains(s.Status.Description, "card declined") {
			t.Errorf("span %q: status %v %q, want the handler's error", s.Name, s.Status.Code, s.Status.Description)
		}
	}

	// The dead letter carries the record's trace context and its own.
	dls := readCommitted(t, e.c.Bootstrap(), e.topic+retry.DeadLetterSuffix)
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

// The HTTP and command actions pass the handler context's trace context on:
// traceparent to the service, TRACEPARENT to the command.
func TestActionsCarryTheRetrySpansTraceContext(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x0a, 0xf7}, SpanID: trace.SpanID{0xb7, 0xad}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get("traceparent") }))
	defer srv.Close()
	if err := retry.HTTPPost(srv.URL, nil)(ctx, actionMarker()); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("HTTP traceparent %q, want %q", got, want)
	}
	if err := retry.HTTPPost(srv.URL, nil)(context.Background(), actionMarker()); err != nil || got != "" {
		t.Errorf("untraced HTTP: traceparent %q, err %v; want none", got, err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := retry.Exec("sh", "-c", `printf %s "$TRACEPARENT" > "$0"`, out)(ctx, actionMarker()); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != want {
		t.Errorf("command TRACEPARENT %q (%v), want %q", b, err, want)
	}
}
