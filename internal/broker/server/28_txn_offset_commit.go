package server

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleTxnOffsetCommit commits offsets in a producer's transaction (versions 0-4). As Kafka's
// KafkaApis, partitions of topics that do not exist get UNKNOWN_TOPIC_OR_PARTITION and the
// others go to the group coordinator.
func (b *Broker) handleTxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) kmsg.Response {
	img := b.Image()
	known := *req
	known.Topics = nil
	unknown := map[string]map[int32]bool{}
	for _, t := range req.Topics {
		mt := img.Topic(t.Topic)
		kt := t
		kt.Partitions = nil
		for _, p := range t.Partitions {
			if mt == nil || p.Partition < 0 || int(p.Partition) >= len(mt.Partitions) {
				if unknown[t.Topic] == nil {
					unknown[t.Topic] = map[int32]bool{}
				}
				unknown[t.Topic][p.Partition] = true
				continue
			}
			kt.Partitions = append(kt.Partitions, p)
		}
		if len(kt.Partitions) > 0 {
			known.Topics = append(known.Topics, kt)
		}
	}
	if len(unknown) == 0 {
		return b.groups.TxnOffsetCommit(ctx, req)
	}
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	if len(known.Topics) > 0 {
		resp = b.groups.TxnOffsetCommit(ctx, &known)
	}
	for t, ps := range unknown {
		i := slices.IndexFunc(resp.Topics, func(rt kmsg.TxnOffsetCommitResponseTopic) bool { return rt.Topic == t })
		if i < 0 {
			i = len(resp.Topics)
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t
			resp.Topics = append(resp.Topics, rt)
		}
		for p := range ps {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, kerr.UnknownTopicOrPartition.Code
			resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
		}
	}
	return resp
}
