package kafkatest_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// coordinatorOf asks the cluster which broker coordinates group.
func coordinatorOf(t *testing.T, ctx context.Context, cl *kgo.Client, group string) int32 {
	t.Helper()
	for {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = group
		req.CoordinatorKeys = []string{group}
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			if len(resp.Coordinators) == 1 && resp.Coordinators[0].ErrorCode == 0 {
				return resp.Coordinators[0].NodeID
			}
			if len(resp.Coordinators) == 0 && resp.ErrorCode == 0 {
				return resp.NodeID
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no coordinator for %s: %v", group, ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommittedOffsetsSurviveLossOfTheCoordinatorBroker(t *testing.T) {
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "orders", 3, 3, nil); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	const group = "billing"
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 42, LeaderEpoch: -1, Metadata: "m0"})
	offsets.Add(kadm.Offset{Topic: "orders", Partition: 2, At: 7, LeaderEpoch: -1})
	resp, err := adm.CommitOffsets(ctx, group, offsets)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Error(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	coord := coordinatorOf(t, ctx, cl, group)
	if err := c.Kill(coord); err != nil {
		t.Fatal(err)
	}
	for coordinatorOf(t, ctx, cl, group) == coord {
		time.Sleep(50 * time.Millisecond) // the controller notices after the session timeout
	}
	// A client that starts after the failover (as a restarted consumer would) finds the new
	// coordinator, which rebuilt the group's offsets from the replicated offsets partition.
	fresh, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		fetched, err := kadm.NewClient(fresh).FetchOffsets(ctx, group)
		if err == nil {
			o0, ok0 := fetched.Lookup("orders", 0)
			o2, ok2 := fetched.Lookup("orders", 2)
			if ok0 && ok2 && o0.Err == nil {
				if o0.At != 42 || o0.Metadata != "m0" || o2.At != 7 {
					t.Fatalf("after the coordinator died: orders-0 at %d (%q), orders-2 at %d; want 42 (m0) and 7", o0.At, o0.Metadata, o2.At)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("offsets not readable from a new coordinator: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if now := coordinatorOf(t, ctx, cl, group); now == coord {
		t.Fatalf("coordinator is still the killed broker %d", coord)
	}
}
