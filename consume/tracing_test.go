package consume_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// A SaramaHandler with Tracing runs the handler in a "handle TOPIC" span
// whose parent is the message's traceparent header, as a Consumer does.
func TestSaramaHandlerTracesEachMessageFromItsTraceparent(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "sarama-traced", "g-sarama-traced"
	newTopic(t, c, topic, 1)
	client, err := sarama.NewClient(c.Bootstrap(), saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	seen := make(chan trace.SpanContext, 1)
	h, err := consume.NewSarama(client, group, func(ctx context.Context, _ *sarama.ConsumerMessage) error {
		seen <- trace.SpanContextFromContext(ctx)
		return nil
	}, consume.Tracing(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	ctx, cancel := context.WithCancel(context.Background())
	sess := &fakeSession{ctx: ctx, marked: map[int32]int64{}}
	claim := &fakeClaim{topic: topic, partition: 0, msgs: make(chan *sarama.ConsumerMessage, 1)}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := h.ConsumeClaim(sess, claim); err != nil {
			t.Error(err)
		}
	})
	defer func() { cancel(); wg.Wait() }()
	claim.msgs <- &sarama.ConsumerMessage{Topic: topic, Value: []byte("v"), Headers: []*sarama.RecordHeader{
		{Key: []byte("traceparent"), Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}}

	var sc trace.SpanContext
	select {
	case sc = <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not run")
	}
	if sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("handler's span in trace %s, want the message's 0af7651916cd43dd8448eb211c80319c", sc.TraceID())
	}
	testkit.WaitFor(t, 10*time.Second, "the handle span", func() bool { return len(exp.GetSpans()) == 1 })
	s := exp.GetSpans()[0]
	if s.Name != "handle "+topic || s.Parent.SpanID().String() != "b7ad6b7169203331" || s.SpanContext.SpanID() != sc.SpanID() {
		t.Errorf("span %q parent %s id %s, want %q, parent b7ad6b7169203331, the handler's span %s",
			s.Name, s.Parent.SpanID(), s.SpanContext.SpanID(), "handle "+topic, sc.SpanID())
	}
}
