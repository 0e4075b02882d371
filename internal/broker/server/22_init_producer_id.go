package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleInitProducerID gives an idempotent producer a new cluster-unique id at epoch 0. As
// Kafka's TransactionCoordinator.handleInitProducerId, a request without a transactional id
// always gets a freshly generated id, whatever id and epoch it passes (the KIP-360 epoch bump is
// for transactional ids only), and KafkaApis answers INVALID_REQUEST when only one of id and
// epoch is set. A transactional id goes to the transaction coordinator.
func (b *Broker) handleInitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) kmsg.Response {
	if req.TransactionalID != nil {
		return b.txns.InitProducerID(ctx, req)
	}
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if (req.ProducerID == -1) != (req.ProducerEpoch == -1) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	id, err := b.cfg.Controller.AllocateProducerID(ctx)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
