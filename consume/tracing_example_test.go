package consume_test

import (
	"context"
	"fmt"
	"log"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkaguard/kafkaguard/consume"
	kgproduce "github.com/kafkaguard/kafkaguard/produce"
)

// A record sent in a span is handled in a span of the same trace: the
// handler's context carries it.
func ExampleTracing() {
	brokers, closeBroker := exampleBroker("orders")
	defer closeBroker()
	spans := tracetest.NewInMemoryExporter() // an OTLP exporter in production
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	ctx := context.Background()

	hook, err := kgproduce.NewTracing(tp)
	if err != nil {
		log.Fatal(err)
	}
	p, err := kgproduce.New(ctx, kgproduce.NoLoss, kgo.SeedBrokers(brokers...), kgo.WithHooks(hook))
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = p.Close(ctx) }()
	sendCtx, span := tp.Tracer("shop").Start(ctx, "place order")
	if err := p.Send(sendCtx, &kgo.Record{Topic: "orders", Key: []byte("A"), Value: []byte("created")}); err != nil {
		log.Fatal(err)
	}
	span.End()

	runCtx, stop := context.WithCancel(ctx)
	var sameTrace bool
	c, err := consume.New(func(ctx context.Context, r *kgo.Record) error {
		sameTrace = trace.SpanContextFromContext(ctx).TraceID() == span.SpanContext().TraceID()
		stop()
		return nil
	}, consume.KgoOpts(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("orders")),
		consume.Tracing(tp))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(runCtx); err != nil {
		log.Print(err)
	}
	names := map[trace.SpanID]string{}
	for _, s := range spans.GetSpans() {
		names[s.SpanContext.SpanID()] = s.Name
	}
	for _, s := range spans.GetSpans() {
		if s.Parent.IsValid() {
			fmt.Printf("%s, child of %s\n", s.Name, names[s.Parent.SpanID()])
		}
	}
	fmt.Println("the handler's context is in the sender's trace:", sameTrace)
	// Output:
	// send orders, child of place order
	// handle orders, child of send orders
	// the handler's context is in the sender's trace: true
}
