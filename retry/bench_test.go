package retry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// benchEnv starts a cluster with a retry topic and writes n markers to it,
// due at due(i).
func benchEnv(b *testing.B, n int, due func(i int) time.Time) (*kafkatest.Cluster, string) {
	b.Helper()
	c := kafkatest.NewCluster(b)
	ctx := context.Background()
	const topic = "bench"
	if err := c.CreateTopic(ctx, topic+RetrySuffix, 4, 1, nil); err != nil {
		b.Fatal(err)
	}
	if err := c.CreateTopic(ctx, topic+DeadLetterSuffix, 1, 1, nil); err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	now := time.Now()
	for i := 0; i < n; i++ {
		m := &Marker{Kind: KindMarker, Origin: Origin{Topic: topic, Partition: int32(i % 8), Offset: int64(i)},
			Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte("payload"), Attempts: 1, Due: due(i), FirstFailed: now,
			History: []Attempt{{Attempt: 1, At: now, Error: "failed"}}}
		wg.Add(1)
		cl.Produce(ctx, m.encode(topic+RetrySuffix, KindMarker), func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				failed.Store(&err)
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return c, topic
}

func percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	return ds[int(float64(len(ds)-1)*p)]
}

// BenchmarkJobMarkersPerSecond measures how many due markers one Job with a
// no-op handler finishes per second (markers/s, from its first handler run
// to its last), b.N markers per run.
func BenchmarkJobMarkersPerSecond(b *testing.B) {
	n := max(b.N, 1000)
	c, topic := benchEnv(b, n, func(int) time.Time { return time.Now() })
	var done atomic.Int64
	var first, last atomic.Int64
	j, err := NewJob(func(context.Context, *Marker) error {
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		last.Store(now)
		done.Add(1)
		return nil
	}, Topic(topic), KgoOpts(kgo.SeedBrokers(c.Bootstrap()...)), Concurrency(16), MaxBuffered(20000))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- j.Run(ctx) }()
	for done.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	if elapsed := time.Duration(last.Load() - first.Load()); elapsed > 0 {
		b.ReportMetric(float64(n)/elapsed.Seconds(), "markers/s")
	}
}

// BenchmarkSchedulingDelay100k parks 100,000 markers due over a 3-second
// window that starts once the Job has had time to read them all, and reports
// how late each handler run started after its due time (p50, p99, max). Run it
// with -benchtime=1x; one run takes about 10 seconds.
func BenchmarkSchedulingDelay100k(b *testing.B) {
	const n = 100_000
	var start time.Time
	c, topic := benchEnv(b, n, func(i int) time.Time {
		if start.IsZero() {
			start = time.Now().Add(8 * time.Second)
		}
		return start.Add(time.Duration(rand.Int64N(int64(3 * time.Second))))
	})
	for i := 0; i < b.N; i++ {
		delays := make([]time.Duration, 0, n)
		var mu sync.Mutex
		j, err := NewJob(func(_ context.Context, m *Marker) error {
			d := time.Since(m.Due)
			mu.Lock()
			delays = append(delays, d)
			mu.Unlock()
			return nil
		}, Topic(topic), KgoOpts(kgo.SeedBrokers(c.Bootstrap()...)), Group(fmt.Sprint("delay-", i)),
			Concurrency(16), MaxBuffered(2*n))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- j.Run(ctx) }()
		for {
			mu.Lock()
			got := len(delays)
			mu.Unlock()
			if got >= n {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if i == b.N-1 {
			early := 0
			for _, d := range delays {
				if d < 0 {
					early++
				}
			}
			if early > 0 {
				b.Errorf("%d markers ran before their due time", early)
			}
			b.ReportMetric(float64(percentile(delays, 0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(delays, 0.99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(percentile(delays, 1).Microseconds())/1000, "max-ms")
		}
	}
}

// BenchmarkSchedulerDelay100k is BenchmarkSchedulingDelay100k without Kafka:
// 100,000 markers in the timer heap, due over one second.
func BenchmarkSchedulerDelay100k(b *testing.B) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		delays := make([]time.Duration, 0, n)
		var mu sync.Mutex
		var wg sync.WaitGroup
		wg.Add(n)
		s := newScheduler(16, nil, func(_ context.Context, it *item) bool {
			d := time.Since(it.due)
			mu.Lock()
			delays = append(delays, d)
			mu.Unlock()
			wg.Done()
			return true
		}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		go s.loop(ctx, context.Background())
		start := time.Now().Add(200 * time.Millisecond)
		for k := 0; k < n; k++ {
			s.add(&item{m: &Marker{Origin: Origin{"t", 0, int64(k)}}, offset: int64(k), due: start.Add(time.Duration(rand.Int64N(int64(time.Second)))), index: -1})
		}
		wg.Wait()
		cancel()
		<-s.loopDone
		if i == b.N-1 {
			b.ReportMetric(float64(percentile(delays, 0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(delays, 0.99).Microseconds())/1000, "p99-ms")
		}
	}
}
