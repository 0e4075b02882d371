// Package bundled holds test helpers over kafkaguard's bundled cluster (package kafkatest): a
// replicated topic ready for faults, and a fault applied to every follower of a partition. It is
// apart from package testkit, which works with any cluster, because the bundled cluster imports
// the broker packages whose own tests use testkit. It is imported only by tests.
package bundled

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// ThreeBrokers starts a 3-broker bundled cluster (with opts) holding topic, one partition
// replicated three times with topicConfigs, and waits until all three replicas are in sync. It
// returns the cluster, closed when tb ends, and the partition's leader.
func ThreeBrokers(tb testing.TB, topic string, topicConfigs map[string]string, opts ...kafkatest.Opt) (*kafkatest.Cluster, int32) {
	tb.Helper()
	c := kafkatest.NewCluster(tb, append([]kafkatest.Opt{kafkatest.Brokers(3)}, opts...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, topic, 1, 3, topicConfigs); err != nil {
		tb.Fatal(err)
	}
	info, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return len(i.ISR) == 3 })
	if err != nil {
		tb.Fatalf("ISR never reached 3: %+v: %v", info, err)
	}
	return c, info.Leader
}

// Followers returns the replicas of the partition described by info other than its leader.
func Followers(info kafkatest.PartitionInfo) []int32 {
	return slices.DeleteFunc(slices.Clone(info.Replicas), func(id int32) bool { return id == info.Leader })
}

// OnFollowers applies a fault (c.Kill, c.PauseReplication, c.ResumeReplication, ...) to every
// follower of the partition described by info, failing tb if one fails.
func OnFollowers(tb testing.TB, info kafkatest.PartitionInfo, fault func(id int32) error) {
	tb.Helper()
	for _, f := range Followers(info) {
		if err := fault(f); err != nil {
			tb.Fatalf("follower %d: %v", f, err)
		}
	}
}
