package server_test

import (
	"time"

	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRetentionNeverDeletesAboveTheHighWatermark: Kafka deletes a segment only when every
// record in it is below the high watermark (UnifiedLog.deletableSegments). A leader whose
// follower stopped copying holds acks=1 records above the high watermark in old segments;
// retention must leave them, or the log start passes the high watermark and records no
// consumer could read yet are gone.
func TestRetentionNeverDeletesAboveTheHighWatermark(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, true)
	c.createTopic("rhw", 1, 2, map[string]string{"segment.bytes": "200", "retention.ms": "1"})
	st := c.partition("rhw", 0)
	leader, follower := st.Leader, 1-st.Leader
	c.pauseReplication(follower, true)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs[leader]), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for range 12 { // one batch at a time: several 200-byte segments, all above the high watermark
		produce(t, cl, "rhw", 1, 0, nil)
	}
	time.Sleep(5 * time.Millisecond) // older than retention.ms=1
	before, _ := c.broker(leader).PartitionState("rhw", 0)
	if before.LEO <= before.HW {
		t.Fatalf("setup: leader end %d, high watermark %d: want records above the high watermark", before.LEO, before.HW)
	}
	if _, err := c.broker(leader).ApplyRetention("rhw", 0); err != nil {
		t.Fatal(err)
	}
	after, _ := c.broker(leader).PartitionState("rhw", 0)
	if after.LogStart > after.HW {
		t.Fatalf("retention moved the log start to %d, past the high watermark %d (end %d): records no consumer could read yet were deleted",
			after.LogStart, after.HW, after.LEO)
	}
}
