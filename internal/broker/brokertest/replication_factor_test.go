package brokertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// As Kafka's controller: a topic is never created with fewer replicas than asked for. With
// default.replication.factor=3 and one of three brokers down, CreateTopics with the default
// replication factor (-1) or an explicit 3 fails INVALID_REPLICATION_FACTOR, as does a
// replication factor of 0; auto-creation through Metadata fails the same way, and the topic is
// answered UNKNOWN_TOPIC_OR_PARTITION (what a Kafka 4.x broker answers while its CreateTopics to
// the controller is pending or has failed) and does not exist afterwards.
func TestReplicationFactorAboveLiveBrokersIsRefusedNotLowered(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.SessionTimeout(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "full", 1, -1, nil); err != nil {
		t.Fatalf("default replication factor with every broker up: %v", err)
	}
	if err := c.Kill(2); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "broker 2 fenced", func() bool {
		for _, b := range c.Brokers() {
			if b.ID == 2 {
				return b.Fenced
			}
		}
		return false
	})
	for _, tc := range []struct {
		topic string
		rf    int16
	}{{"default-rf", -1}, {"explicit-rf", 3}, {"zero-rf", 0}} {
		err := c.CreateTopic(ctx, tc.topic, 1, tc.rf, nil)
		if !errors.Is(err, kerr.InvalidReplicationFactor) {
			t.Errorf("CreateTopics %s with replication factor %d and 2 live brokers: %v, want INVALID_REPLICATION_FACTOR", tc.topic, tc.rf, err)
		}
	}
	if err := c.CreateTopic(ctx, "two", 1, 2, nil); err != nil {
		t.Fatalf("replication factor 2 with 2 live brokers: %v", err)
	}

	cl := dial(t, c)
	for range 2 {
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(12)
		req.AllowAutoTopicCreation = true
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("auto")
		req.Topics = append(req.Topics, rt)
		resp := request[*kmsg.MetadataResponse](t, cl, req)
		if got := resp.Topics[0].ErrorCode; got != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("auto-create with default.replication.factor=3 and 2 live brokers: code %d (%d partitions), want UNKNOWN_TOPIC_OR_PARTITION (%d)",
				got, len(resp.Topics[0].Partitions), kerr.UnknownTopicOrPartition.Code)
		}
	}
	if _, err := c.Partition("auto", 0); err == nil {
		t.Fatal("topic auto exists after a refused auto-creation")
	}
}
