package partition

import (
	"context"
	"fmt"
	"os"
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

// BenchmarkReopen measures Open of a partition of about 100 segments (20,000 batches, one in
// ten a transaction's, a third of those aborted) after a crash: "full-scan" with its producer
// snapshots removed (what Open did before the snapshots: read every batch header and marker),
// "snapshot" from the snapshot of its last roll, the .txnindex files and the log after it.
func BenchmarkReopen(b *testing.B) {
	dir := b.TempDir()
	cfg := Config{
		BrokerID: 1, Topic: "t", MinISR: 1, MaxMessageBytes: 1 << 20, ReplicaLagMax: time.Minute,
		Log:      log.Config{SegmentBytes: 16 << 10},
		AlterISR: func(context.Context, int32, int32, []int32) error { return nil },
	}
	r, err := Open(dir, cfg)
	if err != nil {
		b.Fatal(err)
	}
	r.Apply(meta.Partition{Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 1, Epoch: 1})
	ctx := context.Background()
	var seq [3]int32
	for i := range 20_000 {
		var p records.Producer
		txn := i%10 == 0
		id := int64(i % 3)
		p = records.Producer{ID: id, Epoch: 0, Sequence: seq[id]}
		seq[id]++
		bt := records.Build([]records.Record{{Value: []byte("value")}}, 1_700_000_000_000, p)
		if txn {
			bt = setTxn(bt)
		}
		if _, err := r.Append(ctx, bt, 1); err != nil {
			b.Fatal(err)
		}
		if txn {
			if err := r.AppendMarker(ctx, id, 0, i%30 != 0, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	b.Logf("%d segments, log end %d", len(segs), r.Log().EndOffset())
	r.Abandon()
	// "log-only" is the log's own Open (recovery, indexes), the floor of both. The full scan
	// writes a snapshot at the end, so it runs last.
	for _, mode := range []string{"log-only", "snapshot", "full-scan"} {
		b.Run(mode, func(b *testing.B) {
			scanned := 0
			for b.Loop() {
				if mode == "full-scan" {
					b.StopTimer()
					snaps, _ := filepath.Glob(filepath.Join(dir, "*.snapshot"))
					for _, s := range snaps {
						if err := os.Remove(s); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
				if mode == "log-only" {
					l, err := log.Open(dir, cfg.Log, nil)
					if err != nil {
						b.Fatal(err)
					}
					l.Abandon()
					continue
				}
				r, err := Open(dir, cfg)
				if err != nil {
					b.Fatal(err)
				}
				scanned = r.scanned
				r.Abandon()
			}
			b.ReportMetric(float64(scanned), "batches-scanned")
		})
	}
}
