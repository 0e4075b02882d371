package ordering

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkParallelConsumerShape has the shape of the benchmark in the
// Confluent Parallel Consumer README: 10,000 records of one partition, a
// handler that sleeps 0-5 ms (seeded, the same sleeps for every mode),
// concurrency 100. It reports the wall time of one run, the ideal (total
// sleep / concurrency), the ratio to the ideal, and the speed-up over
// running the records one by one (total sleep, which is what PartitionOrder
// costs on one partition).
//
//	go test -bench . -benchtime 1x -run '^$' ./ordering/
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
	tp := TopicPartition{Topic: "bench", Partition: 0}

	for _, bc := range []struct {
		name string
		mode Mode
		keys int
	}{
		{"PartitionOrder", PartitionOrder, 1},
		{"KeyOrder/keys=1", KeyOrder, 1},
		{"KeyOrder/keys=10", KeyOrder, 10},
		{"KeyOrder/keys=100", KeyOrder, 100},
		{"KeyOrder/keys=1000", KeyOrder, 1000},
		{"KeyOrder/keys=10000", KeyOrder, 10000},
		{"Unordered", Unordered, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			msgs := make([]Message[struct{}], records)
			for i := range msgs {
				msgs[i] = Message[struct{}]{Topic: tp.Topic, Partition: tp.Partition, Offset: int64(i),
					Key: []byte(fmt.Sprint("key-", i%bc.keys))}
			}
			handle := func(_ context.Context, m Message[struct{}]) error {
				time.Sleep(sleeps[m.Offset])
				return nil
			}
			ctx := context.Background()
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				d, err := New(handle, OrderBy(bc.mode), Concurrency(concurrency), MaxBuffered(records))
				if err != nil {
					b.Fatal(err)
				}
				if err := d.Assign(tp, Checkpoint{}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				for _, m := range msgs {
					if err := d.Submit(ctx, m); err != nil {
						b.Fatal(err)
					}
				}
				if err := d.Drain(ctx); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				b.StopTimer()
				if cp, _ := d.Checkpoint(tp); cp.Offset != records {
					b.Fatalf("checkpoint %d after the run, want %d", cp.Offset, records)
				}
				_ = d.Close()
			}
			run := elapsed / time.Duration(b.N)
			b.ReportMetric(float64(run)/float64(time.Millisecond), "ms/run")
			b.ReportMetric(float64(ideal)/float64(time.Millisecond), "ideal-ms")
			b.ReportMetric(float64(run)/float64(ideal), "x-ideal")
			b.ReportMetric(float64(total)/float64(run), "x-serial")
		})
	}
}
