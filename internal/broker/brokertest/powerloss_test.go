package brokertest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit/bundled"
)

// powerLossOfEveryReplica produces n records with acks=all to an RF=3 topic with the given
// configs, cuts the power of all three brokers at once, restarts them, and returns how many
// acknowledged records are missing when the partition is read back.
func powerLossOfEveryReplica(t *testing.T, topicConfigs map[string]string, n int) (ackedButMissing int) {
	t.Helper()
	const topic = "power-loss"
	c, _ := bundled.ThreeBrokers(t, topic, topicConfigs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for i := range n {
		v := fmt.Sprint("r", i)
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
		acked[v] = true
	}
	prod.Close()

	if err := c.PowerLoss(0, 1, 2); err != nil {
		t.Fatal(err)
	}
	for id := range int32(3) {
		if err := c.Restart(ctx, id); err != nil {
			t.Fatalf("restart %d: %v", id, err)
		}
	}
	for _, v := range readAll(t, c, topic) {
		delete(acked, v)
	}
	return len(acked)
}

// TestPowerLossOfEveryReplicaCanLoseAckedRecordsWithoutFlush: with Kafka's default flush policy
// (no fsync; durability from replication), acks=all does not survive every replica losing power
// at once: the records were acknowledged from the page cache, which the power loss takes.
func TestPowerLossOfEveryReplicaCanLoseAckedRecordsWithoutFlush(t *testing.T) {
	t.Parallel()
	const n = 20
	if missing := powerLossOfEveryReplica(t, map[string]string{"min.insync.replicas": "2"}, n); missing == 0 {
		t.Fatalf("no acknowledged record of %d was lost by a power loss of every replica without fsync; the power-loss fault lost nothing", n)
	}
}

// TestPowerLossOfEveryReplicaLosesNothingWithFlushMessagesOne: with flush.messages=1 every
// replica fsyncs each append before it counts toward the high watermark, so the same schedule
// loses no acknowledged record.
func TestPowerLossOfEveryReplicaLosesNothingWithFlushMessagesOne(t *testing.T) {
	t.Parallel()
	const n = 20
	if missing := powerLossOfEveryReplica(t, map[string]string{"min.insync.replicas": "2", "flush.messages": "1"}, n); missing != 0 {
		t.Fatalf("%d of %d acknowledged records lost by a power loss with flush.messages=1", missing, n)
	}
}
