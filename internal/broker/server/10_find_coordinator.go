package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// handleFindCoordinator points a group at the leader of its __consumer_offsets partition, and a
// transactional id at the leader of its __transaction_state partition (creating that topic on
// first use, as Kafka does: COORDINATOR_NOT_AVAILABLE until it exists). Share groups do not
// exist here: COORDINATOR_NOT_AVAILABLE.
func (b *Broker) handleFindCoordinator(ctx context.Context, req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	img := b.Image()
	find := func(key string) kmsg.FindCoordinatorResponseCoordinator {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Port = key, -1, -1
		topic := meta.OffsetsTopic
		switch req.CoordinatorType {
		case 0:
		case 1:
			topic = meta.TransactionStateTopic
		default:
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			c.ErrorMessage = kmsg.StringPtr("kafkaguard broker: only group and transaction coordinators exist (no share groups)")
			return c
		}
		t := img.Topic(topic)
		if t == nil {
			if topic == meta.TransactionStateTopic {
				b.ensureTxnTopic(ctx, img)
			}
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return c
		}
		p := t.Partitions[group.PartitionFor(key, int32(len(t.Partitions)))] // txn.PartitionFor is the same hash
		bk, ok := img.Broker(p.Leader)
		if p.Leader == meta.NoLeader || !ok || !bk.Alive {
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return c
		}
		c.NodeID, c.Host, c.Port = bk.ID, bk.Host, bk.Port
		return c
	}
	if req.Version >= 4 {
		for _, k := range req.CoordinatorKeys {
			resp.Coordinators = append(resp.Coordinators, find(k))
		}
		return resp
	}
	c := find(req.CoordinatorKey)
	resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
	return resp
}
