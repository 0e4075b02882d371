package produce_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

func ExampleApplyKgo() {
	// An application's own options, two of which break NoLoss.
	mine := []kgo.Opt{
		kgo.SeedBrokers("kafka-1:9092"),
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.RecordRetries(3),
	}
	opts, err := produce.ApplyKgo(produce.NoLoss, mine)
	fmt.Println(opts == nil, errors.Is(err, produce.ErrUnsafeConfig))
	for _, ce := range produce.ConfigErrors(err) {
		fmt.Printf("%s = %s\n", ce.Setting, ce.Value)
	}
	// Output:
	// true true
	// RequiredAcks = LeaderAck
	// RecordRetries = 3
}

func ExampleApplySarama() {
	cfg := sarama.NewConfig()
	if err := produce.ApplySarama(produce.NoLoss, cfg); err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Producer.RequiredAcks == sarama.WaitForAll, cfg.Producer.Idempotent,
		cfg.Net.MaxOpenRequests, cfg.Producer.Retry.Max)
	// Output: true true 1 1200
}

func ExampleValidateSarama() {
	err := produce.ValidateSarama(produce.NoLoss, sarama.NewConfig())
	for _, ce := range produce.ConfigErrors(err) {
		fmt.Printf("%s = %s\n", ce.Setting, ce.Value)
	}
	// Output:
	// Producer.RequiredAcks = WaitForLocal
	// Producer.Idempotent = false
	// Net.MaxOpenRequests = 5
	// Producer.Retry.Max = 3
}

func ExampleProducer_Send() {
	// kafkatest's bundled broker stands in for a cluster.
	brokers, closeBroker := exampleBroker("orders")
	defer closeBroker()

	ctx := context.Background()
	p, err := produce.New(ctx, produce.NoLoss, kgo.SeedBrokers(brokers...))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	r := &kgo.Record{Topic: "orders", Value: []byte("order 1")}
	err = p.Send(ctx, r)
	switch {
	case err == nil:
		// Every in-sync replica has the record.
		fmt.Printf("written to %s partition %d at offset %d\n", r.Topic, r.Partition, r.Offset)
	case errors.Is(err, produce.ErrOutcomeUnknown):
		// It may have been written: re-sending may duplicate it.
	case errors.Is(err, produce.ErrNotWritten):
		// Certainly not written: safe to re-send.
	}
	// Output: written to orders partition 0 at offset 0
}

func ExampleProducer_Transact() {
	brokers, closeBroker := exampleBroker("payments")
	defer closeBroker()

	ctx := context.Background()
	p, err := produce.New(ctx, produce.ExactlyOnce, kgo.SeedBrokers(brokers...),
		kgo.TransactionalID("payments-writer-1"), kgo.DefaultProduceTopic("payments"))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	err = p.Transact(ctx, func(ctx context.Context) error {
		for _, v := range []string{"debit", "credit"} {
			if err := p.Send(ctx, &kgo.Record{Value: []byte(v)}); err != nil {
				return err
			}
		}
		return nil // both records commit together
	})
	fmt.Println("committed:", err == nil)

	err = p.Transact(ctx, func(ctx context.Context) error {
		if err := p.Send(ctx, &kgo.Record{Value: []byte("refund")}); err != nil {
			return err
		}
		return errors.New("the refund failed its check")
	})
	// A consumer with produce.KgoConsumerOpts(produce.ExactlyOnce)
	// (read_committed) never reads "refund".
	fmt.Println("aborted:", errors.Is(err, produce.ErrTxnAborted))
	// Output:
	// committed: true
	// aborted: true
}

func ExampleSaramaAsyncProducer() {
	brokers, closeBroker := exampleBroker("orders")
	defer closeBroker()
	ctx := context.Background()

	sp, err := produce.NewSaramaAsync(brokers, produce.NoLoss, nil)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	acked := 0
	for i := range 3 {
		msg := &sarama.ProducerMessage{Topic: "orders", Value: sarama.StringEncoder(fmt.Sprint(i))}
		sp.SendAsync(ctx, msg, func(msg *sarama.ProducerMessage, err error) {
			if err != nil {
				// errors.Is(err, produce.ErrOutcomeUnknown): it may have been written.
				fmt.Println("not acknowledged:", err)
				return
			}
			mu.Lock()
			acked++
			mu.Unlock()
		})
	}
	// Close flushes: every callback has run when it returns.
	if err := sp.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("acknowledged:", acked)
	// Output: acknowledged: 3
}

func ExampleAudit() {
	// The bundled broker, one node: "orders" has a single replica, which
	// the audit reports.
	brokers, closeBroker := exampleBroker("orders")
	defer closeBroker()

	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	report, err := produce.Audit(ctx, kadm.NewClient(cl), []string{"orders"})
	if err != nil {
		log.Fatal(err)
	}
	report.WriteText(os.Stdout)
	fmt.Println("passed:", report.Passed()) // a CI step would exit with status 1 when false
	// Output:
	// FAIL  broker 0      default.replication.factor >= 3           1 (server.properties)
	// FAIL  broker 0      min.insync.replicas >= 2                  1 (server.properties)
	// pass  broker 0      unclean.leader.election.enable = false    false (server.properties)
	// FAIL  topic orders  replication.factor >= 3                   1 (least over partitions)
	// FAIL  topic orders  min.insync.replicas >= 2                  1 (Kafka default)
	// FAIL  topic orders  min.insync.replicas < replication.factor  1 < 1
	// pass  topic orders  unclean.leader.election.enable = false    false (Kafka default)
	//
	// 5 of 7 checks failed:
	// - broker 0: default.replication.factor >= 3: set default.replication.factor=3 on every broker; topics created without a replication factor get it
	// - broker 0: min.insync.replicas >= 2: set min.insync.replicas=2 on every broker, the default for topics that do not set it
	// - topic orders: replication.factor >= 3: add replicas until every partition of orders has 3 with kafka-reassign-partitions.sh, or recreate the topic with --replication-factor 3
	// - topic orders: min.insync.replicas >= 2: kafka-configs.sh --alter --entity-type topics --entity-name orders --add-config min.insync.replicas=2
	// - topic orders: min.insync.replicas < replication.factor: with min.insync.replicas >= replication.factor one broker down stops every acks=all write to orders; raise the replication factor to 3 or more
	// passed: false
}

// exampleBroker starts kafkatest's bundled broker with a one-partition
// topic and returns its bootstrap addresses and the function that stops
// it.
func exampleBroker(topic string) (brokers []string, closeBroker func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kafkatest.Start(ctx)
	if err == nil {
		err = c.CreateTopic(ctx, topic, 1, 1, nil)
	}
	if err != nil {
		log.Fatal(err)
	}
	return c.Bootstrap(), func() { _ = c.Close() }
}
