package partition

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// BenchmarkAcksAllFlushEveryMessage produces with acks=all to a leader replicating to two
// followers, every log fsyncing each append (flush.messages=1), with a consumer fetching all
// along, and reports throughput and the p99 latency of the produces and of the consumer's
// fetches. Its sub-benchmarks compare the lock held across the append's write and fsync (as
// before this package released it, Config.lockAcrossAppend) with the lock released for it; run
// them in one process (-count > 1) and compare medians.
func BenchmarkAcksAllFlushEveryMessage(b *testing.B) {
	for _, mode := range []struct {
		name string
		held bool
	}{{"lock=held-across-fsync", true}, {"lock=released-for-fsync", false}} {
		b.Run(mode.name, func(b *testing.B) { benchAcksAll(b, mode.held) })
	}
}

func benchAcksAll(b *testing.B, lockAcrossAppend bool) {
	const producers = 8
	dir := b.TempDir()
	st := meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 1, Epoch: 1}
	open := func(id int32) *Replica {
		r, err := Open(filepath.Join(dir, fmt.Sprint(id)), Config{
			BrokerID: id, Topic: "t", MinISR: 2, MaxMessageBytes: 1 << 20, ReplicaLagMax: time.Minute,
			Log:              log.Config{FlushMessages: 1},
			AlterISR:         func(context.Context, int32, int32, []int32) error { return nil },
			lockAcrossAppend: lockAcrossAppend,
		})
		if err != nil {
			b.Fatal(err)
		}
		r.Apply(st)
		return r
	}
	leader := open(1)
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		_ = leader.Close()
	}()

	// Two followers fetch as the broker's fetcher does: a fetch at their log end, then the
	// append of what it returned; without new data they wait for the leader to change.
	for _, id := range []int32{2, 3} {
		f := open(id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			wake := make(chan struct{}, 1)
			defer leader.Watch(wake)()
			for ctx.Err() == nil {
				res, err := leader.Read(FetchRequest{Offset: f.Log().EndOffset(), MaxBytes: 1 << 20, ReplicaID: id, CurrentLeaderEpoch: 1})
				if err == nil && len(res.Records) > 0 {
					if err := f.AppendReplicated(res.Records, res.HighWatermark, 1); err != nil {
						b.Error(err)
						return
					}
					continue
				}
				select {
				case <-wake:
				case <-ctx.Done():
				}
			}
		}()
	}
	// A consumer tails the log (the last ~500 records) in a loop: its fetches take the same
	// lock as the produces.
	var fetchLat []time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		for off := int64(0); ctx.Err() == nil; {
			start := time.Now()
			res, err := leader.Read(FetchRequest{Offset: off, MaxBytes: 64 << 10, ReplicaID: -1, CurrentLeaderEpoch: -1})
			fetchLat = append(fetchLat, time.Since(start))
			if err != nil {
				b.Error(err)
				return
			}
			off = max(res.HighWatermark-500, 0)
			time.Sleep(100 * time.Microsecond)
		}
	}()

	value := make([]byte, 100)
	lat := make([][]time.Duration, producers)
	var next sync.Mutex
	left := b.N
	b.ResetTimer()
	start := time.Now()
	var pw sync.WaitGroup
	for p := range producers {
		pw.Go(func() {
			for {
				next.Lock()
				if left == 0 {
					next.Unlock()
					return
				}
				left--
				next.Unlock()
				batch := records.Build([]records.Record{{Value: value}}, time.Now().UnixMilli(), records.NoProducer)
				t0 := time.Now()
				if _, err := leader.Append(ctx, batch, -1); err != nil {
					b.Error(err)
					return
				}
				lat[p] = append(lat[p], time.Since(t0))
			}
		})
	}
	pw.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	wg.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(p99(slices.Concat(lat...)), "produce-p99-ms")
	b.ReportMetric(p99(fetchLat), "fetch-p99-ms")
}

// p99 returns the 99th percentile of ds in milliseconds.
func p99(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[len(ds)*99/100]) / float64(time.Millisecond)
}
