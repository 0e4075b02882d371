package produce_test

import (
	"context"
	"math"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// benchRounds is how many rounds a BenchmarkNoLossProduce run splits its
// records into. Each round runs the raw client, the A/A client and the
// wrapper once, in one of the six orders of the three, every order as
// often (raw, A/A, wrapper; A/A, wrapper, raw; ...), so that drift during
// the run — a growing log, the other work of a shared machine, the garbage
// collector's pace — weighs on all sides alike. With 18 rounds of 220
// records (-benchtime 4000x) two identical clients differed by up to 15 %
// in a run; 60 rounds of 5000 (-benchtime 300000x) resolve the sync paths
// to about 6 % (aa-spread), the async ones to 15-30 %.
const benchRounds = 60

// noLossTarget is the records/s ratio (wrapper over raw kgo) the NoLoss
// Producer is meant to keep.
const noLossTarget = 0.95

// BenchmarkNoLossProduce measures what the NoLoss Producer costs over a raw
// kgo.Client built from the same options (those of the Producer's client), both producing to the same
// bundled broker in the same run: the target is a records/s ratio
// (x-raw-kgo) of at least 0.95.
//
// Each b.N is one record sent by each side. All clients are connected and
// have their producer IDs before timing starts; the records are split into
// benchRounds rounds, and each round also runs an A/A side: a second raw
// client in the wrapper's place, which shows how far two identical clients
// differ in this setup, in the same rounds. ns/op is the time of one
// record on all three sides. Each sub-benchmark reports, from its one run:
//   - x-raw-kgo: the median over the rounds of the raw side's time over
//     the wrapper's (the wrapper's records/s over raw kgo's);
//   - aa-x: the same median for the A/A side;
//   - aa-spread: the larger of |aa-x - 1| and half the interquartile range
//     of the A/A rounds' ratios (roughly two standard errors of a median
//     over benchRounds rounds): how far a ratio of two identical clients
//     wanders in this run;
//   - meets-target: 1 when x-raw-kgo >= 0.95 - aa-spread (the wrapper is
//     at or above the target, or below it by less than the A/A spread, so
//     not distinguishably below), else 0;
//   - extra-allocs/record: the wrapper's allocations over raw kgo's.
//
// The sub-benchmarks:
//   - async: Producer.SendAsync against kgo's Produce, one goroutine
//     sending, a Flush ending each round; one callback for every record.
//   - async-closure-per-record: the same, with a new callback closure for
//     each record on every side, as code that captures per-record state
//     writes it.
//   - sync: Producer.Send against kgo's ProduceSync from 8 goroutines (the
//     rate is bound by round trips, so several senders keep batches full),
//     with a context that never ends.
//   - sync-deadline: the same with a context that has a deadline, which
//     Send honours even while the record is in flight (kgo's ProduceSync
//     waits for an idempotent record's outcome); Send waits on the
//     record's promise, as New's client does not linger.
//   - sync-deadline-linger: the same with kgo's default ProducerLinger(10
//     ms) given to New and so on every side: not a default, the cost of
//     opting into a linger, where Send with a deadline runs ProduceSync
//     (which cuts the linger short) on a goroutine of its own.
func BenchmarkNoLossProduce(b *testing.B) {
	c := kafkatest.NewCluster(b)
	ctx := context.Background()
	if err := c.CreateTopic(ctx, "bench", 4, 1, nil); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	opts := []kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic("bench")}

	p, err := produce.New(ctx, produce.NoLoss, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	// The raw clients are built from the options of the Producer's own
	// client: the preset's, New's ProducerLinger(0) and opts.
	all := p.Client().Opts()
	raw, err := kgo.NewClient(all...)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
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
	b.Run("async", func(b *testing.B) {
		b.SetBytes(3 * int64(len(value)))
		compare(b, asyncRound(rawSend, raw.Flush, shared), asyncRound(raw2Send, raw2.Flush, shared),
			asyncRound(wrapSend, p.Flush, shared))
	})
	b.Run("async-closure-per-record", func(b *testing.B) {
		b.SetBytes(3 * int64(len(value)))
		compare(b, asyncRound(rawSend, raw.Flush, perRecord), asyncRound(raw2Send, raw2.Flush, perRecord),
			asyncRound(wrapSend, p.Flush, perRecord))
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
	syncRounds := func(ctx context.Context, raw, raw2 *kgo.Client, p *produce.Producer) (rawRound, aaRound, wrapRound func(int)) {
		rawRound = func(n int) {
			parallel(n, func() error { return raw.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr() })
		}
		aaRound = func(n int) {
			parallel(n, func() error { return raw2.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr() })
		}
		wrapRound = func(n int) {
			parallel(n, func() error { return p.Send(ctx, &kgo.Record{Value: value}) })
		}
		return rawRound, aaRound, wrapRound
	}
	b.Run("sync", func(b *testing.B) {
		rawRound, aaRound, wrapRound := syncRounds(ctx, raw, raw2, p)
		compare(b, rawRound, aaRound, wrapRound)
	})
	dctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	b.Run("sync-deadline", func(b *testing.B) {
		rawRound, aaRound, wrapRound := syncRounds(dctx, raw, raw2, p)
		compare(b, rawRound, aaRound, wrapRound)
	})
	b.Run("sync-deadline-linger", func(b *testing.B) {
		// Three more clients, every one lingering as kgo does by default.
		opts := append(slices.Clip(opts), kgo.ProducerLinger(10*time.Millisecond))
		p, err := produce.New(ctx, produce.NoLoss, opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(ctx)
		if err := p.Send(ctx, &kgo.Record{Value: value}); err != nil {
			b.Fatal(err)
		}
		var raws [2]*kgo.Client
		for i := range raws {
			if raws[i], err = kgo.NewClient(p.Client().Opts()...); err != nil {
				b.Fatal(err)
			}
			defer raws[i].Close()
			if err := raws[i].ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
				b.Fatal(err)
			}
		}
		rawRound, aaRound, wrapRound := syncRounds(dctx, raws[0], raws[1], p)
		compare(b, rawRound, aaRound, wrapRound)
	})
}

// compare runs b.N records through each of rawRound, aaRound (a second raw
// client: the A/A side) and wrapRound, in benchRounds rounds, and reports
// the metrics BenchmarkNoLossProduce describes. Medians over the rounds: a
// pause that hits one round (the garbage collector, the broker's own work,
// another process) moves one ratio, not the result.
func compare(b *testing.B, rawRound, aaRound, wrapRound func(n int)) {
	var rawTime, wrapTime time.Duration
	var rawAllocs, wrapAllocs, aaAllocs uint64
	ratios := make([]float64, 0, benchRounds)
	aa := make([]float64, 0, benchRounds)
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
	// The six orders of raw (0), A/A (1) and wrapper (2).
	orders := [6][3]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}, {0, 2, 1}, {2, 1, 0}, {1, 0, 2}}
	rounds := [3]func(int){rawRound, aaRound, wrapRound}
	allocs := [3]*uint64{&rawAllocs, &aaAllocs, &wrapAllocs}
	b.ResetTimer()
	done := 0
	for i := range benchRounds {
		n := (b.N - done) / (benchRounds - i)
		done += n
		if n == 0 {
			continue
		}
		var d [3]time.Duration
		for _, side := range orders[i%len(orders)] {
			d[side] = timed(rounds[side], n, allocs[side])
		}
		rawTime += d[0]
		wrapTime += d[2]
		ratios = append(ratios, d[0].Seconds()/d[2].Seconds())
		aa = append(aa, d[0].Seconds()/d[1].Seconds())
	}
	b.StopTimer()
	x := median(ratios)
	aaX := median(aa)
	spread := max(math.Abs(aaX-1), (quantile(aa, 0.75)-quantile(aa, 0.25))/2)
	meets := 0.0
	if x >= noLossTarget-spread {
		meets = 1
	}
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw-records/s")
	b.ReportMetric(float64(b.N)/wrapTime.Seconds(), "producer-records/s")
	b.ReportMetric(x, "x-raw-kgo")
	b.ReportMetric(aaX, "aa-x")
	b.ReportMetric(spread, "aa-spread")
	b.ReportMetric(meets, "meets-target")
	b.ReportMetric((float64(wrapAllocs)-float64(rawAllocs))/float64(b.N), "extra-allocs/record")
}

// median returns the median of xs (which it sorts).
func median(xs []float64) float64 { return quantile(xs, 0.5) }

// quantile returns the q-quantile of xs (which it sorts), interpolating
// between the two nearest values.
func quantile(xs []float64, q float64) float64 {
	slices.Sort(xs)
	pos := q * float64(len(xs)-1)
	lo := int(pos)
	if lo+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	return xs[lo] + (pos-float64(lo))*(xs[lo+1]-xs[lo])
}
