// Command exactly-once copies a topic to another with kafkaguard's
// exactly-once consumer (consume.NewExactlyOnce): each record's output
// and its input offset are committed in one transaction, records of
// different keys are handled in parallel, and a read_committed reader of
// the output finds every input record once, each key's in order.
//
// It starts the bundled cluster in-process (3 brokers, replication factor
// 3, min.insync.replicas 2), writes demo records "key:sequence" to the
// input topic, runs -copiers copiers in one group (each with its own
// transactional id; a second one joining makes the group rebalance
// mid-stream), and reads the output back with read_committed:
//
//	go run ./examples/exactly-once
//	go run ./examples/exactly-once -records 20000 -keys 200 -copiers 3 -txn-interval 50ms
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
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
		fmt.Fprintln(os.Stderr, "exactly-once:", err)
		os.Exit(1)
	}
}

type options struct {
	records, keys, copiers int
	txnInterval, work      time.Duration
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("exactly-once", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&o.records, "records", 5000, "demo records to copy")
	fs.IntVar(&o.keys, "keys", 50, "distinct keys of the demo records")
	fs.IntVar(&o.copiers, "copiers", 2, "copiers in the group; each after the first joins mid-stream")
	fs.DurationVar(&o.txnInterval, "txn-interval", consume.DefaultTxnInterval, "length of a transaction window")
	fs.DurationVar(&o.work, "work", time.Millisecond, "longest simulated work per record (random 0..work)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.records < 1 || o.keys < 1 || o.copiers < 1 || o.txnInterval <= 0 || o.work < 0 {
		return o, errors.New("-records, -keys and -copiers must be >= 1, -txn-interval > 0, -work >= 0")
	}
	return o, nil
}

const (
	in    = "orders"
	out   = "orders-copied"
	group = "copier"
)

func run(ctx context.Context, args []string, w io.Writer) error {
	o, err := parseFlags(args, w)
	if err != nil {
		return err
	}
	cluster, err := kafkatest.Start(ctx, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	if err != nil {
		return fmt.Errorf("start the bundled cluster: %w", err)
	}
	defer cluster.Close()
	seeds := cluster.Bootstrap()
	for _, t := range []struct {
		name string
		n    int32
	}{{in, 4}, {out, 3}} {
		if err := cluster.CreateTopic(ctx, t.name, t.n, 3, nil); err != nil {
			return err
		}
	}
	if err := produceDemo(ctx, seeds, o); err != nil {
		return err
	}
	fmt.Fprintf(w, "bundled cluster of 3 brokers at %s; produced %d records of %d keys to %s\n", strings.Join(seeds, ","), o.records, o.keys, in)

	var handled atomic.Int64
	copy := func(ctx context.Context, r *kgo.Record, outRecs *consume.Output) error {
		if o.work > 0 { // simulated work, so records of different keys overlap
			select {
			case <-time.After(rand.N(o.work)):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		outRecs.Produce(&kgo.Record{Key: r.Key, Value: append([]byte("copied "), r.Value...)})
		handled.Add(1)
		return nil
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, o.copiers)
	started := time.Now()
	var copiers []*consume.Consumer
	for i := range o.copiers {
		if i > 0 { // join mid-stream: the group rebalances, the windows it cuts are aborted
			for handled.Load() < int64(i*o.records/(o.copiers+1)) && runCtx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
		}
		c, err := consume.NewExactlyOnce(copy,
			consume.KgoOpts(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(in),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.TransactionalID(fmt.Sprintf("%s-%d", group, i)), // one per member, stable across its restarts
				kgo.DefaultProduceTopic(out)),
			consume.TxnInterval(o.txnInterval), consume.Concurrency(32),
			consume.MaxBuffered(200)) // at most 200 records held: a window ends soon after -txn-interval
		if err != nil {
			return err
		}
		copiers = append(copiers, c)
		go func() { done <- c.Run(runCtx) }()
		fmt.Fprintf(w, "copier %d started\n", i)
	}
	if err := waitCommitted(ctx, seeds); err != nil {
		return err
	}
	elapsed := time.Since(started)
	stop()
	for range o.copiers {
		if err := <-done; err != nil {
			return fmt.Errorf("copier: %w", err)
		}
	}
	var commits int64
	for _, c := range copiers {
		commits += c.Stats().Commits
	}
	fmt.Fprintf(w, "copied in %v: %d handler runs for %d records (windows aborted by the rebalance ran again), %d transactions committed\n",
		elapsed.Round(time.Millisecond), handled.Load(), o.records, commits)

	got, err := readCommitted(ctx, seeds)
	if err != nil {
		return err
	}
	return verdict(w, got, o)
}

// produceDemo writes o.records records "key:sequence" with the NoLoss preset.
func produceDemo(ctx context.Context, seeds []string, o options) error {
	p, err := produce.New(ctx, produce.NoLoss, kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(in))
	if err != nil {
		return err
	}
	defer p.Close(context.Background())
	for i := range o.records {
		key := fmt.Sprintf("k%03d", i%o.keys)
		p.SendAsync(ctx, &kgo.Record{Key: []byte(key), Value: fmt.Appendf(nil, "%s:%d", key, i/o.keys)}, nil)
	}
	return p.Flush(ctx)
}

// waitCommitted waits until the group's committed offsets reach the end
// of every input partition.
func waitCommitted(ctx context.Context, seeds []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, in)
	if err != nil {
		return err
	}
	for {
		offs, err := adm.FetchOffsets(kadm.RequireStable(ctx), group)
		if err == nil {
			at := true
			ends.Each(func(e kadm.ListedOffset) {
				if o, ok := offs.Lookup(in, e.Partition); !ok || o.At < e.Offset {
					at = false
				}
			})
			if at {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readCommitted reads the output with read_committed, up to an end mark
// written to each of its partitions.
func readCommitted(ctx context.Context, seeds []string) ([]string, error) {
	p, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(out), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return nil, err
	}
	defer p.Close()
	const mark = "end-mark"
	for i := range int32(3) {
		if err := p.ProduceSync(ctx, &kgo.Record{Partition: i, Value: []byte(mark)}).FirstErr(); err != nil {
			return nil, err
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		produce.KgoConsumerOpts(produce.ExactlyOnce)[0]) // read_committed
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var got []string
	for marks := 0; marks < 3; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == mark {
				marks++
				return
			}
			got = append(got, strings.TrimPrefix(string(r.Value), "copied "))
		})
	}
	return got, nil
}

// verdict reports missing and duplicated records and keys out of order.
func verdict(w io.Writer, got []string, o options) error {
	seen := map[string]int{}
	last := map[string]int{}
	dups, reversed := 0, 0
	for _, v := range got {
		if seen[v]++; seen[v] > 1 {
			dups++
		}
		key, s, _ := strings.Cut(v, ":")
		seq, _ := strconv.Atoi(s)
		if l, ok := last[key]; ok && seq <= l {
			reversed++
		}
		last[key] = seq
	}
	missing := o.records - len(seen)
	fmt.Fprintf(w, "read %d records of %s with read_committed: %d missing, %d duplicated, %d out of key order\n",
		len(got), out, missing, dups, reversed)
	if missing != 0 || dups != 0 || reversed != 0 {
		return errors.New("the copy is not exactly once")
	}
	fmt.Fprintln(w, "every input record copied exactly once, every key in order")
	return nil
}
