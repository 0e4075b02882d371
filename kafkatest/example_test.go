package kafkatest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// A program (or a test, with NewCluster) starts a 3-broker cluster, writes a record with
// acks=all, kills the partition's leader and reads the record back from the leader the ISR
// elected.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := kafkatest.Start(ctx, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateTopic(ctx, "orders", 1, 3, nil); err != nil {
		log.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic("orders"),
		kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, kgo.StringRecord("order 1")).FirstErr(); err != nil {
		log.Fatal(err)
	}

	before, err := c.Partition("orders", 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("replicas in sync:", len(before.ISR))
	if err := c.Kill(before.Leader); err != nil {
		log.Fatal(err)
	}
	after, err := c.WaitPartition(ctx, "orders", 0, func(p kafkatest.PartitionInfo) bool {
		return p.Leader >= 0 && p.Leader != before.Leader
	})
	if err != nil {
		log.Fatal(err)
	}
	// Which follower wins the election varies from run to run; that there is a new leader does not.
	fmt.Println("new leader elected:", after.Leader != before.Leader, "epoch up:", after.LeaderEpoch > before.LeaderEpoch)

	fs := cl.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read back: %s\n", fs.Records()[0].Value)
	// Output:
	// replicas in sync: 3
	// new leader elected: true epoch up: true
	// read back: order 1
}
