package fastbench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Produce compares producing JSON-like records of about 250 bytes to a one-broker bundled
// cluster with batching (asynchronous sends, the client packing whatever is buffered into each
// request) against one record per request (each send awaited before the next), for about d
// each. Both use acks=1, no compression and no idempotence, so the difference is batching.
func Produce(ctx context.Context, dir string, d time.Duration, progress func(string)) (Row, error) {
	progress("produce: starting the bundled broker")
	c, err := startBroker(ctx, brokerDir(dir, "produce"), true)
	if err != nil {
		return Row{}, err
	}
	defer c.Close()
	const topic = "bench-produce"
	if err := createTopic(ctx, c, topic, 1); err != nil {
		return Row{}, err
	}
	newClient := func() (*kgo.Client, error) {
		return kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic),
			kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	recs := newOrders(1)

	progress("produce: one record per request")
	cl, err := newClient()
	if err != nil {
		return Row{}, fmt.Errorf("fastbench: %w", err)
	}
	n, elapsed, err := until(ctx, d, func() error {
		return cl.ProduceSync(ctx, &kgo.Record{Value: recs.next()}).FirstErr()
	})
	cl.Close()
	if err != nil {
		return Row{}, fmt.Errorf("fastbench: produce: %w", err)
	}
	single := Side{Name: "one per request", Value: float64(n) / elapsed.Seconds(), Unit: "records/s"}

	progress("produce: batched")
	cl, err = newClient()
	if err != nil {
		return Row{}, fmt.Errorf("fastbench: %w", err)
	}
	defer cl.Close()
	var acked atomic.Int64
	var firstErr atomic.Pointer[error]
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil && firstErr.Load() == nil {
		for range 1000 {
			cl.Produce(ctx, &kgo.Record{Value: recs.next()}, func(_ *kgo.Record, err error) {
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				acked.Add(1)
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return Row{}, fmt.Errorf("fastbench: produce: %w", err)
	}
	elapsed = time.Since(start)
	if p := firstErr.Load(); p != nil {
		return Row{}, fmt.Errorf("fastbench: produce: %w", *p)
	}
	batched := Side{Name: "batched", Value: float64(acked.Load()) / elapsed.Seconds(), Unit: "records/s"}
	return rateRow("produce: batching beats one record per request", batched, single,
		"1 broker, acks=1, ~250 B JSON records, uncompressed"), nil
}
