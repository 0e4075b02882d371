package consume_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// TestRebalanceMidStreamLosesNothingAndKeepsKeyOrder starts a second member
// while the first is consuming and records keep arriving, then stops the
// first: every record is handled exactly once, each key in order, and no
// key ever runs on both members at once.
func TestRebalanceMidStreamLosesNothingAndKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		balancers []kgo.GroupBalancer
	}{
		{"cooperative", []kgo.GroupBalancer{kgo.CooperativeStickyBalancer()}},
		{"eager", []kgo.GroupBalancer{kgo.RangeBalancer()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kafkatest.NewCluster(t)
			topic, group := "rebalance", "g-rebalance"
			newTopic(t, c, topic, 4)
			const keys, perKey = 40, 40
			all := keyed(keys, perKey)
			half := len(all) / 2

			l := newLedger()
			var mu sync.Mutex
			byMember := map[string]int{}
			handler := func(member string) consume.Handler {
				return func(ctx context.Context, r *kgo.Record) error {
					exit := l.enter(t, r, string(r.Key))
					time.Sleep(time.Duration(1 + rand.Int64N(int64(3*time.Millisecond))))
					mu.Lock()
					byMember[member]++
					mu.Unlock()
					exit(true)
					return nil
				}
			}
			opts := []consume.ConsumerOpt{groupOpts(c, group, topic), consume.KgoOpts(kgo.Balancers(tc.balancers...)),
				consume.Concurrency(4), consume.CommitInterval(50 * time.Millisecond), consume.MaxBuffered(100)}

			produce(t, c, topic, all[:half])
			a := start(t, handler("a"), opts...)
			testkit.WaitFor(t, 20*time.Second, "the first member to handle a quarter", func() bool { return l.doneCount() >= half/2 })
			b := start(t, handler("b"), opts...)
			testkit.WaitFor(t, 20*time.Second, "the second member to get partitions", func() bool { return b.c.Stats().Partitions > 0 })
			produce(t, c, topic, all[half:])
			// Then the first member leaves mid-stream: it drains, commits,
			// and the second takes its partitions over.
			testkit.WaitFor(t, 30*time.Second, "three quarters", func() bool { return l.doneCount() >= len(all)*3/4 })
			if err := a.shutdown(t); err != nil {
				t.Errorf("first member's Run: %v", err)
			}
			testkit.WaitFor(t, 60*time.Second, "every record", func() bool { return l.doneCount() == len(all) })
			if err := b.shutdown(t); err != nil {
				t.Errorf("second member's Run: %v", err)
			}

			l.mu.Lock()
			defer l.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			if byMember["b"] == 0 {
				t.Fatalf("the second member handled nothing (%v): no rebalance happened mid-stream", byMember)
			}
			if len(l.overlap) > 0 {
				t.Errorf("%d records ran while another of their key ran (across members), first key %s", len(l.overlap), l.overlap[0])
			}
			if l.total != len(all) {
				t.Errorf("handler ran %d times for %d records", l.total, len(all))
			}
			for key, seqs := range l.order {
				for i, s := range seqs {
					if s != i {
						t.Fatalf("key %s ran %v", key, seqs)
					}
				}
				if len(seqs) != perKey {
					t.Errorf("key %s ran %d records, want %d", key, len(seqs), perKey)
				}
			}
			t.Logf("records handled per member: %v", byMember)
		})
	}
}
