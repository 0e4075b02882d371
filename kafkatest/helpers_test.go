package kafkatest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// threeBrokers starts a 3-broker cluster with one RF=3 topic of one partition and returns the
// cluster and the partition's leader.
func threeBrokers(t *testing.T, topic string, topicConfigs map[string]string, opts ...kafkatest.Opt) (*kafkatest.Cluster, int32) {
	t.Helper()
	c := kafkatest.NewCluster(t, append([]kafkatest.Opt{kafkatest.Brokers(3)}, opts...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, topic, 1, 3, topicConfigs); err != nil {
		t.Fatal(err)
	}
	info, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return len(i.ISR) == 3 })
	if err != nil {
		t.Fatalf("ISR never reached 3: %+v: %v", info, err)
	}
	return c, info.Leader
}

func followers(info kafkatest.PartitionInfo) []int32 {
	return slices.DeleteFunc(slices.Clone(info.Replicas), func(id int32) bool { return id == info.Leader })
}

// onFollowers applies a fault (c.Pause, c.Resume, ...) to every follower of the partition
// described by info.
func onFollowers(t *testing.T, info kafkatest.PartitionInfo, fault func(id int32) error) {
	t.Helper()
	for _, f := range followers(info) {
		if err := fault(f); err != nil {
			t.Fatalf("follower %d: %v", f, err)
		}
	}
}

// produceSync produces one record and returns its error.
func produceSync(ctx context.Context, cl *kgo.Client, topic, value string) error {
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr()
}
