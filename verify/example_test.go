package verify_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/verify"
)

func ExampleCheck() {
	// The producer saw k0:0, k0:1 and k0:2 acknowledged; the topic holds
	// k0:0, k0:2, k0:0 and k0:3 (whose acknowledgement never arrived).
	acked := []verify.Value{{Key: 0, Seq: 0}, {Key: 0, Seq: 1}, {Key: 0, Seq: 2}}
	read := []verify.Record{
		{Partition: 0, Offset: 0, Value: verify.Value{Key: 0, Seq: 0}},
		{Partition: 0, Offset: 1, Value: verify.Value{Key: 0, Seq: 2}},
		{Partition: 0, Offset: 2, Value: verify.Value{Key: 0, Seq: 0}},
		{Partition: 0, Offset: 3, Value: verify.Value{Key: 0, Seq: 3}},
	}
	r := verify.Check(acked, read)
	fmt.Println("lost", r.Lost, r.LostSample, "duplicated", r.Duplicated, "unacked-present", r.UnackedPresent)
	fmt.Println(errors.Is(r.Err(), verify.ErrLost), errors.Is(r.Err(), verify.ErrReordered))
	// Output:
	// lost 1 [k0:1] duplicated 1 unacked-present 1
	// true false
}

func ExampleRun() {
	ctx := context.Background()
	c, err := kafkatest.Start(ctx, kafkatest.Brokers(3))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := verify.Run(ctx, verify.Config{
		Preset:    produce.NoLoss,
		Fault:     verify.FaultKillLeader,
		Records:   600,
		Keys:      6,
		Bootstrap: c.Bootstrap(),
		Faults:    verify.ClusterFaults(c),
	})
	if err != nil {
		log.Fatal(err)
	}
	// How many records were acknowledged depends on when the leader died; what NoLoss promises
	// does not.
	r := res.Report
	fmt.Println("lost:", r.Lost, "duplicated:", r.Duplicated, "reordered:", r.Reordered, "promise kept:", res.Err() == nil)
	// Output: lost: 0 duplicated: 0 reordered: 0 promise kept: true
}

func ExampleNewSchedule() {
	// The schedule of seed 8 for three brokers, one partition and every fault the bundled
	// cluster can carry out, over three seconds: the same seed always draws it again.
	s := verify.NewSchedule(8, verify.Shape{Brokers: []int32{0, 1, 2}, Partitions: 1, Ops: verify.Ops(), Span: 3 * time.Second})
	for _, w := range s.Windows {
		fmt.Println(w)
	}
	// Output:
	// 750ms+990ms latency follower of p0 131ms±66ms
	// 1.65s+770ms controller-latency leader of p0 159ms±16ms
	// 2.57s+430ms latency controller 72ms±36ms
	// 2.72s+280ms one-way-partition controller -> other
}
