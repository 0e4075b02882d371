package brokertest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/internal/testkit/bundled"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// readAll waits until partition 0's leader has committed all it holds, consumes it from the
// start up to that high watermark, and returns the values in offset order.
func readAll(t *testing.T, c *kafkatest.Cluster, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Wait until everything the leader has is committed, so the high watermark is final.
	info, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool {
		if i.Leader < 0 || i.HW < 0 {
			return false
		}
		rep, err := c.Replica(i.Leader, topic, 0)
		return err == nil && rep.LEO == i.HW
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for next, r := range testkit.ReadAll(ctx, t, c.Bootstrap(), topic) {
		if r.Offset != int64(next) {
			t.Fatalf("got offset %d, want %d", r.Offset, next)
		}
		out = append(out, string(r.Value))
	}
	if int64(len(out)) != info.HW {
		t.Fatalf("read %d records, want the high watermark %d", len(out), info.HW)
	}
	return out
}

func TestAcksAllWithIdempotenceLosesNothingWhenLeaderIsKilledMidStream(t *testing.T) {
	t.Parallel()
	const topic = "killed-leader"
	c, leader := bundled.ThreeBrokers(t, topic, map[string]string{"min.insync.replicas": "2"})
	before, _ := c.Partition(topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	const keys, perKey = 10, 200
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for s := 0; s < perKey; s++ {
		if s == perKey/3 {
			if err := c.Kill(leader); err != nil {
				t.Fatal(err)
			}
		}
		for k := 0; k < keys; k++ {
			v := fmt.Sprintf("k%d:%d", k, s)
			wg.Add(1)
			prod.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint("k", k)), Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				if err == nil {
					mu.Lock()
					acked[string(r.Value)] = true
					mu.Unlock()
				}
			})
		}
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	if len(acked) != keys*perKey {
		t.Fatalf("only %d of %d records were acknowledged", len(acked), keys*perKey)
	}
	after, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.Leader >= 0 && i.Leader != leader })
	if err != nil {
		t.Fatal(err)
	}
	if after.LeaderEpoch <= before.LeaderEpoch {
		t.Fatalf("leader epoch %d did not grow past %d", after.LeaderEpoch, before.LeaderEpoch)
	}
	var got []produced
	for _, v := range readAll(t, c, topic) {
		got = append(got, parseValue(t, []byte(v)))
	}
	checkExactlyOnceInOrder(t, got, keys, perKey)
}

// produceSync produces one record and returns its error.
func produceSync(ctx context.Context, cl *kgo.Client, topic, value string) error {
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr()
}

func TestAcksOneLosesRecordWhenLeaderDiesBeforeReplication(t *testing.T) {
	t.Parallel()
	const topic = "acks1-loss"
	c, leader := bundled.ThreeBrokers(t, topic, nil)
	info, _ := c.Partition(topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := produceSync(ctx, prod, topic, "replicated"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.HW == 1 }); err != nil {
		t.Fatal(err)
	}
	bundled.OnFollowers(t, info, c.PauseReplication)
	for i := 0; i < 5; i++ {
		if err := produceSync(ctx, prod, topic, fmt.Sprint("leader-only-", i)); err != nil {
			t.Fatalf("acks=1 produce while followers are paused: %v", err)
		}
	}
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	bundled.OnFollowers(t, info, c.ResumeReplication)
	after, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.Leader >= 0 && i.Leader != leader })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	// The old leader comes back as a follower and truncates what the new leader never had.
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return len(i.ISR) == 3 }); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Replica(leader, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.LEO != 1 {
		t.Fatalf("returning old leader's log ends at %d, want 1 (truncated)", rep.LEO)
	}
	got := readAll(t, c, topic)
	if !slices.Equal(got, []string{"replicated"}) {
		t.Fatalf("after failover the topic holds %q; the five acks=1 records should be lost", got)
	}
	t.Logf("acks=1: 5 acknowledged records lost after leader %d died; new leader %d epoch %d", leader, after.Leader, after.LeaderEpoch)
}

func TestAcksAllNeverAcknowledgesWhatFollowersDidNotCopy(t *testing.T) {
	t.Parallel()
	const topic = "acksall-pause"
	c, leader := bundled.ThreeBrokers(t, topic, map[string]string{"min.insync.replicas": "2"}, kafkatest.ReplicaLagMax(30*time.Second))
	info, _ := c.Partition(topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bundled.OnFollowers(t, info, c.PauseReplication)
	// Without idempotence kgo may give up on a record whose outcome is unknown; an idempotent
	// producer would (rightly) keep retrying it until the ISR has it.
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(),
		kgo.ProduceRequestTimeout(500*time.Millisecond), kgo.RecordDeliveryTimeout(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	err = produceSync(ctx, prod, topic, "never-acked")
	if err == nil {
		t.Fatal("acks=all was acknowledged although no follower copied the record")
	}
	t.Logf("acks=all while followers are paused: %v", err)
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	bundled.OnFollowers(t, info, c.ResumeReplication)
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.Leader >= 0 && i.Leader != leader }); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c, topic); len(got) != 0 {
		t.Fatalf("the new leader has %q", got)
	}
}

func TestNotEnoughReplicasWhenTwoOfThreeBrokersAreDown(t *testing.T) {
	t.Parallel()
	const topic = "min-isr"
	c, leader := bundled.ThreeBrokers(t, topic, map[string]string{"min.insync.replicas": "2"})
	info, _ := c.Partition(topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bundled.OnFollowers(t, info, c.Kill)
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return slices.Equal(i.ISR, []int32{leader}) }); err != nil {
		t.Fatal(err)
	}
	all, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(0),
		kgo.RecordDeliveryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	err = produceSync(ctx, all, topic, "refused")
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all with ISR=[%d] and min.insync.replicas=2: got %v, want NOT_ENOUGH_REPLICAS", leader, err)
	}
	if rep, _ := c.Replica(leader, topic, 0); rep.LEO != 0 {
		t.Fatalf("log end offset moved to %d although the write was refused", rep.LEO)
	}
	one, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if err := produceSync(ctx, one, topic, "accepted"); err != nil {
		t.Fatalf("acks=1 with one live replica: %v", err)
	}
}

func TestPausedFollowerLeavesISRAfterLagBoundAndRejoinsWhenResumed(t *testing.T) {
	t.Parallel()
	const topic = "lagging"
	lag := 500 * time.Millisecond
	c, _ := bundled.ThreeBrokers(t, topic, map[string]string{"min.insync.replicas": "2"}, kafkatest.ReplicaLagMax(lag))
	info, _ := c.Partition(topic, 0)
	slow := bundled.Followers(info)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := c.PauseReplication(slow); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	// Writes keep succeeding: first while the paused follower is still in the ISR only until the
	// lag bound passes (acks=all waits for it), then without it.
	for i := 0; i < 20; i++ {
		if err := produceSync(ctx, prod, topic, fmt.Sprint("v", i)); err != nil {
			t.Fatalf("write %d while a follower is paused: %v", i, err)
		}
	}
	shrunk, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return !slices.Contains(i.ISR, slow) })
	if err != nil {
		t.Fatal(err)
	}
	if since := time.Since(paused); since < lag {
		t.Fatalf("follower left the ISR after %v, before the lag bound %v", since, lag)
	}
	if len(shrunk.ISR) != 2 {
		t.Fatalf("ISR %v, want the two live replicas", shrunk.ISR)
	}
	if err := c.ResumeReplication(slow); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return slices.Contains(i.ISR, slow) }); err != nil {
		t.Fatalf("resumed follower did not rejoin the ISR: %v", err)
	}
	if rep, _ := c.Replica(slow, topic, 0); rep.LEO != 20 {
		t.Fatalf("rejoined follower's log ends at %d, want 20", rep.LEO)
	}
}

// ackOnTheLeaderAlone pauses the followers of partition 0 and has the leader acknowledge value
// with acks=all once they have left the ISR (they must fall behind to leave it: a caught-up
// follower of an idle partition stays in, as in Kafka), so that only the leader holds the record.
// It returns the partition as it is then, the followers still paused.
func ackOnTheLeaderAlone(ctx context.Context, t *testing.T, c *kafkatest.Cluster, topic string, info kafkatest.PartitionInfo, value string) kafkatest.PartitionInfo {
	t.Helper()
	bundled.OnFollowers(t, info, c.PauseReplication)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := produceSync(ctx, prod, topic, value); err != nil {
		t.Fatal(err)
	}
	alone, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return slices.Equal(i.ISR, []int32{info.Leader}) })
	if err != nil {
		t.Fatal(err)
	}
	return alone
}

func TestUncleanElectionOffLeavesPartitionOfflineWithoutISR(t *testing.T) {
	t.Parallel()
	const topic = "clean-only"
	c, leader := bundled.ThreeBrokers(t, topic, map[string]string{"min.insync.replicas": "1", "unclean.leader.election.enable": "false"}, kafkatest.ReplicaLagMax(300*time.Millisecond))
	info, _ := c.Partition(topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fs := bundled.Followers(info)
	before := ackOnTheLeaderAlone(ctx, t, c, topic, info, "only-on-leader")
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	bundled.OnFollowers(t, info, c.ResumeReplication)
	off, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.Leader == -1 })
	if err != nil {
		t.Fatalf("partition did not go offline: %v", err)
	}
	if off.LeaderEpoch <= before.LeaderEpoch {
		t.Fatalf("going offline left the leader epoch at %d (was %d); a leader change must bump it", off.LeaderEpoch, before.LeaderEpoch)
	}
	// The controller elects offline partitions when a broker registers: bounce a stale replica so
	// that an election certainly runs, rather than waiting for one that may never come.
	if err := c.Kill(fs[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, fs[0]); err != nil {
		t.Fatal(err)
	}
	if now, _ := c.Partition(topic, 0); now.Leader != -1 {
		t.Fatalf("a stale replica became leader (%d) with unclean election off", now.Leader)
	}
	if err := c.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	back, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.Leader == leader })
	if err != nil {
		t.Fatal(err)
	}
	if back.LeaderEpoch <= off.LeaderEpoch {
		t.Fatalf("leader epoch %d after the last ISR member returned, want more than %d", back.LeaderEpoch, off.LeaderEpoch)
	}
	if got := readAll(t, c, topic); !slices.Equal(got, []string{"only-on-leader"}) {
		t.Fatalf("after the last ISR member returned the topic holds %q", got)
	}
}

// TestUncleanElectionOnElectsAStaleReplicaAndLosesAckedRecords is the unsafe configuration next to
// the test above: with unclean.leader.election.enable=true the controller makes an out-of-sync
// replica leader, and the record the old leader acknowledged (acks=all, ISR of one) is gone.
func TestUncleanElectionOnElectsAStaleReplicaAndLosesAckedRecords(t *testing.T) {
	t.Parallel()
	const topic = "unclean"
	c, leader := bundled.ThreeBrokers(t, topic, map[string]string{"min.insync.replicas": "1", "unclean.leader.election.enable": "true"}, kafkatest.ReplicaLagMax(300*time.Millisecond))
	info, _ := c.Partition(topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before := ackOnTheLeaderAlone(ctx, t, c, topic, info, "acked-then-lost")
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	bundled.OnFollowers(t, info, c.ResumeReplication)
	stale, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.Leader >= 0 && i.Leader != leader })
	if err != nil {
		t.Fatalf("no stale replica was elected with unclean election on: %v", err)
	}
	if stale.LeaderEpoch <= before.LeaderEpoch {
		t.Fatalf("unclean election left the leader epoch at %d (was %d); it must bump it", stale.LeaderEpoch, before.LeaderEpoch)
	}
	if err := c.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	// The old leader comes back as a follower, truncates to the new leader's epoch and loses the
	// record it acknowledged.
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return slices.Contains(i.ISR, leader) }); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c, topic); len(got) != 0 {
		t.Fatalf("after the unclean election the topic holds %q; the acked record should be lost", got)
	}
}

func TestConsumerNeverSeesRecordsAtOrAboveHighWatermark(t *testing.T) {
	t.Parallel()
	const topic = "hw"
	c, leader := bundled.ThreeBrokers(t, topic, nil, kafkatest.ReplicaLagMax(30*time.Second))
	info, _ := c.Partition(topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := 0; i < 3; i++ {
		if err := produceSync(ctx, prod, topic, fmt.Sprint("committed-", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.HW == 3 }); err != nil {
		t.Fatal(err)
	}
	bundled.OnFollowers(t, info, c.PauseReplication)
	for i := 0; i < 4; i++ {
		if err := produceSync(ctx, prod, topic, fmt.Sprint("uncommitted-", i)); err != nil {
			t.Fatal(err)
		}
	}
	rep, _ := c.Replica(leader, topic, 0)
	if rep.LEO != 7 || rep.HW != 3 {
		t.Fatalf("leader LEO %d HW %d, want 7 and 3", rep.LEO, rep.HW)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	deadline := time.Now().Add(1500 * time.Millisecond)
	seen := 0
	for time.Now().Before(deadline) {
		pctx, pcancel := context.WithDeadline(ctx, deadline)
		fs := cons.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= 3 {
				t.Fatalf("consumer received offset %d (%s) at or above the high watermark 3", r.Offset, r.Value)
			}
			seen++
		})
	}
	if seen != 3 {
		t.Fatalf("consumer saw %d committed records, want 3", seen)
	}
	bundled.OnFollowers(t, info, c.ResumeReplication)
	// Once the followers copy them, the HW passes them and they become visible.
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.HW == 7 }); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c, topic); len(got) != 7 {
		t.Fatalf("after replication resumed read %d records, want 7", len(got))
	}
}
