package brokertest_test

import (
	"time"

	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// As Kafka's TransactionCoordinator.handleInitProducerId: without a transactional id every
// InitProducerID gets a freshly generated producer id at epoch 0, whatever id and epoch the
// caller passes (KIP-360's epoch bump applies to transactional ids only); a request naming only
// one of id and epoch is INVALID_REQUEST, as KafkaApis answers it.
func TestInitProducerIDWithoutTransactionalIDAllocatesANewIDAtEpochZero(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	cl := dial(t, c)
	pid, epoch := initProducer(t, cl)
	if epoch != 0 {
		t.Fatalf("first InitProducerID: epoch %d, want 0", epoch)
	}
	seen := map[int64]bool{pid: true}
	for _, v := range []int16{3, 4} {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(v)
		req.ProducerID, req.ProducerEpoch = pid, epoch
		resp := request[*kmsg.InitProducerIDResponse](t, cl, req)
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d with id %d epoch %d: %v", v, pid, epoch, kerr.ErrorForCode(resp.ErrorCode))
		}
		if seen[resp.ProducerID] || resp.ProducerEpoch != 0 {
			t.Fatalf("v%d with id %d epoch %d: got id %d epoch %d, want a new id at epoch 0", v, pid, epoch, resp.ProducerID, resp.ProducerEpoch)
		}
		seen[resp.ProducerID] = true
		pid, epoch = resp.ProducerID, resp.ProducerEpoch
	}
	for _, half := range [][2]int64{{pid, -1}, {-1, 0}} {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(4)
		req.ProducerID, req.ProducerEpoch = half[0], int16(half[1])
		resp := request[*kmsg.InitProducerIDResponse](t, cl, req)
		if resp.ErrorCode != kerr.InvalidRequest.Code {
			t.Fatalf("id %d epoch %d: code %d, want INVALID_REQUEST (%d)", half[0], half[1], resp.ErrorCode, kerr.InvalidRequest.Code)
		}
	}
}

// TestInitProducerIDWithATransactionalIDBumpsItsEpoch is what TestTransactionsAreRefused…
// became once the transaction coordinator existed: FindCoordinator for a transactional id
// creates __transaction_state (COORDINATOR_NOT_AVAILABLE until it exists), then InitProducerID
// gives the id one producer id whose epoch each new InitProducerID bumps (fencing the previous
// holder), as Kafka's TransactionCoordinator does. AddOffsetsToTxn and TxnOffsetCommit, served
// since, answer malformed requests with Kafka's codes.
func TestInitProducerIDWithATransactionalIDBumpsItsEpoch(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	cl := dial(t, c)
	txn := "orders-copier"
	deadline := time.Now().Add(20 * time.Second)
	for {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.SetVersion(4)
		req.CoordinatorType, req.CoordinatorKeys = 1, []string{txn}
		resp := request[*kmsg.FindCoordinatorResponse](t, cl, req)
		if code := resp.Coordinators[0].ErrorCode; code == 0 {
			break
		} else if code != kerr.CoordinatorNotAvailable.Code || time.Now().After(deadline) {
			t.Fatalf("FindCoordinator(transaction): %v", kerr.ErrorForCode(code))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var first *kmsg.InitProducerIDResponse
	for epoch := int16(0); epoch < 3; epoch++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(4)
		req.TransactionalID, req.TransactionTimeoutMillis = &txn, 60000
		resp := request[*kmsg.InitProducerIDResponse](t, cl, req)
		for resp.ErrorCode == kerr.NotCoordinator.Code || resp.ErrorCode == kerr.CoordinatorLoadInProgress.Code {
			if time.Now().After(deadline) {
				t.Fatalf("InitProducerID: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			time.Sleep(50 * time.Millisecond)
			resp = request[*kmsg.InitProducerIDResponse](t, cl, req)
		}
		if first == nil {
			first = resp
		}
		if resp.ErrorCode != 0 || resp.ProducerID != first.ProducerID || resp.ProducerEpoch != epoch {
			t.Fatalf("InitProducerID #%d: code %d, producer %d epoch %d; want producer %d epoch %d",
				epoch+1, resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch, first.ProducerID, epoch)
		}
	}
	bad := kmsg.NewPtrInitProducerIDRequest()
	bad.SetVersion(4)
	bad.TransactionalID, bad.TransactionTimeoutMillis = &txn, 900001
	if resp := request[*kmsg.InitProducerIDResponse](t, cl, bad); resp.ErrorCode != kerr.InvalidTransactionTimeout.Code {
		t.Fatalf("InitProducerID above transaction.max.timeout.ms: code %d, want INVALID_TRANSACTION_TIMEOUT", resp.ErrorCode)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txn, first.ProducerID+1, 2, "g"
	if resp := request[*kmsg.AddOffsetsToTxnResponse](t, cl, add); resp.ErrorCode != kerr.InvalidProducerIDMapping.Code {
		t.Fatalf("AddOffsetsToTxn with another producer id: code %d, want INVALID_PRODUCER_ID_MAPPING", resp.ErrorCode)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.ProducerID, commit.ProducerEpoch = txn, first.ProducerID, 2
	commit.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Offset: 1}}}}
	resp := request[*kmsg.TxnOffsetCommitResponse](t, cl, commit)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("TxnOffsetCommit of a topic that does not exist: %+v, want UNKNOWN_TOPIC_OR_PARTITION", resp)
	}
}
