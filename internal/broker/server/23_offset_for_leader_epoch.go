package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleOffsetForLeaderEpoch answers, as leader, the end offset of a leader epoch: followers
// truncate to it after a leader change, consumers use it to detect divergence (KIP-320).
func (b *Broker) handleOffsetForLeaderEpoch(_ context.Context, req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	img := b.Image()
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			if r := b.replica(rt.Topic, rp.Partition); r == nil {
				sp.ErrorCode = b.missingPartitionCode(img, rt.Topic, rp.Partition)
			} else {
				epoch, end, err := r.EpochEndOffset(rp.CurrentLeaderEpoch, rp.LeaderEpoch)
				sp.ErrorCode = errorCode(err)
				sp.LeaderEpoch, sp.EndOffset = epoch, end
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
