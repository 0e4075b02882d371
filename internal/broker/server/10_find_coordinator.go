package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// handleFindCoordinator points a group at the leader of its __consumer_offsets partition.
// Transaction coordinators do not exist here (no transactions): COORDINATOR_NOT_AVAILABLE.
func (b *Broker) handleFindCoordinator(_ context.Context, req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	img := b.Image()
	find := func(key string) kmsg.FindCoordinatorResponseCoordinator {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Port = key, -1, -1
		if req.CoordinatorType != 0 {
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			c.ErrorMessage = kmsg.StringPtr("kafkaguard broker: only group coordinators exist (no transactions or share groups)")
			return c
		}
		t := img.Topic(meta.OffsetsTopic)
		if t == nil {
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return c
		}
		p := t.Partitions[group.PartitionFor(key, int32(len(t.Partitions)))]
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
