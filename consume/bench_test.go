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
// offset in every mode). It reports the time from the first record handed
// to the handler until the last one is handled (ms/run), the group join and
// first fetch before that (startup-ms), the ideal (total sleep /
// concurrency), the ratio to the ideal, and the speed-up over one record at
// a time (total sleep, which PartitionOrder costs on one partition).
//
//	go test -bench ParallelConsumerShape -benchtime 1x -run '^$' ./consume/
func BenchmarkParallelConsumerShape(b *testing.B) {
	const (
		records     = 10_000
		concurrency = 100
	)
	rng := rand.New(rand.NewPCG(42, 42))
	sleeps := make([]time.Duration, records)
	var total time.Duration
	for i := range sleeps {
		sleeps[i] = time.Duration(rng.Int64N(int64(5*time.Millisecond) + 1))
		total += sleeps[i]
	}
	ideal := total / concurrency
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
					time.Sleep(sleeps[r.Offset])
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
			b.ReportMetric(float64(run)/float64(time.Millisecond), "ms/run")
			b.ReportMetric(float64(startup/time.Duration(b.N))/float64(time.Millisecond), "startup-ms")
			b.ReportMetric(float64(ideal)/float64(time.Millisecond), "ideal-ms")
			b.ReportMetric(float64(run)/float64(ideal), "x-ideal")
			b.ReportMetric(float64(total)/float64(run), "x-serial")
		})
	}
}
