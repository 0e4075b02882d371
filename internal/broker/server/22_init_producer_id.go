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
// epoch is set. Transactional ids are refused: the bundled broker does not implement
// transactions.
func (b *Broker) handleInitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		b.lg.Warn("InitProducerID with a transactional id refused: transactions are not supported", "transactional_id", *req.TransactionalID)
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
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
