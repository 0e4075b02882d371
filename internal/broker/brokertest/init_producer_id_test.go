package brokertest_test

import (
	"context"
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

// TestTransactionsAreRefusedUntilImplemented pins how the bundled broker refuses transactions,
// which it does not implement yet: InitProducerID with a transactional id answers
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED without allocating a producer id, and each transaction
// API, which ApiVersions does not advertise, closes the connection that sent it. (The
// transactional produce is pinned in produce_validation_test.go.)
func TestTransactionsAreRefusedUntilImplemented(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	cl := dial(t, c)
	before, _ := initProducer(t, cl)
	req := kmsg.NewPtrInitProducerIDRequest()
	req.SetVersion(4)
	txn := "orders-copier"
	req.TransactionalID, req.TransactionTimeoutMillis = &txn, 60000
	resp := request[*kmsg.InitProducerIDResponse](t, cl, req)
	if resp.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code || resp.ProducerID != -1 {
		t.Fatalf("InitProducerID with a transactional id: code %d, producer id %d; want TRANSACTIONAL_ID_AUTHORIZATION_FAILED and -1", resp.ErrorCode, resp.ProducerID)
	}
	if after, _ := initProducer(t, cl); after != before+1 {
		t.Fatalf("producer ids %d then %d: the refused request allocated one", before, after)
	}
	for _, req := range []kmsg.Request{
		kmsg.NewPtrAddPartitionsToTxnRequest(), kmsg.NewPtrAddOffsetsToTxnRequest(), kmsg.NewPtrEndTxnRequest(),
		kmsg.NewPtrTxnOffsetCommitRequest(), kmsg.NewPtrWriteTxnMarkersRequest(),
	} {
		t.Run(kmsg.NameForKey(req.Key()), func(t *testing.T) {
			cl := dial(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if resp, err := cl.Request(ctx, req); err == nil {
				t.Fatalf("answered %+v; want the connection closed", resp)
			} else if ctx.Err() != nil {
				t.Fatalf("neither answered nor closed: %v", err)
			}
		})
	}
}
