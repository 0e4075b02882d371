package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// partitionState is one partition as the cluster's metadata reports it.
type partitionState struct {
	Leader   int32
	Epoch    int32
	Replicas []int32
	ISR      []int32
	Err      error
}

func (p partitionState) String() string {
	return fmt.Sprintf("leader=%d epoch=%d replicas=%v isr=%v err=%v", p.Leader, p.Epoch, p.Replicas, p.ISR, p.Err)
}

// followers returns the replicas other than the leader.
func (p partitionState) followers() []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(id int32) bool { return id == p.Leader })
}

// fullISR reports whether the partition has a leader and every replica is in
// sync.
func (p partitionState) fullISR() bool {
	return p.Err == nil && p.Leader >= 0 && len(p.Replicas) > 0 && len(p.ISR) == len(p.Replicas)
}

// partitions reads topic's partitions from the metadata.
func partitions(ctx context.Context, adm *kadm.Client, topic string) (map[int32]partitionState, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	td, ok := md.Topics[topic]
	if !ok {
		return nil, fmt.Errorf("topic %s missing from metadata", topic)
	}
	if td.Err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, td.Err)
	}
	out := make(map[int32]partitionState, len(td.Partitions))
	for p, pd := range td.Partitions {
		out[p] = partitionState{Leader: pd.Leader, Epoch: pd.LeaderEpoch, Replicas: pd.Replicas, ISR: pd.ISR, Err: pd.Err}
	}
	return out, nil
}

// waitTopic polls topic's metadata until cond holds for every partition, or
// fails t when ctx ends. It returns the last state.
func waitTopic(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, what string, cond func(partitionState) bool) map[int32]partitionState {
	t.Helper()
	var last map[int32]partitionState
	var lastErr error
	for {
		ps, err := partitions(ctx, adm, topic)
		if err == nil && len(ps) > 0 {
			ok := true
			for _, p := range ps {
				ok = ok && cond(p)
			}
			if ok {
				return ps
			}
		}
		if err != nil {
			lastErr = err
		} else {
			last = ps
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			t.Fatalf("topic %s: waiting for %s: %v; last state %v (last error %v)", topic, what, ctx.Err(), last, lastErr)
		}
	}
}

// createTopic creates a topic and waits until every partition has a leader
// and a full ISR.
func createTopic(ctx context.Context, t *testing.T, c Cluster, adm *kadm.Client, topic string, partitions int32, rf int16, configs map[string]string) map[int32]partitionState {
	t.Helper()
	cfg := map[string]*string{}
	for k, v := range configs {
		cfg[k] = kadm.StringPtr(v)
	}
	resp, err := adm.CreateTopic(ctx, partitions, rf, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s (partitions=%d rf=%d configs=%v): %v", topic, partitions, rf, configs, err)
	}
	ps := waitTopic(ctx, t, adm, topic, "leaders and full ISR", partitionState.fullISR)
	waitEveryBrokerKnows(ctx, t, c, topic, len(ps))
	return ps
}

// waitEveryBrokerKnows asks each broker in turn for topic's metadata until
// all of them report its partitions with leaders. Brokers learn of a new
// topic one by one (Kafka's metadata log, the bundled cluster's images); a
// request sent to one that has not yet would fail with
// UNKNOWN_TOPIC_OR_PARTITION.
func waitEveryBrokerKnows(ctx context.Context, t *testing.T, c Cluster, topic string, partitions int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	knows := func(b *kgo.Broker) bool {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, b)
		if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) != partitions {
			return false
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 || p.Leader < 0 {
				return false
			}
		}
		return true
	}
	for {
		md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		all := err == nil && len(md.Brokers) > 0
		for i := 0; all && i < len(md.Brokers); i++ {
			all = knows(cl.Broker(int(md.Brokers[i].NodeID)))
		}
		if all {
			return
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			t.Fatalf("topic %s: not every broker learned of it: %v", topic, ctx.Err())
		}
	}
}

// settledEnds waits until topic is fully replicated (every partition has a
// leader and a full ISR) and its end offsets stop moving, and returns them.
// With the ISR full and nothing in flight, the high watermark is the leader's
// log end, so the offsets cover everything the cluster committed.
func settledEnds(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	waitTopic(ctx, t, adm, topic, "full ISR before reading", partitionState.fullISR)
	var prev map[int32]int64
	same := 0
	for {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			cur := map[int32]int64{}
			ends.Each(func(o kadm.ListedOffset) { cur[o.Partition] = o.Offset })
			if prev != nil && mapsEqual(prev, cur) {
				same++
			} else {
				same = 0
			}
			if same == 2 {
				return cur
			}
			prev = cur
		}
		if !sleepCtx(ctx, 300*time.Millisecond) {
			t.Fatalf("topic %s: end offsets did not settle: %v (last %v, err %v)", topic, ctx.Err(), prev, err)
		}
	}
}

func mapsEqual(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// readAll consumes every committed record of topic, partition by partition
// from offset 0, and returns them in offset order per partition. It fails t
// on a gap or a repeated offset.
func readAll(ctx context.Context, t *testing.T, c Cluster, adm *kadm.Client, topic string) map[int32][]*kgo.Record {
	t.Helper()
	ends := settledEnds(ctx, t, adm, topic)
	start := map[int32]kgo.Offset{}
	out := map[int32][]*kgo.Record{}
	remaining := 0
	for p, end := range ends {
		start[p] = kgo.NewOffset().AtStart()
		out[p] = nil
		if end > 0 {
			remaining++
		}
	}
	if remaining == 0 {
		return out
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("topic %s: read %v of %v before: %v", topic, counts(out), ends, ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("fetch partition %d: %v (retried)", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			recs := out[r.Partition]
			if r.Offset >= ends[r.Partition] {
				return // produced after the ends were read
			}
			if want := int64(len(recs)); r.Offset != want {
				t.Fatalf("topic %s partition %d: read offset %d, want %d (a gap or a repeat)", topic, r.Partition, r.Offset, want)
			}
			out[r.Partition] = append(recs, r)
			if int64(len(out[r.Partition])) == ends[r.Partition] {
				remaining--
			}
		})
	}
	return out
}

func counts(m map[int32][]*kgo.Record) map[int32]int {
	out := map[int32]int{}
	for p, rs := range m {
		out[p] = len(rs)
	}
	return out
}

// waitEnd waits until partition p of topic has high watermark want.
func waitEnd(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, p int32, want int64) {
	t.Helper()
	var got int64 = -1
	for {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			if o, ok := ends.Lookup(topic, p); ok && o.Err == nil {
				got = o.Offset
				if got == want {
					return
				}
			}
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			t.Fatalf("topic %s partition %d: high watermark %d, want %d: %v", topic, p, got, want, ctx.Err())
		}
	}
}
