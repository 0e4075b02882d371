package brokertest_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// live returns the addresses of the brokers that run now, for clients that must not start from
// a killed one.
func live(c *kafkatest.Cluster) []string {
	var seeds []string
	for _, b := range c.Brokers() {
		if b.Alive {
			seeds = append(seeds, b.Address)
		}
	}
	return seeds
}

// endOffsets returns each partition's high watermark, asked of the brokers that run now.
func endOffsets(ctx context.Context, t *testing.T, c *kafkatest.Cluster, topic string) map[int32]int64 {
	t.Helper()
	return testkit.EndOffsets(ctx, t, live(c), topic)
}

// committedOffsets returns group's committed offsets for topic, asked of the brokers that run now.
func committedOffsets(ctx context.Context, t *testing.T, c *kafkatest.Cluster, group, topic string) map[int32]int64 {
	t.Helper()
	return testkit.CommittedOffsets(ctx, t, live(c), group, topic)
}

// newAdmin returns a kadm client seeded with the brokers that run now.
func newAdmin(t *testing.T, c *kafkatest.Cluster) *kadm.Client {
	t.Helper()
	return testkit.Admin(t, live(c))
}

// firstRecord returns the first record of a partition, read with franz-go.
func firstRecord(ctx context.Context, t *testing.T, c *kafkatest.Cluster, topic string, partition int32) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		fs := cl.PollRecords(ctx, 1)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record in %s-%d: %v", topic, partition, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch error (retried): %v", err) })
		if rs := fs.Records(); len(rs) > 0 {
			return rs[0]
		}
	}
}
