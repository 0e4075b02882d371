// Command ordered-consumer consumes a topic with kafkaguard's consume
// package, handling records in parallel while keeping each key's order,
// and checks that order as it goes.
//
// Without -bootstrap it starts the bundled broker in-process (kafkatest),
// creates the topic, produces demo records with the NoLoss preset and
// consumes them:
//
//	go run ./examples/ordered-consumer
//	go run ./examples/ordered-consumer -order partition -produce 5000 -keys 100
//
// With -bootstrap it consumes an existing cluster's topic until interrupted
// (or until -expect records were handled), producing -produce demo records
// first if asked:
//
//	go run ./examples/ordered-consumer -bootstrap localhost:9092 -topic orders -produce 1000
//
// Record values are "key:sequence"; the program reports any key whose
// sequence goes backwards.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ordered-consumer:", err)
		os.Exit(1)
	}
}

type options struct {
	bootstrap   string
	topic       string
	group       string
	order       consume.Order
	concurrency int
	produce     int
	keys        int
	partitions  int
	expect      int
	work        time.Duration
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("ordered-consumer", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.bootstrap, "bootstrap", "", "comma-separated brokers; empty starts the bundled broker in-process")
	fs.StringVar(&o.topic, "topic", "orders", "topic to consume")
	fs.StringVar(&o.group, "group", "ordered-consumer", "consumer group")
	order := fs.String("order", "key", "ordering: key, partition or unordered")
	fs.IntVar(&o.concurrency, "concurrency", 16, "records handled at once")
	fs.IntVar(&o.produce, "produce", -1, "demo records to produce first (default 2000 with the bundled broker, 0 otherwise)")
	fs.IntVar(&o.keys, "keys", 50, "distinct keys of the demo records")
	fs.IntVar(&o.partitions, "partitions", 3, "partitions of the topic the bundled broker creates")
	fs.IntVar(&o.expect, "expect", -1, "stop after this many records (default: the produced count; 0 runs until interrupted)")
	fs.DurationVar(&o.work, "work", 2*time.Millisecond, "longest simulated work per record (random 0..work)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch *order {
	case "key":
		o.order = consume.KeyOrder
	case "partition":
		o.order = consume.PartitionOrder
	case "unordered":
		o.order = consume.Unordered
	default:
		return o, fmt.Errorf("-order %q: want key, partition or unordered", *order)
	}
	if o.produce < 0 {
		o.produce = 0
		if o.bootstrap == "" {
			o.produce = 2000
		}
	}
	if o.expect < 0 {
		o.expect = o.produce
	}
	if o.keys < 1 || o.partitions < 1 || o.concurrency < 1 || o.work < 0 {
		return o, errors.New("-keys, -partitions and -concurrency must be >= 1, -work >= 0")
	}
	if o.bootstrap == "" && o.expect == 0 {
		return o, errors.New("with the bundled broker, -produce or -expect must be > 0")
	}
	return o, nil
}

// checker follows each key's sequence numbers.
type checker struct {
	mu       sync.Mutex
	last     map[string]int
	handled  int
	reversed []string
	reached  chan struct{}
	expect   int
}

func (c *checker) handle(r *kgo.Record) error {
	key, s, ok := strings.Cut(string(r.Value), ":")
	seq, err := strconv.Atoi(s)
	if !ok || err != nil {
		return fmt.Errorf("value %q is not key:sequence", r.Value)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if last, seen := c.last[key]; seen && seq <= last {
		c.reversed = append(c.reversed, fmt.Sprintf("key %s: %d after %d (%s/%d@%d)", key, seq, last, r.Topic, r.Partition, r.Offset))
	}
	c.last[key] = seq
	c.handled++
	if c.handled == c.expect {
		close(c.reached)
	}
	return nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args, out)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	seeds := strings.Split(o.bootstrap, ",")
	if o.bootstrap == "" {
		cluster, err := kafkatest.Start(ctx)
		if err != nil {
			return fmt.Errorf("start the bundled broker: %w", err)
		}
		defer cluster.Close()
		seeds = cluster.Bootstrap()
		if err := cluster.CreateTopic(ctx, o.topic, int32(o.partitions), 1, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "bundled broker at %s, topic %s with %d partitions\n", strings.Join(seeds, ","), o.topic, o.partitions)
	}
	if o.produce > 0 {
		if err := produceDemo(ctx, seeds, o); err != nil {
			return err
		}
		fmt.Fprintf(out, "produced %d records of %d keys (NoLoss preset)\n", o.produce, o.keys)
	}

	chk := &checker{last: map[string]int{}, reached: make(chan struct{}), expect: o.expect}
	handler := func(ctx context.Context, r *kgo.Record) error {
		if o.work > 0 { // simulated work, so records of different keys overlap
			select {
			case <-time.After(rand.N(o.work)):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return chk.handle(r)
	}
	cons, err := consume.New(handler,
		consume.KgoOpts(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(o.group), kgo.ConsumeTopics(o.topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())),
		consume.OrderBy(o.order), consume.Concurrency(o.concurrency), consume.Logger(logger),
		consume.OnError(func(f consume.Failure) {
			fmt.Fprintf(out, "record %s/%d@%d failed, its %s waits: %v\n", f.Record.Topic, f.Record.Partition, f.Record.Offset,
				map[consume.Order]string{consume.KeyOrder: "key", consume.PartitionOrder: "partition", consume.Unordered: "slot"}[o.order], f.Err)
		}))
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- cons.Run(runCtx) }()
	fmt.Fprintf(out, "consuming %s as group %s, %s, concurrency %d\n", o.topic, o.group, o.order, o.concurrency)
	select {
	case <-chk.reached:
	case <-ctx.Done():
	case err := <-done:
		return fmt.Errorf("consumer stopped: %w", err)
	}
	elapsed := time.Since(start)
	stop()
	if err := <-done; err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}

	chk.mu.Lock()
	defer chk.mu.Unlock()
	fmt.Fprintf(out, "handled %d records of %d keys in %v\n", chk.handled, len(chk.last), elapsed.Round(time.Millisecond))
	// The run's context may be over (interrupted): the summary gets its own.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	if err := printCommitted(sctx, out, seeds, o); err != nil {
		return err
	}
	if o.order == consume.Unordered {
		return nil
	}
	if len(chk.reversed) > 0 {
		for _, r := range chk.reversed[:min(10, len(chk.reversed))] {
			fmt.Fprintln(out, "out of order:", r)
		}
		return fmt.Errorf("%d records out of order", len(chk.reversed))
	}
	fmt.Fprintln(out, "every key in order")
	return nil
}

func produceDemo(ctx context.Context, seeds []string, o options) error {
	p, err := produce.New(ctx, produce.NoLoss, kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(o.topic))
	if err != nil {
		return err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i := range o.produce {
		key := fmt.Sprintf("key-%03d", i%o.keys)
		wg.Add(1)
		p.SendAsync(ctx, &kgo.Record{Key: []byte(key), Value: fmt.Appendf(nil, "%s:%d", key, i/o.keys)}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				first = cmpOr(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(first, p.Close(ctx))
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func printCommitted(ctx context.Context, out io.Writer, seeds []string, o options) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, o.group)
	if err != nil {
		return fmt.Errorf("read committed offsets: %w", err)
	}
	var parts []string
	offs.Each(func(r kadm.OffsetResponse) {
		if r.Topic == o.topic {
			parts = append(parts, fmt.Sprintf("%d=%d", r.Partition, r.At))
		}
	})
	slices.Sort(parts)
	fmt.Fprintf(out, "committed offsets of %s: %s\n", o.topic, strings.Join(parts, " "))
	return nil
}
