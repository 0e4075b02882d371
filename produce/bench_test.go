package produce_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// BenchmarkNoLossProduce compares the NoLoss Producer with a raw
// kgo.Client built from the same options, producing asynchronously to the
// bundled broker; the wrapper should cost under 5% in records/s. The
// producer runs report "x-raw-kgo", their records/s divided by that of the
// raw run before them (when both run).
func BenchmarkNoLossProduce(b *testing.B) {
	var rawRate, rawSyncRate float64 // records/s of the latest raw runs
	c := kafkatest.NewCluster(b)
	ctx := context.Background()
	if err := c.CreateTopic(ctx, "bench", 4, 1, nil); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	opts := []kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic("bench")}

	b.Run("raw-kgo", func(b *testing.B) {
		all, err := produce.ApplyKgo(produce.NoLoss, opts)
		if err != nil {
			b.Fatal(err)
		}
		cl, err := kgo.NewClient(all...)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		b.SetBytes(int64(len(value)))
		b.ResetTimer()
		for range b.N {
			cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		rawRate = float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rawRate, "records/s")
	})

	b.Run("producer", func(b *testing.B) {
		p, err := produce.New(ctx, produce.NoLoss, opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(ctx)
		b.SetBytes(int64(len(value)))
		b.ResetTimer()
		for range b.N {
			p.SendAsync(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		rate := float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "records/s")
		if rawRate > 0 {
			b.ReportMetric(rate/rawRate, "x-raw-kgo")
		}
	})

	b.Run("raw-kgo-sync", func(b *testing.B) {
		all, err := produce.ApplyKgo(produce.NoLoss, opts)
		if err != nil {
			b.Fatal(err)
		}
		cl, err := kgo.NewClient(all...)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
					b.Error(err)
				}
			}
		})
		rawSyncRate = float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rawSyncRate, "records/s")
	})

	b.Run("producer-sync", func(b *testing.B) {
		p, err := produce.New(ctx, produce.NoLoss, opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(ctx)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := p.Send(ctx, &kgo.Record{Value: value}); err != nil {
					b.Error(err)
				}
			}
		})
		rate := float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "records/s")
		if rawSyncRate > 0 {
			b.ReportMetric(rate/rawSyncRate, "x-raw-kgo")
		}
	})
}
