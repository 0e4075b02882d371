package brokertest_test

import (
	"context"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// The seed notes: records A then B; A's request fails, B's succeeds, A's retry lands after B —
// the partition now reads B, A. max.in.flight.requests.per.connection=1 prevents it, and so does
// idempotence with up to 5 in flight (the broker refuses B's sequence while A's is missing, and
// the client resends both in order). Each case sends the same stream of records while the
// leader refuses one produce request, slowly enough that the requests behind it are already on
// the wire, and then reads the partition back.
func TestRetriesReorderOnlyWithoutIdempotenceAndWithSeveralRequestsInFlight(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		opts        []kgo.Opt
		wantReorder bool
	}{
		{"no idempotence, 5 in flight", []kgo.Opt{kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5)}, true},
		{"no idempotence, 1 in flight", []kgo.Opt{kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(1)}, false},
		{"idempotence, up to 5 in flight", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := kafkatest.NewCluster(t)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			const topic = "ab"
			if err := c.CreateTopic(ctx, topic, 1, 1, nil); err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(append([]kgo.Opt{
				kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic),
				kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0),
				kgo.RecordRetries(math.MaxInt), kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
				kgo.MetadataMinAge(100 * time.Millisecond), // a refused request refreshes metadata before its retry
			}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			// Warm up: a successful answer lets a client keep several requests in flight.
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("-1")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if err := c.FailProduces(topic, 0, 1, kerr.NotEnoughReplicas, 300*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			const n = 200
			var failed atomic.Int64
			for i := range n {
				cl.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
					}
				})
				time.Sleep(2 * time.Millisecond)
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if failed.Load() != 0 {
				t.Fatalf("%d records failed; every one should have been retried until it was written", failed.Load())
			}

			got := readAll(t, c, topic)[1:] // after the warm-up record
			seq := make([]int, len(got))
			for i, v := range got {
				if seq[i], err = strconv.Atoi(v); err != nil {
					t.Fatal(err)
				}
			}
			inversions := 0
			for i := 1; i < len(seq); i++ {
				if seq[i] < seq[i-1] {
					inversions++
				}
			}
			distinct := slices.Compact(slices.Sorted(slices.Values(seq)))
			t.Logf("%s: %d records read, %d distinct, %d read after a later one; first 12: %v",
				tc.name, len(seq), len(distinct), inversions, seq[:min(12, len(seq))])
			if len(distinct) != n {
				t.Fatalf("%d of %d records read: an acknowledged record was lost", len(distinct), n)
			}
			if tc.wantReorder {
				// Without idempotence the resent batches may also be duplicates;
				// the order is what the seed notes warn about.
				if inversions == 0 {
					t.Fatal("the refused request's retry did not land after the requests behind it: no reordering shown")
				}
				return
			}
			if inversions != 0 || len(seq) != n {
				t.Fatalf("%d records out of order, %d duplicates", inversions, len(seq)-n)
			}
		})
	}
}
