package retry_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/retry"
)

// A consumer's handler failed on a record: the Parker writes its failure marker to
// orders.retry, and the Job runs it again after the backoff until the handler succeeds.
func ExampleJob() {
	ctx := context.Background()
	// kafkatest's bundled broker stands in for a cluster.
	c, err := kafkatest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for _, topic := range []string{"orders", "orders.retry", "orders.dlq"} {
		if err := c.CreateTopic(ctx, topic, 1, 1, nil); err != nil {
			log.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	fast := retry.RetryBackoff(retry.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2})

	// Consumer side: the record at orders/0@7 failed; park it, then commit offset 8.
	parker, err := retry.NewParker(cl, retry.Topic("orders"), fast)
	if err != nil {
		log.Fatal(err)
	}
	failed := &kgo.Record{Topic: "orders", Partition: 0, Offset: 7, Key: []byte("order-1"), Value: []byte("charge 10 EUR")}
	if err := parker.Park(ctx, failed, errors.New("payment service unavailable")); err != nil {
		log.Fatal(err)
	}

	// Retry side: the handler fails once more, then succeeds.
	done := make(chan struct{})
	job, err := retry.NewJob(func(ctx context.Context, m *retry.Marker) error {
		fmt.Printf("%s key %s, after %d failed attempts (last: %s)\n", m.Origin, m.Key, m.Attempts, m.LastError())
		if m.Attempts < 2 {
			return errors.New("payment service still unavailable")
		}
		close(done)
		return nil
	}, retry.Topic("orders"), fast, retry.KgoOpts(kgo.SeedBrokers(c.Bootstrap()...)))
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- job.Run(runCtx) }()
	<-done
	stop() // a graceful shutdown: commits what is finished
	fmt.Println("job stopped:", <-ran)
	// Output:
	// orders/0@7 key order-1, after 1 failed attempts (last: payment service unavailable)
	// orders/0@7 key order-1, after 2 failed attempts (last: payment service still unavailable)
	// job stopped: <nil>
}
