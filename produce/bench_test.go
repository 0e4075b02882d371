package produce_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// benchRounds is how many raw/wrapper pairs a BenchmarkNoLossProduce run
// splits its records into. The pairs alternate which side goes first (raw,
// wrapper, wrapper, raw, ...), so that drift during the run — a growing
// log, the other work of a shared machine, the garbage collector's pace —
// weighs on both sides alike.
const benchRounds = 16

// BenchmarkNoLossProduce measures what the NoLoss Producer costs over a raw
// kgo.Client built from the same options, both producing to the same
// bundled broker in the same run: the target is a records/s ratio
// (x-raw-kgo) of at least 0.95.
//
// Each b.N is one record sent by each side. Both clients are connected and
// have their producer IDs before timing starts; the records are split into
// benchRounds alternating rounds, and the ratio is the median over those
// pairs of rounds of the raw side's time over the wrapper's. ns/op is the
// time of one record on both sides.
//
//   - async-raw-vs-raw: the A/A run: a second raw client in the wrapper's
//     place. Its distance from 1 is what the setup itself contributes.
//   - async: Producer.SendAsync against kgo's Produce, one goroutine
//     sending, a Flush ending each round; one callback for every record.
//   - async-closure-per-record: the same, with a new callback closure for
//     each record on both sides, as code that captures per-record state
//     writes it.
//   - sync: Producer.Send against kgo's ProduceSync from 8 goroutines (the
//     rate is bound by round trips, so several senders keep batches full),
//     with a context that never ends.
//   - sync-deadline: the same with a context that has a deadline, which
//     Send honours even while the record is in flight (kgo's ProduceSync
//     waits for an idempotent record's outcome).
func BenchmarkNoLossProduce(b *testing.B) {
	c := kafkatest.NewCluster(b)
	ctx := context.Background()
	if err := c.CreateTopic(ctx, "bench", 4, 1, nil); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	opts := []kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic("bench")}

	all, err := produce.ApplyKgo(produce.NoLoss, opts)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := kgo.NewClient(all...)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	p, err := produce.New(ctx, produce.NoLoss, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	// A second raw client, for the A/A run that shows how far two identical
	// clients already differ in this setup.
	raw2, err := kgo.NewClient(all...)
	if err != nil {
		b.Fatal(err)
	}
	defer raw2.Close()
	// Warm all up: metadata, connections, producer IDs.
	for _, send := range []func() error{
		func() error { return raw.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr() },
		func() error { return raw2.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr() },
		func() error { return p.Send(ctx, &kgo.Record{Value: value}) },
	} {
		if err := send(); err != nil {
			b.Fatal(err)
		}
	}

	fail := func(_ *kgo.Record, err error) {
		if err != nil {
			b.Error(err)
		}
	}
	shared := func(int) func(*kgo.Record, error) { return fail }
	perRecord := func(i int) func(*kgo.Record, error) {
		return func(r *kgo.Record, err error) {
			if err != nil {
				b.Errorf("record %d: %v", i, err)
			}
		}
	}
	// asyncRound returns a round that sends n records with send, record i
	// with callback(i), and then waits for them with flush.
	asyncRound := func(send func(*kgo.Record, func(*kgo.Record, error)), flush func(context.Context) error,
		callback func(int) func(*kgo.Record, error)) func(int) {
		return func(n int) {
			for i := range n {
				send(&kgo.Record{Value: value}, callback(i))
			}
			if err := flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	rawSend := func(r *kgo.Record, cb func(*kgo.Record, error)) { raw.Produce(ctx, r, cb) }
	raw2Send := func(r *kgo.Record, cb func(*kgo.Record, error)) { raw2.Produce(ctx, r, cb) }
	wrapSend := func(r *kgo.Record, cb func(*kgo.Record, error)) { p.SendAsync(ctx, r, cb) }
	b.Run("async-raw-vs-raw", func(b *testing.B) {
		b.SetBytes(2 * int64(len(value)))
		compare(b, asyncRound(rawSend, raw.Flush, shared), asyncRound(raw2Send, raw2.Flush, shared))
	})
	b.Run("async", func(b *testing.B) {
		b.SetBytes(2 * int64(len(value)))
		compare(b, asyncRound(rawSend, raw.Flush, shared), asyncRound(wrapSend, p.Flush, shared))
	})
	b.Run("async-closure-per-record", func(b *testing.B) {
		b.SetBytes(2 * int64(len(value)))
		compare(b, asyncRound(rawSend, raw.Flush, perRecord), asyncRound(wrapSend, p.Flush, perRecord))
	})

	const senders = 8
	parallel := func(n int, send func() error) {
		var wg sync.WaitGroup
		for g := range senders {
			k := n / senders
			if g < n%senders {
				k++
			}
			wg.Go(func() {
				for range k {
					if err := send(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	syncRounds := func(ctx context.Context) (rawRound, wrapRound func(int)) {
		rawRound = func(n int) {
			parallel(n, func() error { return raw.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr() })
		}
		wrapRound = func(n int) {
			parallel(n, func() error { return p.Send(ctx, &kgo.Record{Value: value}) })
		}
		return rawRound, wrapRound
	}
	b.Run("sync", func(b *testing.B) {
		rawRound, wrapRound := syncRounds(ctx)
		compare(b, rawRound, wrapRound)
	})
	b.Run("sync-deadline", func(b *testing.B) {
		dctx, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		rawRound, wrapRound := syncRounds(dctx)
		compare(b, rawRound, wrapRound)
	})
}

// compare runs b.N records through rawRound and wrapRound each, in
// benchRounds alternating pairs of rounds, and reports both sides' rates
// and x-raw-kgo, the median over the pairs of the raw round's time over the
// wrapper round's: a pause that hits one round (the garbage collector, the
// broker's own work, another process) moves one pair, not the result.
func compare(b *testing.B, rawRound, wrapRound func(n int)) {
	var rawTime, wrapTime time.Duration
	var rawAllocs, wrapAllocs uint64
	ratios := make([]float64, 0, benchRounds)
	var ms runtime.MemStats
	timed := func(round func(int), n int, allocs *uint64) time.Duration {
		runtime.ReadMemStats(&ms)
		before := ms.Mallocs
		start := time.Now()
		round(n)
		d := time.Since(start)
		runtime.ReadMemStats(&ms)
		*allocs += ms.Mallocs - before
		return d
	}
	b.ResetTimer()
	done := 0
	for i := range benchRounds {
		n := (b.N - done) / (benchRounds - i)
		done += n
		if n == 0 {
			continue
		}
		var r, w time.Duration
		if i%2 == 0 {
			r = timed(rawRound, n, &rawAllocs)
			w = timed(wrapRound, n, &wrapAllocs)
		} else {
			w = timed(wrapRound, n, &wrapAllocs)
			r = timed(rawRound, n, &rawAllocs)
		}
		rawTime += r
		wrapTime += w
		ratios = append(ratios, r.Seconds()/w.Seconds())
	}
	b.StopTimer()
	slices.Sort(ratios)
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw-records/s")
	b.ReportMetric(float64(b.N)/wrapTime.Seconds(), "producer-records/s")
	b.ReportMetric(ratios[len(ratios)/2], "x-raw-kgo")
	b.ReportMetric((float64(wrapAllocs)-float64(rawAllocs))/float64(b.N), "extra-allocs/record")
}
