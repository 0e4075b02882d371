package consume_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	kgproduce "github.com/kafkaguard/kafkaguard/produce"
)

// BenchmarkParallelConsumerShape is the Confluent Parallel Consumer README's
// benchmark end to end: 10,000 records in one partition of the bundled
// broker, consumed by a group through consume.Consumer with concurrency
// 100 and a handler that sleeps 0-5 ms (seeded: the same sleep for each
// offset in every mode). The ExactlyOnce cases run the same handler under
// NewExactlyOnce, each record also copied to an output topic in 100 ms
// transactions, and end when the transaction holding the last record
// committed.
//
//	go test -bench ParallelConsumerShape -benchtime 1x -run '^$' ./consume/
//
// It reports the time from the first record handed to the handler until
// the last one is handled (ms/run), the group join and first fetch before
// that (startup-ms), and ratios judged against the handler time measured
// in the same run, not the nominal sleeps (a sleep overshoots what it asks
// for, more so with 100 sleepers on a busy machine):
//   - ideal-ms: the sum of the handlers' measured durations / concurrency,
//     the shortest a run could take with every worker always busy;
//   - x-ideal: ms/run over ideal-ms, the dispatcher's cost (target: close
//     to 1 with enough keys);
//   - x-serial: the sum of the measured durations over ms/run, the
//     speed-up over one record at a time (which PartitionOrder costs on
//     one partition);
//   - sleep-overshoot: the measured handler time over the nominal sleeps,
//     for reference.
func BenchmarkParallelConsumerShape(b *testing.B) {
	const (
		records     = 10_000
		concurrency = 100
	)
	rng := rand.New(rand.NewPCG(42, 42))
	sleeps := make([]time.Duration, records)
	var nominal time.Duration
	for i := range sleeps {
		sleeps[i] = time.Duration(rng.Int64N(int64(5*time.Millisecond) + 1))
		nominal += sleeps[i]
	}
	c := kafkatest.NewCluster(b)

	for _, bc := range []struct {
		name  string
		order consume.Order
		keys  int
		eos   bool // NewExactlyOnce, each record copied to an output topic in 100 ms transactions
	}{
		{"PartitionOrder", consume.PartitionOrder, 1, false},
		{"KeyOrder/keys=1", consume.KeyOrder, 1, false},
		{"KeyOrder/keys=10", consume.KeyOrder, 10, false},
		{"KeyOrder/keys=100", consume.KeyOrder, 100, false},
		{"KeyOrder/keys=1000", consume.KeyOrder, 1000, false},
		{"KeyOrder/keys=10000", consume.KeyOrder, 10000, false},
		{"Unordered", consume.Unordered, 1, false},
		{"ExactlyOnce/KeyOrder/keys=100", consume.KeyOrder, 100, true},
		{"ExactlyOnce/KeyOrder/keys=10000", consume.KeyOrder, 10000, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			topic := fmt.Sprintf("bench-%s-%d-%t", bc.order, bc.keys, bc.eos)
			newTopic(b, c, topic, 1)
			if bc.eos {
				newTopic(b, c, topic+"-out", 1)
			}
			rs := make([]*kgo.Record, records)
			for i := range rs {
				rs[i] = &kgo.Record{Key: fmt.Appendf(nil, "key-%d", i%bc.keys), Value: fmt.Appendf(nil, "%d", i)}
			}
			produce(b, c, topic, rs)

			var elapsed, startup time.Duration
			var busy atomic.Int64 // the handlers' measured time, ns
			for i := range b.N {
				b.StopTimer()
				var (
					handled   atomic.Int64
					firstOnce sync.Once
					first     time.Time
					all       = make(chan struct{})
				)
				handler := func(_ context.Context, r *kgo.Record) error {
					firstOnce.Do(func() { first = time.Now() })
					began := time.Now()
					time.Sleep(sleeps[r.Offset])
					busy.Add(int64(time.Since(began)))
					if handled.Add(1) == records {
						close(all)
					}
					return nil
				}
				group := fmt.Sprintf("g-%s-%d", topic, i)
				var (
					cons      *consume.Consumer
					err       error
					committed = func() bool { return true }
				)
				if bc.eos {
					var atLast atomic.Int64
					atLast.Store(-1)
					copyHandler := func(ctx context.Context, r *kgo.Record, out *consume.Output) error {
						err := handler(ctx, r)
						out.Produce(&kgo.Record{Topic: topic + "-out", Key: r.Key, Value: r.Value})
						if handled.Load() == records {
							atLast.Store(cons.Stats().Commits)
						}
						return err
					}
					// Done once the transaction holding the last record committed.
					committed = func() bool { n := atLast.Load(); return n >= 0 && cons.Stats().Commits > n }
					cons, err = consume.NewExactlyOnce(copyHandler, groupOpts(c, group, topic), consume.KgoOpts(kgo.TransactionalID(group)),
						consume.OrderBy(bc.order), consume.Concurrency(concurrency), consume.MaxBuffered(records))
				} else {
					cons, err = consume.New(handler, groupOpts(c, group, topic),
						consume.OrderBy(bc.order), consume.Concurrency(concurrency), consume.MaxBuffered(records))
				}
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				began := time.Now()
				go func() { done <- cons.Run(ctx) }()
				select {
				case <-all:
				case <-time.After(5 * time.Minute):
					b.Fatalf("only %d of %d records handled", handled.Load(), records)
				}
				for !committed() {
					time.Sleep(time.Millisecond)
				}
				end := time.Now()
				b.StopTimer()
				elapsed += end.Sub(first)
				startup += first.Sub(began)
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			run := elapsed / time.Duration(b.N)
			serial := time.Duration(busy.Load()) / time.Duration(b.N) // measured handler time per run
			ideal := serial / concurrency
			b.ReportMetric(float64(run)/float64(time.Millisecond), "ms/run")
			b.ReportMetric(float64(startup/time.Duration(b.N))/float64(time.Millisecond), "startup-ms")
			b.ReportMetric(float64(ideal)/float64(time.Millisecond), "ideal-ms")
			b.ReportMetric(float64(run)/float64(ideal), "x-ideal")
			b.ReportMetric(float64(serial)/float64(run), "x-serial")
			b.ReportMetric(float64(serial)/float64(nominal), "sleep-overshoot")
		})
	}
}

// BenchmarkExactlyOnceVsAtLeastOnce copies 10,000 records of 100 keys over
// 4 partitions (3 brokers, RF 3, min.insync.replicas 2) to an output topic
// with the same handler work (a seeded 0-2 ms sleep per record), KeyOrder,
// concurrency 64, in each iteration once with NewExactlyOnce (100 ms
// transactions, outputs produced in the window's transaction) and once with
// New (each output sent with a NoLoss producer before the handler returns,
// as at-least-once needs).
//
//	go test -bench ExactlyOnceVsAtLeastOnce -benchtime 1x -run '^$' ./consume/
//
// It reports each mode's records/s from the first record handled until
// every output is readable by a read_committed reader (at-least-once: the
// last output acknowledged; exactly-once: the transaction holding it
// committed), and eos/alo, their ratio within the run.
func BenchmarkExactlyOnceVsAtLeastOnce(b *testing.B) {
	const (
		keys, perKey = 100, 100
		records      = keys * perKey
		concurrency  = 64
	)
	rng := rand.New(rand.NewPCG(7, 7))
	sleeps := map[string]time.Duration{}
	for _, r := range keyed(keys, perKey) {
		sleeps[string(r.Value)] = time.Duration(rng.Int64N(int64(2*time.Millisecond) + 1))
	}
	c := kafkatest.NewCluster(b, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	var eosRate, aloRate float64
	for i := range b.N {
		b.StopTimer()
		// Exactly once.
		in, out := eosTopics(b, c, fmt.Sprintf("bench-eos-%d", i), keys, perKey)
		var (
			handled    atomic.Int64
			firstOnce  sync.Once
			first      time.Time
			cons       *consume.Consumer
			lastCommit atomic.Int64
		)
		h := func(_ context.Context, r *kgo.Record, o *consume.Output) error {
			firstOnce.Do(func() { first = time.Now() })
			time.Sleep(sleeps[string(r.Value)])
			o.Produce(&kgo.Record{Key: r.Key, Value: r.Value})
			if handled.Add(1) == records {
				lastCommit.Store(cons.Stats().Commits)
			}
			return nil
		}
		var err error
		cons, err = consume.NewExactlyOnce(h, groupOpts(c, in, in), consume.KgoOpts(kgo.TransactionalID(in), kgo.DefaultProduceTopic(out)),
			consume.Concurrency(concurrency), consume.TxnInterval(100*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		eosRate += runBench(b, cons, &handled, records, func() bool {
			return handled.Load() >= records && cons.Stats().Commits > lastCommit.Load()
		}, &first)
		b.StopTimer()

		// At least once.
		in, out = eosTopics(b, c, fmt.Sprintf("bench-alo-%d", i), keys, perKey)
		p, err := kgproduce.New(context.Background(), kgproduce.NoLoss, kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(out))
		if err != nil {
			b.Fatal(err)
		}
		var handled2 atomic.Int64
		var firstOnce2 sync.Once
		var first2 time.Time
		h2 := func(ctx context.Context, r *kgo.Record) error {
			firstOnce2.Do(func() { first2 = time.Now() })
			time.Sleep(sleeps[string(r.Value)])
			if err := p.Send(ctx, &kgo.Record{Key: r.Key, Value: r.Value}); err != nil {
				return err
			}
			handled2.Add(1)
			return nil
		}
		cons2, err := consume.New(h2, groupOpts(c, in, in), consume.Concurrency(concurrency))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		aloRate += runBench(b, cons2, &handled2, records, func() bool { return handled2.Load() >= records }, &first2)
		b.StopTimer()
		_ = p.Close(context.Background())
	}
	b.ReportMetric(eosRate/float64(b.N), "eos-rec/s")
	b.ReportMetric(aloRate/float64(b.N), "alo-rec/s")
	b.ReportMetric(eosRate/aloRate, "eos/alo")
}

// runBench runs cons until done reports true and returns the records/s
// from the first record handled.
func runBench(b *testing.B, cons *consume.Consumer, handled *atomic.Int64, records int, done func() bool, first *time.Time) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- cons.Run(ctx) }()
	deadline := time.Now().Add(2 * time.Minute)
	for !done() {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d records handled", handled.Load(), records)
		}
		time.Sleep(time.Millisecond)
	}
	end := time.Now()
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return float64(records) / end.Sub(*first).Seconds()
}
