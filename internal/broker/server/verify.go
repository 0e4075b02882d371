package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/txn"
)

// verifyTxn asks the transaction coordinator of transactionalID whether topic-p is in the open
// transaction of producerID at epoch, before the producer's first transactional batch on it is
// written (KIP-890 part 1; see internal/broker/partition/verify.go), and returns its answer: 0
// when it is; PRODUCER_FENCED, INVALID_PRODUCER_ID_MAPPING, CONCURRENT_TRANSACTIONS,
// TRANSACTION_ABORTABLE (no such transaction open) from the coordinator; NOT_COORDINATOR,
// COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS or NETWORK_EXCEPTION when it cannot
// answer now. produceVerifyCode and txnOffsetVerifyCode map it for the producer.
func (b *Broker) verifyTxn(ctx context.Context, transactionalID string, producerID int64, epoch int16, topic string, p int32) int16 {
	img := b.Image()
	parts := []txn.Partition{{Topic: topic, Partition: p}}
	tp := txn.PartitionFor(transactionalID, b.cfg.Group.OffsetsPartitions)
	st := img.Topic(meta.TransactionStateTopic)
	switch {
	case st == nil || int(tp) >= len(st.Partitions):
		return kerr.CoordinatorNotAvailable.Code
	case st.Partitions[tp].Leader == b.cfg.ID:
		return group.AppendErrorCode(b.txns.Verify(ctx, transactionalID, producerID, epoch, parts))
	}
	return b.verifyRemote(ctx, img, st.Partitions[tp].Leader, transactionalID, producerID, epoch, topic, p)
}

// produceVerifyCode is the code a Produce of version v gets for its batch from verifyTxn's
// answer, as Kafka's AddPartitionsToTxnManager maps it: INVALID_PRODUCER_EPOCH for a fenced
// producer; TRANSACTION_ABORTABLE (v11 and later) or INVALID_TXN_STATE when no such transaction
// is open; NOT_ENOUGH_REPLICAS, which producers retry, when the coordinator cannot answer now.
func produceVerifyCode(code, v int16) int16 {
	switch code {
	case kerr.ProducerFenced.Code:
		return kerr.InvalidProducerEpoch.Code
	case kerr.TransactionAbortable.Code:
		if v >= 11 {
			return code
		}
		return kerr.InvalidTxnState.Code
	case kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code, kerr.CoordinatorLoadInProgress.Code,
		kerr.ConcurrentTransactions.Code, kerr.NetworkException.Code, kerr.RequestTimedOut.Code:
		return kerr.NotEnoughReplicas.Code
	}
	return code
}

// txnOffsetVerifyCode is the code a TxnOffsetCommit of version v gets from verifyTxn's answer,
// as Kafka's group coordinator passes it on: INVALID_PRODUCER_EPOCH for a fenced producer;
// TRANSACTION_ABORTABLE (v4 and later) or INVALID_TXN_STATE when no such transaction is open;
// COORDINATOR_NOT_AVAILABLE, which clients retry, when the transaction coordinator cannot
// answer now; CONCURRENT_TRANSACTIONS and INVALID_PRODUCER_ID_MAPPING as they are.
func txnOffsetVerifyCode(code, v int16) int16 {
	switch code {
	case kerr.ProducerFenced.Code:
		return kerr.InvalidProducerEpoch.Code
	case kerr.TransactionAbortable.Code:
		if v >= 4 {
			return code
		}
		return kerr.InvalidTxnState.Code
	case kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code, kerr.CoordinatorLoadInProgress.Code,
		kerr.NetworkException.Code, kerr.RequestTimedOut.Code:
		return kerr.CoordinatorNotAvailable.Code
	}
	return code
}

// verifyRemote asks broker coordinator with AddPartitionsToTxn v4 (VerifyOnly), as Kafka's
// brokers ask; a broker that cannot be reached is NETWORK_EXCEPTION.
func (b *Broker) verifyRemote(ctx context.Context, img *meta.Image, coordinator int32, transactionalID string, producerID int64, epoch int16, topic string, p int32) int16 {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(4)
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = transactionalID, producerID, epoch, true
	rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	rt.Topic, rt.Partitions = topic, []int32{p}
	tx.Topics = append(tx.Topics, rt)
	req.Transactions = append(req.Transactions, tx)
	kresp, err := b.brokerRequest(ctx, img, coordinator, "kafkaguard-verify-", req)
	if err != nil {
		b.lg.Debug("transaction verification: coordinator unreachable", "coordinator", coordinator, "err", err)
		return kerr.NetworkException.Code
	}
	resp, ok := kresp.(*kmsg.AddPartitionsToTxnResponse)
	if !ok {
		return kerr.NetworkException.Code
	}
	if resp.ErrorCode != 0 {
		return resp.ErrorCode
	}
	for _, t := range resp.Transactions {
		for _, rt := range t.Topics {
			for _, rp := range rt.Partitions {
				if t.TransactionalID == transactionalID && rt.Topic == topic && rp.Partition == p {
					return rp.ErrorCode
				}
			}
		}
	}
	return kerr.UnknownServerError.Code
}
