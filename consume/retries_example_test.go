package consume_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/retry"
)

// A handler whose first call to a flaky service times out succeeds on its
// second attempt, 50 ms later; the records behind it in its key wait.
func ExampleRetries() {
	brokers, closeBroker := exampleBroker("payments", "A:charge 10", "A:refund 10")
	defer closeBroker()

	ctx, cancel := context.WithCancel(context.Background())
	errTimeout := errors.New("payment service timed out")
	handled := 0
	handle := func(ctx context.Context, r *kgo.Record) error {
		n := consume.Attempt(ctx)
		if string(r.Value) == "charge 10" && n == 1 {
			fmt.Println("charge 10: attempt 1 failed")
			return errTimeout
		}
		fmt.Printf("%s: attempt %d ok\n", r.Value, n)
		if handled++; handled == 2 {
			cancel() // the example stops after its two records
		}
		return nil
	}
	c, err := consume.New(handle,
		consume.KgoOpts(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("payer"), kgo.ConsumeTopics("payments")),
		consume.Retries(consume.RetryPolicy{Attempts: 3,
			Backoff: retry.Backoff{Initial: 50 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.2}}),
	)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		log.Print(err)
	}
	// Output:
	// charge 10: attempt 1 failed
	// charge 10: attempt 2 ok
	// refund 10: attempt 1 ok
}

// Records are written to a store in batches; a batch's offsets are
// committed once the whole batch is stored.
func ExampleNewBatch() {
	brokers, closeBroker := exampleBroker("clicks", "u1:a", "u2:b", "u1:c", "u3:d", "u2:e")
	defer closeBroker()

	ctx, cancel := context.WithCancel(context.Background())
	var stored []string
	store := func(ctx context.Context, rs []*kgo.Record) error {
		for _, r := range rs {
			stored = append(stored, string(r.Value)) // one partition's records, in offset order
		}
		if len(stored) == 5 {
			cancel()
		}
		return nil
	}
	c, err := consume.NewBatch(store,
		consume.KgoOpts(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("loader"), kgo.ConsumeTopics("clicks")),
		consume.BatchSize(100),
	)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		log.Print(err)
	}
	fmt.Println(strings.Join(stored, " "))
	fmt.Println("committed:", exampleCommitted(brokers, "loader", "clicks"))
	// Output:
	// a b c d e
	// committed: 5
}
