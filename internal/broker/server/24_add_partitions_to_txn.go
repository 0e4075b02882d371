package server

import (
	"context"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/txn"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleAddPartitionsToTxn adds partitions to a producer's transaction (versions 0-3; version 4,
// between brokers, see addPartitionsBatch). As
// Kafka's KafkaApis: if any partition does not exist, those get UNKNOWN_TOPIC_OR_PARTITION, the
// others OPERATION_NOT_ATTEMPTED, and nothing is added.
func (b *Broker) handleAddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	if req.Version >= 4 {
		return b.addPartitionsBatch(ctx, req)
	}
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

// addPartitionsBatch serves AddPartitionsToTxn v4, the batched form brokers send: each
// transaction's partitions are verified (VerifyOnly: a partition leader asking, before it writes
// a producer's first transactional batch, whether the partition is in the producer's open
// transaction; KIP-890 part 1) or added as in version 3.
func (b *Broker) addPartitionsBatch(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, tx := range req.Transactions {
		var code func(topic string, p int32) int16
		if tx.VerifyOnly {
			var parts []txn.Partition
			for _, t := range tx.Topics {
				for _, p := range t.Partitions {
					parts = append(parts, txn.Partition{Topic: t.Topic, Partition: p})
				}
			}
			c := group.AppendErrorCode(b.txns.Verify(ctx, tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, parts))
			code = func(string, int32) int16 { return c }
		} else {
			v3 := kmsg.NewPtrAddPartitionsToTxnRequest()
			v3.SetVersion(3)
			v3.TransactionalID, v3.ProducerID, v3.ProducerEpoch = tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch
			for _, t := range tx.Topics {
				rt := kmsg.NewAddPartitionsToTxnRequestTopic()
				rt.Topic, rt.Partitions = t.Topic, t.Partitions
				v3.Topics = append(v3.Topics, rt)
			}
			codes := map[txn.Partition]int16{}
			for _, t := range b.handleAddPartitionsToTxn(ctx, v3).(*kmsg.AddPartitionsToTxnResponse).Topics {
				for _, p := range t.Partitions {
					codes[txn.Partition{Topic: t.Topic, Partition: p.Partition}] = p.ErrorCode
				}
			}
			code = func(topic string, p int32) int16 { return codes[txn.Partition{Topic: topic, Partition: p}] }
		}
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		for _, t := range tx.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition, rp.ErrorCode = p, code(t.Topic, p)
				rt.Partitions = append(rt.Partitions, rp)
			}
			rtx.Topics = append(rtx.Topics, rt)
		}
		resp.Transactions = append(resp.Transactions, rtx)
	}
	return resp
}
