package verify

import (
	"context"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// queueTestConfig is a small, fast queue run against c.
func queueTestConfig(c *kafkatest.Cluster, order consume.Order, fault Fault, seed uint64) QueueConfig {
	return QueueConfig{
		Config: Config{Preset: produce.NoLoss, Fault: fault, Records: 800, Keys: 8, Rate: 800, Partitions: 3,
			Bootstrap: c.Bootstrap(), Faults: ClusterFaults(c)},
		Order: order, Consumers: 3, Crashes: 3, Seed: seed, SessionTimeout: 500 * time.Millisecond,
	}
}

// TestRunQueueUnderCrashesAndFaults runs consume's consumers in each order mode while members
// crash (no commit, no leave) and a broker fault strikes: every acknowledged record is handled,
// no commit passes an unhandled record, keys keep their order, and records run again only when
// they were in flight at a crash. The crashes must have cost re-runs, or they hit nothing.
func TestRunQueueUnderCrashesAndFaults(t *testing.T) {
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	for i, tt := range []struct {
		order consume.Order
		fault Fault
	}{
		{consume.KeyOrder, FaultKillLeader},
		{consume.PartitionOrder, FaultNone},
		{consume.Unordered, FaultIsolateLeader},
	} {
		t.Run(tt.order.String()+"/"+string(tt.fault), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := RunQueue(ctx, queueTestConfig(c, tt.order, tt.fault, uint64(i+1)))
			if err != nil {
				t.Fatal(err)
			}
			q := res.Queue
			t.Logf("%s: acked %d, handled %d (%d distinct, %d again), indeterminate %d, crashes %d, commits observed %d, %v",
				res.Topic, q.Acked, q.Handled, q.Distinct, q.Rehandled, q.Indeterminate, q.Crashes, len(res.History.Commits), res.Duration)
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			if q.Acked == 0 || q.Distinct < q.Acked {
				t.Fatalf("acked %d, handled %d distinct records", q.Acked, q.Distinct)
			}
			if q.Crashes != 3 {
				t.Errorf("%d crashes, want 3", q.Crashes)
			}
		})
	}
}
