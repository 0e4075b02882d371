package server

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// handleTxnOffsetCommit commits offsets in a producer's transaction (versions 0-4). As Kafka's
// KafkaApis, partitions of topics that do not exist get UNKNOWN_TOPIC_OR_PARTITION and the
// others go to the group coordinator; when their commit would open the producer's transaction on
// the group's __consumer_offsets partition, the transaction coordinator verifies first that the
// partition is in it (verifyTxnOffsets), and a refusal is every such partition's answer.
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
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	if len(known.Topics) > 0 {
		if code := b.verifyTxnOffsets(ctx, req); code != 0 {
			for _, t := range known.Topics {
				rt := kmsg.NewTxnOffsetCommitResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p.Partition, code
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
		} else {
			resp = b.groups.TxnOffsetCommit(ctx, &known)
		}
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

// verifyTxnOffsets verifies req's producer with its transaction coordinator (verifyTxn) when it
// has no transaction open on the group's __consumer_offsets partition, which this broker leads
// as the group's coordinator, and returns the code every partition gets, or 0. The group
// coordinator then writes the offsets under the producer's guard. When this broker does not
// lead the partition the group coordinator answers NOT_COORDINATOR itself.
func (b *Broker) verifyTxnOffsets(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) int16 {
	p := group.PartitionFor(req.Group, b.cfg.Group.OffsetsPartitions)
	r := b.replica(meta.OffsetsTopic, p)
	if r == nil {
		return 0
	}
	_, need, err := r.VerificationGuard(req.ProducerID, req.ProducerEpoch)
	if err != nil || !need {
		return 0
	}
	return txnOffsetVerifyCode(b.verifyTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, meta.OffsetsTopic, p), req.Version)
}
