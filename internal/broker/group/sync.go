package group

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func syncError(version int16, code int16) *kmsg.SyncGroupResponse {
	resp := &kmsg.SyncGroupResponse{Version: version}
	resp.Default()
	resp.ErrorCode = code
	return resp
}

// SyncGroup handles a SyncGroup request. In CompletingRebalance the member
// is parked until the leader's assignment is persisted and handed out, the
// rebalance restarts, ctx ends (answered REBALANCE_IN_PROGRESS) or the
// partition is unloaded. The leader's request carries the assignment; a
// member the leader left out gets an empty one.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	if req == nil {
		return syncError(0, codeInvalidRequest)
	}
	v := req.Version
	if c.isClosed() {
		return syncError(v, codeCoordinatorNotAvailable)
	}
	if req.Group == "" {
		return syncError(v, codeInvalidGroupID)
	}
	sh, code := c.shardFor(req.Group)
	if code != 0 {
		return syncError(v, code)
	}
	var instanceID, protocolType, protocol *string
	if v >= 3 {
		instanceID = req.InstanceID
	}
	if v >= 5 {
		protocolType, protocol = req.ProtocolType, req.Protocol
	}

	sh.mu.Lock()
	if sh.unloaded {
		code := sh.code
		sh.mu.Unlock()
		return syncError(v, code)
	}
	g := sh.groups[req.Group]
	var resp *kmsg.SyncGroupResponse
	var w *syncWaiter
	switch {
	case g == nil || g.state == stateEmpty:
		resp = syncError(v, codeUnknownMemberID)
	case g.state == stateDead:
		resp = syncError(v, codeCoordinatorNotAvailable)
	default:
		resp, w = sh.sync(g, req, instanceID, protocolType, protocol)
	}
	sh.mu.Unlock()
	if w == nil {
		return resp
	}
	select {
	case r := <-w.ch:
		return r
	case <-ctx.Done():
		return syncError(v, codeRebalanceInProgress)
	}
}

func inconsistent(requested *string, current string) bool {
	return requested != nil && current != "" && *requested != current
}

func (sh *shard) sync(g *group, req *kmsg.SyncGroupRequest, instanceID, protocolType, protocol *string) (*kmsg.SyncGroupResponse, *syncWaiter) {
	v := req.Version
	if code := g.validateMember(req.MemberID, instanceID); code != 0 {
		return syncError(v, code), nil
	}
	if req.Generation != g.generation {
		return syncError(v, codeIllegalGeneration), nil
	}
	if inconsistent(protocolType, g.protocolType) || inconsistent(protocol, g.protocol) {
		return syncError(v, codeInconsistentGroupProtocol), nil
	}
	m := g.members[req.MemberID]
	switch g.state {
	case statePreparingRebalance:
		return syncError(v, codeRebalanceInProgress), nil
	case stateCompletingRebalance:
		sh.answerSyncError(m, codeRebalanceInProgress) // an older retry
		w := newWaiter[kmsg.SyncGroupResponse](v)
		m.sync = w
		sh.removePendingSync(g, m.id)
		if m.id == g.leader {
			assignment := make(map[string][]byte, len(g.members))
			for _, a := range req.GroupAssignment {
				if g.members[a.MemberID] != nil {
					assignment[a.MemberID] = slices.Clone(a.MemberAssignment)
				}
			}
			for id := range g.members {
				if _, ok := assignment[id]; !ok {
					assignment[id] = []byte{}
				}
			}
			sh.persistAssignment(g, assignment)
		}
		return nil, w
	case stateStable:
		sh.removePendingSync(g, m.id)
		resp := syncError(v, 0)
		resp.ProtocolType = strPtrOrNil(g.protocolType)
		resp.Protocol = strPtrOrNil(g.protocol)
		resp.MemberAssignment = nonNil(m.assignment)
		return resp, nil
	}
	return syncError(v, codeUnknownMemberID), nil
}

// persistAssignment writes the leader's assignment; once durable, the group
// becomes Stable and every parked SyncGroup gets its share. If the write
// fails, they get the error and the group rebalances.
func (sh *shard) persistAssignment(g *group, assignment map[string][]byte) {
	gen := g.generation
	live := func() bool {
		return sh.current(g) && g.state == stateCompletingRebalance && g.generation == gen
	}
	sh.enqueue(&writeOp{prepare: func() ([]Record, func(error)) {
		if !live() {
			return nil, nil
		}
		return []Record{groupMetadataRecord(g, assignment)}, func(err error) {
			if !live() {
				return
			}
			if err != nil {
				sh.resetAndPropagateAssignmentWithError(g, sh.errorCode(err))
				sh.maybePrepareRebalanceOrCompleteJoin(g)
				return
			}
			sh.setAndPropagateAssignment(g, assignment)
			g.transition(stateStable, sh.now())
			sh.c.log.Info("group: stable", "group", g.id, "generation", g.generation,
				"members", len(g.members), "protocol", g.protocol)
		}
	}})
}
