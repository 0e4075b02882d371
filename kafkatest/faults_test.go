package kafkatest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit/bundled"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// Latency on the leader slows every acks=all write by at least that much; pausing both
// followers (a subset of the brokers) gets them fenced and out of the ISR while writes go on,
// and resuming them brings them back with every record.
func TestLatencyAndPauseOnChosenBrokers(t *testing.T) {
	const topic = "chosen"
	c, leader := bundled.ThreeBrokers(t, topic, nil)
	info, _ := c.Partition(topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := produceSync(ctx, prod, topic, "warm-up"); err != nil {
		t.Fatal(err)
	}

	const latency = 200 * time.Millisecond
	if err := c.SetLatency(leader, latency, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := produceSync(ctx, prod, topic, "slow"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < latency {
		t.Fatalf("a write through a leader with %v of latency took %v", latency, took)
	}
	if err := c.SetLatency(leader, 0, 0); err != nil {
		t.Fatal(err)
	}

	bundled.OnFollowers(t, info, c.Pause)
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return slices.Equal(i.ISR, []int32{leader}) }); err != nil {
		t.Fatalf("paused followers never left the ISR: %v", err)
	}
	for _, b := range c.Brokers() {
		if b.ID != leader && (!b.Frozen || !b.Fenced) {
			t.Fatalf("paused follower %+v: want paused and fenced", b)
		}
	}
	if err := produceSync(ctx, prod, topic, "alone"); err != nil {
		t.Fatalf("write with both followers paused: %v", err)
	}
	bundled.OnFollowers(t, info, c.Resume)
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return len(i.ISR) == 3 }); err != nil {
		t.Fatalf("resumed followers never rejoined the ISR: %v", err)
	}
	for _, f := range bundled.Followers(info) {
		if rep, _ := c.Replica(f, topic, 0); rep.LEO != 3 {
			t.Fatalf("resumed follower %d ends at %d, want 3", f, rep.LEO)
		}
	}
	if err := c.CutLink(leader, 7); err == nil {
		t.Fatal("CutLink to an unknown broker succeeded")
	}
}

// produceSync produces one record and returns its error.
func produceSync(ctx context.Context, cl *kgo.Client, topic, value string) error {
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr()
}
