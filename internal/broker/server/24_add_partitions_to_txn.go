package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleAddPartitionsToTxn adds partitions to a producer's transaction (versions 0-3). As
// Kafka's KafkaApis: if any partition does not exist, those get UNKNOWN_TOPIC_OR_PARTITION, the
// others OPERATION_NOT_ATTEMPTED, and nothing is added.
func (b *Broker) handleAddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	img := b.Image()
	unknown := map[string]map[int32]bool{}
	for _, t := range req.Topics {
		mt := img.Topic(t.Topic)
		for _, p := range t.Partitions {
			if mt == nil || p < 0 || int(p) >= len(mt.Partitions) {
				if unknown[t.Topic] == nil {
					unknown[t.Topic] = map[int32]bool{}
				}
				unknown[t.Topic][p] = true
			}
		}
	}
	if len(unknown) == 0 {
		return b.txns.AddPartitionsToTxn(ctx, req)
	}
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, kerr.OperationNotAttempted.Code
			if unknown[t.Topic][p] {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
