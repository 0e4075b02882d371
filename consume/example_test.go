package consume_test

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

func ExampleNew() {
	// kafkatest's bundled broker stands in for a cluster: "orders" holds
	// the events of orders A and B.
	brokers, closeBroker := exampleBroker("orders", "A:created", "B:created", "A:paid", "B:paid", "A:shipped")
	defer closeBroker()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	var mu sync.Mutex
	events := map[string][]string{}
	handle := func(ctx context.Context, r *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		events[string(r.Key)] = append(events[string(r.Key)], string(r.Value)) // records of one key arrive in order
		if len(events["A"])+len(events["B"]) == 5 {
			stop() // the example stops once it has handled its five records
		}
		return nil
	}
	c, err := consume.New(handle,
		consume.KgoOpts(
			kgo.SeedBrokers(brokers...),
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
	fmt.Println("A:", events["A"])
	fmt.Println("B:", events["B"])
	fmt.Println("committed:", exampleCommitted(brokers, "billing", "orders"))
	// Output:
	// A: [created paid shipped]
	// B: [created paid]
	// committed: 5
}

// Global order: one partition, one record at a time, one group member.
func ExampleNew_globalOrder() {
	brokers, closeBroker := exampleBroker("ledger-events", "acct:deposit 100", "acct:withdraw 30", "acct:deposit 5")
	defer closeBroker()

	ctx, cancel := context.WithCancel(context.Background())
	handled := 0
	handle := func(ctx context.Context, r *kgo.Record) error {
		fmt.Println(string(r.Value)) // one at a time, in offset order
		if handled++; handled == 3 {
			cancel() // the example stops after its three records
		}
		return nil
	}
	c, err := consume.New(handle,
		consume.KgoOpts(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("ledger"),
			kgo.ConsumeTopics("ledger-events")), // a topic created with one partition
		consume.OrderBy(consume.PartitionOrder),
	)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		log.Print(err)
	}
	fmt.Println("committed:", exampleCommitted(brokers, "ledger", "ledger-events"))
	// Output:
	// deposit 100
	// withdraw 30
	// deposit 5
	// committed: 3
}

func ExampleNewSarama() {
	brokers, closeBroker := exampleBroker("orders", "A:created", "B:created", "A:paid", "B:paid", "A:shipped")
	defer closeBroker()

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Consumer.Offsets.AutoCommit.Enable = false // the handler commits what it handled
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	group, err := sarama.NewConsumerGroupFromClient("billing", client)
	if err != nil {
		log.Fatal(err)
	}
	defer group.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	events := map[string][]string{}
	h, err := consume.NewSarama(client, "billing", func(ctx context.Context, m *sarama.ConsumerMessage) error {
		mu.Lock()
		defer mu.Unlock()
		events[string(m.Key)] = append(events[string(m.Key)], string(m.Value))
		if len(events["A"])+len(events["B"]) == 5 {
			cancel() // the example stops once it has handled its five records
		}
		return nil
	}, consume.OrderBy(consume.KeyOrder), consume.Concurrency(64))
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	if err := h.Run(ctx, group, []string{"orders"}); err != nil {
		log.Print(err)
	}
	fmt.Println("A:", events["A"])
	fmt.Println("B:", events["B"])
	fmt.Println("committed:", exampleCommitted(brokers, "billing", "orders"))
	// Output:
	// A: [created paid shipped]
	// B: [created paid]
	// committed: 5
}

// A Consumer on a client the application creates and closes itself.
func ExampleClient() {
	brokers, closeBroker := exampleBroker("orders", "A:created", "B:created", "A:paid")
	defer closeBroker()

	hooks := consume.NewHooks()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup("billing"),
		kgo.ConsumeTopics("orders"),
	}, hooks.KgoOpts()...)...)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close() // after Run: leaves the group, committing what is left

	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	handled := 0
	c, err := consume.New(func(ctx context.Context, r *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if handled++; handled == 3 {
			cancel() // the example stops once it has handled its three records
		}
		return nil
	}, consume.Client(cl, hooks), consume.Concurrency(64))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		log.Print(err)
	}
	fmt.Println("handled:", handled)
	fmt.Println("committed:", exampleCommitted(brokers, "billing", "orders"))
	// Output:
	// handled: 3
	// committed: 3
}

// exampleBroker starts kafkatest's bundled broker with a one-partition
// topic holding records, each "key:value", and returns its bootstrap
// addresses and the function that stops it.
func exampleBroker(topic string, records ...string) (brokers []string, closeBroker func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kafkatest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.CreateTopic(ctx, topic, 1, 1, nil); err != nil {
		log.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	rs := make([]*kgo.Record, len(records))
	for i, kv := range records {
		k, v, _ := strings.Cut(kv, ":")
		rs[i] = &kgo.Record{Key: []byte(k), Value: []byte(v)}
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		log.Fatal(err)
	}
	return c.Bootstrap(), func() { _ = c.Close() }
}

// exampleCommitted returns group's committed offset on partition 0 of
// topic.
func exampleCommitted(brokers []string, group, topic string) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		log.Fatal(err)
	}
	o, _ := offs.Lookup(topic, 0)
	return o.At
}
