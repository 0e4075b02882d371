// Command franzgo shows how an application that already builds a franz-go
// client from its own []kgo.Opt adopts kafkaguard's NoLoss preset: the
// options it keeps, the ones the preset refuses (and why), and a producer
// whose every successful send is on every in-sync replica, keys placed by
// murmur2 (package partitioner) as the sarama example places them.
//
// Without -bootstrap it starts the bundled 3-broker cluster in-process
// (kafkatest) and creates the topic there:
//
//	go run ./examples/wrap-producer/franzgo
//
// With -bootstrap it produces to that cluster, creating the topic
// (replication factor 3, min.insync.replicas=2) if it is missing:
//
//	go run ./examples/wrap-producer/franzgo -bootstrap localhost:9092 -topic orders -n 10
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/partitioner"
	"github.com/kafkaguard/kafkaguard/produce"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "franzgo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("franzgo", flag.ContinueOnError)
	fs.SetOutput(out)
	bootstrap := fs.String("bootstrap", "", "comma-separated brokers; empty starts the bundled cluster in-process")
	topic := fs.String("topic", "orders", "topic to produce to")
	n := fs.Int("n", 5, "records to produce")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return fmt.Errorf("-n must be at least 1, got %d", *n)
	}

	brokers := strings.Split(*bootstrap, ",")
	if *bootstrap == "" {
		c, err := kafkatest.Start(ctx, kafkatest.Brokers(3))
		if err != nil {
			return err
		}
		defer c.Close()
		brokers = c.Bootstrap()
		fmt.Fprintf(out, "started the bundled cluster at %s\n", strings.Join(brokers, ","))
	}
	if err := ensureTopic(ctx, brokers, *topic); err != nil {
		return err
	}

	// The application's options, as it had them before kafkaguard.
	appOpts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(*topic),
		kgo.ClientID("orders-service"),
		kgo.ProducerLinger(5 * time.Millisecond),
		// murmur2, as Java and franz-go's default: the sarama example sets
		// the same, so a key lands on one partition from either client.
		kgo.RecordPartitioner(partitioner.Kgo(partitioner.HashMurmur2)),
	}

	// A colleague's "faster" settings: the preset refuses them, naming
	// each setting and its fix, all at once.
	fast := append(appOpts[:len(appOpts):len(appOpts)],
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.RecordRetries(3))
	if _, err := produce.ApplyKgo(produce.NoLoss, fast); err != nil {
		fmt.Fprintln(out, "NoLoss refuses the fast options:")
		for _, ce := range produce.ConfigErrors(err) {
			fmt.Fprintf(out, "  %s = %s: %s\n", ce.Setting, ce.Value, ce.Fix)
		}
	}

	// The application's own options pass: NoLoss goes in front of them.
	p, err := produce.New(ctx, produce.NoLoss, appOpts...)
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	for i := range *n {
		r := &kgo.Record{Key: []byte(fmt.Sprintf("order-%d", i%3)), Value: []byte(fmt.Sprintf("order %d", i))}
		if err := p.Send(ctx, r); err != nil {
			// Every failure says whether the record may have been written.
			if errors.Is(err, produce.ErrOutcomeUnknown) {
				return fmt.Errorf("record %d may have been written, re-sending could duplicate it: %w", i, err)
			}
			return fmt.Errorf("record %d not written: %w", i, err)
		}
		fmt.Fprintf(out, "acked %s %q at %s/%d offset %d\n", r.Key, r.Value, r.Topic, r.Partition, r.Offset)
	}
	return nil
}

// ensureTopic creates the topic with the no-loss settings unless it exists.
func ensureTopic(ctx context.Context, brokers []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	two, off := "2", "false"
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 3,
		map[string]*string{"min.insync.replicas": &two, "unclean.leader.election.enable": &off}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}
