package consume_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

func TestOrderKeptUnderRandomHandlerLatencies(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	for _, tc := range []struct {
		order consume.Order
		unit  func(*kgo.Record) string // what must never run twice at once
	}{
		{consume.KeyOrder, func(r *kgo.Record) string { return r.Topic + "/" + string(r.Key) }},
		{consume.PartitionOrder, func(r *kgo.Record) string { return r.Topic + "/" + string(rune('0'+r.Partition)) }},
		{consume.Unordered, func(r *kgo.Record) string { return at(r) }},
	} {
		t.Run(tc.order.String(), func(t *testing.T) {
			const keys, perKey = 40, 25
			topic := "latency-" + tc.order.String()
			newTopic(t, c, topic, 3)
			produce(t, c, topic, keyed(keys, perKey))

			l := newLedger()
			var rngMu sync.Mutex
			rng := rand.New(rand.NewPCG(1, 2))
			handler := func(ctx context.Context, r *kgo.Record) error {
				exit := l.enter(t, r, tc.unit(r))
				rngMu.Lock()
				d := time.Duration(rng.Int64N(int64(3 * time.Millisecond)))
				rngMu.Unlock()
				time.Sleep(d)
				exit(true)
				return nil
			}
			run := start(t, handler, groupOpts(c, "g-"+topic, topic), consume.OrderBy(tc.order),
				consume.Concurrency(32), consume.CommitInterval(50*time.Millisecond))
			testkit.WaitFor(t, 30*time.Second, "every record handled", func() bool { return l.doneCount() == keys*perKey })
			if err := run.shutdown(t); err != nil {
				t.Fatalf("Run: %v", err)
			}

			l.mu.Lock()
			defer l.mu.Unlock()
			if len(l.overlap) > 0 && tc.order != consume.Unordered {
				t.Errorf("%d records ran while another of their %s ran, first %q", len(l.overlap), tc.order, l.overlap[0])
			}
			if l.total != keys*perKey {
				t.Errorf("handler ran %d times for %d records", l.total, keys*perKey)
			}
			for key, seqs := range l.order {
				if tc.order == consume.Unordered {
					slices.Sort(seqs)
				}
				for i, s := range seqs {
					if s != i {
						t.Fatalf("key %s ran in the order %v", key, seqs)
					}
				}
				if len(seqs) != perKey {
					t.Errorf("key %s ran %d records, want %d", key, len(seqs), perKey)
				}
			}
			offs := committed(t, c, "g-"+topic)
			for p, end := range endOffsets(t, c, topic) {
				o, ok := offs.Lookup(topic, p)
				if !ok || o.At != end {
					t.Errorf("partition %d committed %d (present %v), want the end offset %d", p, o.At, ok, end)
				}
			}
		})
	}
}
