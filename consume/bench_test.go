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
)

// BenchmarkParallelConsumerShape is the Confluent Parallel Consumer README's
// benchmark end to end: 10,000 records in one partition of the bundled
// broker, consumed by a group through consume.Consumer with concurrency
// 100 and a handler that sleeps 0-5 ms (seeded: the same sleep for each
// offset in every mode).
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
	}{
		{"PartitionOrder", consume.PartitionOrder, 1},
		{"KeyOrder/keys=1", consume.KeyOrder, 1},
		{"KeyOrder/keys=10", consume.KeyOrder, 10},
		{"KeyOrder/keys=100", consume.KeyOrder, 100},
		{"KeyOrder/keys=1000", consume.KeyOrder, 1000},
		{"KeyOrder/keys=10000", consume.KeyOrder, 10000},
		{"Unordered", consume.Unordered, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			topic := fmt.Sprintf("bench-%s-%d", bc.order, bc.keys)
			newTopic(b, c, topic, 1)
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
				cons, err := consume.New(handler, groupOpts(c, fmt.Sprintf("g-%s-%d", topic, i), topic),
					consume.OrderBy(bc.order), consume.Concurrency(concurrency), consume.MaxBuffered(records))
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
