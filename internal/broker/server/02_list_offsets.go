package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleListOffsets answers earliest (-2), latest (-1: the high watermark, or the last stable
// offset for read_committed), max timestamp (-3) and by-timestamp lookups from partition leaders.
func (b *Broker) handleListOffsets(_ context.Context, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	img := b.Image()
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Offset, sp.Timestamp = -1, -1
			r := b.replica(rt.Topic, rp.Partition)
			if r == nil {
				sp.ErrorCode = b.missingPartitionCode(img, rt.Topic, rp.Partition)
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			epoch := int32(-1)
			if req.Version >= 4 {
				epoch = rp.CurrentLeaderEpoch
			}
			off, ts, err := r.OffsetLookup(epoch, rp.Timestamp, req.Version >= 2 && req.IsolationLevel == 1)
			sp.ErrorCode = errorCode(err)
			if err == nil {
				sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, ts, r.LeaderEpoch()
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
