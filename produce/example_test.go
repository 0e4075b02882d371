package produce_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

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
	ctx := context.Background()
	p, err := produce.New(ctx, produce.NoLoss, kgo.SeedBrokers("kafka-1:9092"))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	err = p.Send(ctx, &kgo.Record{Topic: "orders", Value: []byte("order 1")})
	switch {
	case err == nil:
		// Every in-sync replica has the record.
	case errors.Is(err, produce.ErrOutcomeUnknown):
		// It may have been written: re-sending may duplicate it.
	case errors.Is(err, produce.ErrNotWritten):
		// Certainly not written: safe to re-send.
	}
}

func ExampleAudit() {
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers("kafka-1:9092"))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	report, err := produce.Audit(ctx, kadm.NewClient(cl), []string{"orders"})
	if err != nil {
		log.Fatal(err)
	}
	report.WriteText(os.Stdout)
	if !report.Passed() {
		os.Exit(1)
	}
}
