// Command sarama shows how an application that already configures sarama
// adopts kafkaguard's NoLoss preset: what ValidateSarama says about its
// existing *sarama.Config, and a producer built from that config with the
// preset applied, whose every successful send is on every in-sync replica,
// and keys placed by murmur2 (package partitioner) as franz-go and Java do, so
// that a key lands on the same partition as from the franzgo example.
//
// Without -bootstrap it starts the bundled 3-broker cluster in-process
// (kafkatest) and creates the topic there:
//
//	go run ./examples/wrap-producer/sarama
//
// With -bootstrap it produces to that cluster, creating the topic
// (replication factor 3, min.insync.replicas=2) if it is missing:
//
//	go run ./examples/wrap-producer/sarama -bootstrap localhost:9092 -topic orders -n 10
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

	"github.com/IBM/sarama"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/partitioner"
	"github.com/kafkaguard/kafkaguard/produce"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sarama:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sarama", flag.ContinueOnError)
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

	// The application's configuration, as it had it before kafkaguard:
	// sarama's defaults (acks=1, 3 retries, 5 requests in flight) plus its
	// own touches.
	cfg := sarama.NewConfig()
	cfg.ClientID = "orders-service"
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	cfg.Producer.Return.Errors = true
	// Keys on the partitions Java, franz-go and librdkafka pick (murmur2), not
	// sarama's default FNV-1a: a key produced by this service and by the
	// franzgo example (or a Java service) lands on one partition, in order.
	cfg.Producer.Partitioner = partitioner.Sarama(partitioner.HashMurmur2)

	if err := ensureTopic(brokers, cfg, *topic); err != nil {
		return err
	}

	// What NoLoss thinks of it, every setting at once, by field path.
	if err := produce.ValidateSarama(produce.NoLoss, cfg); err != nil {
		fmt.Fprintln(out, "NoLoss finds in the current config:")
		for _, ce := range produce.ConfigErrors(err) {
			fmt.Fprintf(out, "  %s = %s: %s\n", ce.Setting, ce.Value, ce.Fix)
		}
	}

	// NewSaramaSync applies NoLoss to a copy of cfg (acks=all, idempotence,
	// one request in flight, retries spanning two minutes) and refuses
	// anything it cannot fix; cfg itself is left as it was.
	p, err := produce.NewSaramaSync(brokers, produce.NoLoss, cfg)
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	for i := range *n {
		msg := &sarama.ProducerMessage{Topic: *topic,
			Key: sarama.StringEncoder(fmt.Sprintf("order-%d", i%3)), Value: sarama.StringEncoder(fmt.Sprintf("order %d", i))}
		if err := p.Send(ctx, msg); err != nil {
			// Every failure says whether the message may have been written.
			if errors.Is(err, produce.ErrOutcomeUnknown) {
				return fmt.Errorf("message %d may have been written, re-sending could duplicate it: %w", i, err)
			}
			return fmt.Errorf("message %d not written: %w", i, err)
		}
		fmt.Fprintf(out, "acked %s %q at %s/%d offset %d\n", msg.Key, msg.Value, msg.Topic, msg.Partition, msg.Offset)
	}
	return nil
}

// ensureTopic creates the topic with the no-loss settings unless it exists.
func ensureTopic(brokers []string, cfg *sarama.Config, topic string) error {
	adm, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		return err
	}
	defer adm.Close()
	two, off := "2", "false"
	err = adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 3,
		ConfigEntries: map[string]*string{"min.insync.replicas": &two, "unclean.leader.election.enable": &off}}, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}
