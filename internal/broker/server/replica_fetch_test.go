package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// laggingPartition starts three brokers and a topic with two replicas, pauses the follower's
// replication and writes n records with acks=1, so the leader's log end is n and its high
// watermark below it. It returns the cluster, the leader, the follower and the broker outside
// the replicas.
func laggingPartition(t *testing.T, topic string, n int) (c *testCluster, leader, follower, outsider int32) {
	t.Helper()
	c = startCluster(t, 3, false)
	c.createTopic(topic, 1, 2, nil)
	st := c.partition(topic, 0)
	leader = st.Leader
	for id := range int32(3) {
		switch {
		case id == leader:
		case slices.Contains(st.Replicas, id):
			follower = id
		default:
			outsider = id
		}
	}
	c.pauseReplication(follower, true)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce(t, cl, topic, n, 0, nil)
	if s, _ := c.broker(leader).PartitionState(topic, 0); s.LEO != int64(n) || s.HW >= s.LEO {
		t.Fatalf("leader state %+v: want log end %d above the high watermark", s, n)
	}
	return c, leader, follower, outsider
}

// replicaFetch sends one Fetch v12 for partition 0 of topic to addr as replica id.
func replicaFetch(t *testing.T, addr string, id int32, topic string, p kmsg.FetchRequestTopicPartition) kmsg.FetchResponseTopicPartition {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, nil, addr, "raw-replica")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID = id
	req.MaxWaitMillis = 100
	req.MaxBytes = 1 << 20
	req.MinBytes = 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	p.Partition = 0
	if p.PartitionMaxBytes == 0 {
		p.PartitionMaxBytes = 1 << 20
	}
	rt.Partitions = append(rt.Partitions, p)
	req.Topics = append(req.Topics, rt)
	kresp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("malformed fetch response: %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

func fetchPartition(offset int64, currentEpoch, lastFetchedEpoch int32) kmsg.FetchRequestTopicPartition {
	p := kmsg.NewFetchRequestTopicPartition()
	p.FetchOffset, p.CurrentLeaderEpoch, p.LastFetchedEpoch = offset, currentEpoch, lastFetchedEpoch
	return p
}

func TestReplicaFetchByABrokerOutsideTheReplicasReadsNothing(t *testing.T) {
	t.Parallel()
	const topic = "outsider"
	c, leader, _, outsider := laggingPartition(t, topic, 20)
	epoch := c.partition(topic, 0).LeaderEpoch
	for _, tc := range []struct {
		epoch int32
		want  *kerr.Error
	}{{-1, kerr.NotLeaderForPartition}, {epoch, kerr.UnknownLeaderEpoch}} {
		rp := replicaFetch(t, c.addrs[leader], outsider, topic, fetchPartition(0, tc.epoch, -1))
		if rp.ErrorCode != tc.want.Code || len(rp.RecordBatches) != 0 {
			t.Errorf("fetch as broker %d (not a replica), epoch %d: error %v with %d bytes; want %v and no records",
				outsider, tc.epoch, kerr.ErrorForCode(rp.ErrorCode), len(rp.RecordBatches), tc.want)
		}
	}
}

func TestFollowerFetchPastTheLeaderEndDoesNotAdvanceTheHighWatermark(t *testing.T) {
	t.Parallel()
	const topic = "pastend"
	c, leader, follower, _ := laggingPartition(t, topic, 20)
	before, _ := c.broker(leader).PartitionState(topic, 0)
	rp := replicaFetch(t, c.addrs[leader], follower, topic, fetchPartition(before.LEO+100, before.LeaderEpoch, -1))
	if rp.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("follower fetch at %d past the log end %d: %v, want OFFSET_OUT_OF_RANGE", before.LEO+100, before.LEO, kerr.ErrorForCode(rp.ErrorCode))
	}
	if after, _ := c.broker(leader).PartitionState(topic, 0); after.HW != before.HW {
		t.Fatalf("high watermark moved from %d to %d on a failed follower fetch; the follower holds none of it", before.HW, after.HW)
	}
}

func TestFollowerBelowTheLeaderLogStartRestartsAtItAndRejoinsTheISR(t *testing.T) {
	t.Parallel()
	const topic = "retained"
	c := startCluster(t, 2, false)
	c.createTopic(topic, 1, 2, map[string]string{"segment.bytes": "16384", "retention.bytes": "32768"})
	st := c.partition(topic, 0)
	leader, follower := st.Leader, 1-st.Leader
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(8192)) // batches smaller than a segment, so segments roll
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce(t, cl, topic, 20, 0, nil)

	// The follower stops; the leader goes on alone and deletes the segments the follower lacks.
	fst, _ := c.broker(follower).PartitionState(topic, 0)
	c.kill(follower)
	c.waitFor("the ISR to shrink to the leader", func() bool { return len(c.partition(topic, 0).ISR) == 1 })
	produce(t, cl, topic, 200, 0, nil)
	if n, err := c.broker(leader).ApplyRetention(topic, 0); err != nil || n == 0 {
		t.Fatalf("retention on the leader deleted %d segments: %v", n, err)
	}
	lst, _ := c.broker(leader).PartitionState(topic, 0)

	// (Checked before the restart: once started, the follower may fix its log at once.)
	if fst.LEO >= lst.LogStart {
		t.Fatalf("follower log end %d is not below the leader's log start %d", fst.LEO, lst.LogStart)
	}
	c.start(follower)
	c.waitFor("the follower back in the ISR", func() bool { return len(c.partition(topic, 0).ISR) == 2 })
	produce(t, cl, topic, 20, 0, nil)
	c.waitFor("the follower caught up", func() bool {
		a, _ := c.broker(leader).PartitionState(topic, 0)
		b, _ := c.broker(follower).PartitionState(topic, 0)
		return a.LEO == b.LEO
	})
	got, _ := c.broker(follower).PartitionState(topic, 0)
	if got.LogStart != lst.LogStart {
		t.Fatalf("follower restarted its log at %d, want the leader's log start %d", got.LogStart, lst.LogStart)
	}
	t.Logf("follower: log end %d below the leader's start %d; restarted at %d, now [%d, %d)", fst.LEO, lst.LogStart, got.LogStart, got.LogStart, got.LEO)
}

func TestFollowerFetchWhoseLastFetchedEpochDivergesIsAnsweredWithTheEpochEnd(t *testing.T) {
	t.Parallel()
	const topic = "diverging"
	c, leader, follower, _ := laggingPartition(t, topic, 20)
	before, _ := c.broker(leader).PartitionState(topic, 0)
	// The follower, say a deposed leader, holds 3 records of an epoch the leader never had.
	rp := replicaFetch(t, c.addrs[leader], follower, topic, fetchPartition(before.LEO+3, before.LeaderEpoch, before.LeaderEpoch+1))
	if rp.ErrorCode != 0 || rp.DivergingEpoch.Epoch != before.LeaderEpoch || rp.DivergingEpoch.EndOffset != before.LEO || len(rp.RecordBatches) != 0 {
		t.Fatalf("diverging follower fetch: error %v, diverging epoch %+v, %d bytes; want no error, {%d %d} and no records",
			kerr.ErrorForCode(rp.ErrorCode), rp.DivergingEpoch, len(rp.RecordBatches), before.LeaderEpoch, before.LEO)
	}
	if after, _ := c.broker(leader).PartitionState(topic, 0); after.HW != before.HW {
		t.Fatalf("high watermark moved from %d to %d on a diverging fetch", before.HW, after.HW)
	}
}
