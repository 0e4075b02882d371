package kafkatest_test

import (
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
