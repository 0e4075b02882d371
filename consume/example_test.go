package consume_test

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
)

func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	handle := func(ctx context.Context, r *kgo.Record) error {
		fmt.Printf("order %s: %s\n", r.Key, r.Value) // records of one key arrive in order
		return nil
	}
	c, err := consume.New(handle,
		consume.KgoOpts(
			kgo.SeedBrokers("localhost:9092"),
			kgo.ConsumerGroup("billing"),
			kgo.ConsumeTopics("orders"),
		),
		consume.OrderBy(consume.KeyOrder),
		consume.Concurrency(64),
		consume.OnError(func(f consume.Failure) {
			log.Printf("order %s at offset %d blocked: %v", f.Record.Key, f.Record.Offset, f.Err)
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	// Run returns once ctx ends and the records it held are handled and
	// committed.
	if err := c.Run(ctx); err != nil {
		log.Print(err)
	}
}

// Global order: one partition, one record at a time, one group member.
func ExampleNew_globalOrder() {
	handle := func(ctx context.Context, r *kgo.Record) error { return nil }
	c, err := consume.New(handle,
		consume.KgoOpts(kgo.SeedBrokers("localhost:9092"), kgo.ConsumerGroup("ledger"),
			kgo.ConsumeTopics("ledger-events")), // a topic created with one partition
		consume.OrderBy(consume.PartitionOrder),
	)
	if err != nil {
		log.Fatal(err)
	}
	_ = c.Run(context.Background())
}

func ExampleNewSarama() {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Consumer.Offsets.AutoCommit.Enable = false // the handler commits what it handled
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	client, err := sarama.NewClient([]string{"localhost:9092"}, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	group, err := sarama.NewConsumerGroupFromClient("billing", client)
	if err != nil {
		log.Fatal(err)
	}
	defer group.Close()

	h, err := consume.NewSarama(client, "billing", func(ctx context.Context, m *sarama.ConsumerMessage) error {
		fmt.Printf("order %s: %s\n", m.Key, m.Value)
		return nil
	}, consume.OrderBy(consume.KeyOrder), consume.Concurrency(64))
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	if err := h.Run(context.Background(), group, []string{"orders"}); err != nil {
		log.Print(err)
	}
}

// A Consumer on a client the application creates and closes itself.
func ExampleClient() {
	hooks := consume.NewHooks()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers("localhost:9092"),
		kgo.ConsumerGroup("billing"),
		kgo.ConsumeTopics("orders"),
	}, hooks.KgoOpts()...)...)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close() // after Run: leaves the group, committing what is left

	c, err := consume.New(func(ctx context.Context, r *kgo.Record) error { return nil },
		consume.Client(cl, hooks), consume.Concurrency(64))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		log.Print(err)
	}
}
