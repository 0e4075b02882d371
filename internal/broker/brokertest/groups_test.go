package brokertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
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
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "orders", 3, 3, nil); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond))
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
	fresh, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond))
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

func TestClientsCannotWriteTheOffsetsTopic(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "t", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	adm := newAdmin(t, c)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: 7, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "g", offs); err != nil {
		t.Fatal(err)
	}

	// A stray record in __consumer_offsets would be replayed as group state by the next
	// coordinator; Kafka refuses such writes, and so must the bundled broker.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.DisableIdempotentWrite(),
		kgo.RecordRetries(1), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for p := range int32(4) {
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: "__consumer_offsets", Partition: p, Key: []byte("garbage"), Value: []byte("x")}).FirstErr()
		if !errors.Is(err, kerr.InvalidTopicException) {
			t.Fatalf("produce to __consumer_offsets-%d: %v, want INVALID_TOPIC_EXCEPTION", p, err)
		}
	}

	// The coordinator reloads its state from the topic after a restart: intact.
	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "the committed offset to be served again", func() bool {
		resp, err := newAdmin(t, c).FetchOffsets(ctx, "g")
		if err != nil {
			return false
		}
		o, ok := resp.Lookup("t", 0)
		return ok && o.Err == nil && o.At == 7
	})
}
