package consume

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/ordering"
)

// kgo puts the position after the last polled record into a
// TxnOffsetCommit; setTxnOffsets puts the committable checkpoint instead,
// leaves out what has nothing to commit, and refuses a partition released
// meanwhile.
func TestSetTxnOffsetsCommitsTheCheckpointsNotThePolledPosition(t *testing.T) {
	req := func() *kmsg.TxnOffsetCommitRequest {
		r := kmsg.NewPtrTxnOffsetCommitRequest()
		for _, topic := range []string{"a", "b"} {
			rt := kmsg.NewTxnOffsetCommitRequestTopic()
			rt.Topic = topic
			for p := range int32(2) {
				rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = p, 100, 3
				rt.Partitions = append(rt.Partitions, rp)
			}
			r.Topics = append(r.Topics, rt)
		}
		return r
	}
	tp := func(topic string, p int32) ordering.TopicPartition {
		return ordering.TopicPartition{Topic: topic, Partition: p}
	}
	cps := map[ordering.TopicPartition]ordering.Checkpoint{
		tp("a", 0): {Offset: 100},
		tp("a", 1): {Offset: 90, Metadata: "kg1:x"}, // a record below the position still failed
		tp("b", 0): {Offset: -1},                    // nothing committable
		tp("b", 1): {Offset: -1},
	}
	r := req()
	sent := map[ordering.TopicPartition]ordering.Checkpoint{}
	if err := setTxnOffsets(r, cps, sent); err != nil {
		t.Fatal(err)
	}
	if len(r.Topics) != 1 || r.Topics[0].Topic != "a" || len(r.Topics[0].Partitions) != 2 {
		t.Fatalf("request topics %+v, want a/0 and a/1 only", r.Topics)
	}
	for _, p := range r.Topics[0].Partitions {
		cp := cps[tp("a", p.Partition)]
		if p.Offset != cp.Offset || p.Metadata == nil || *p.Metadata != cp.Metadata {
			t.Errorf("a/%d: offset %d metadata %v, want %+v", p.Partition, p.Offset, p.Metadata, cp)
		}
		if want := map[bool]int32{true: 3, false: -1}[cp.Offset == 100]; p.LeaderEpoch != want {
			t.Errorf("a/%d: leader epoch %d, want %d (kept only for the polled position)", p.Partition, p.LeaderEpoch, want)
		}
	}
	if len(sent) != 2 || sent[tp("a", 1)] != cps[tp("a", 1)] {
		t.Errorf("sent %+v", sent)
	}

	delete(cps, tp("b", 1))
	if err := setTxnOffsets(req(), cps, map[ordering.TopicPartition]ordering.Checkpoint{}); !errors.Is(err, errPartitionGone) {
		t.Errorf("a released partition: %v, want errPartitionGone", err)
	}
}
