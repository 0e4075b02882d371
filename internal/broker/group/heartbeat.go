package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func heartbeatResponse(version int16, code int16) *kmsg.HeartbeatResponse {
	resp := &kmsg.HeartbeatResponse{Version: version}
	resp.Default()
	resp.ErrorCode = code
	return resp
}

// Heartbeat handles a Heartbeat request: it keeps the member's session
// alive, and answers REBALANCE_IN_PROGRESS while the group prepares a
// rebalance so that the member rejoins.
func (c *Coordinator) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	if req == nil {
		return heartbeatResponse(0, codeInvalidRequest)
	}
	v := req.Version
	if c.isClosed() {
		return heartbeatResponse(v, codeCoordinatorNotAvailable)
	}
	if req.Group == "" {
		return heartbeatResponse(v, codeInvalidGroupID)
	}
	sh, code := c.shardFor(req.Group)
	if code != 0 {
		return heartbeatResponse(v, code)
	}
	var instanceID *string
	if v >= 3 {
		instanceID = req.InstanceID
	}

	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.unloaded {
		return heartbeatResponse(v, sh.code)
	}
	g := sh.groups[req.Group]
	if g == nil {
		return heartbeatResponse(v, codeUnknownMemberID)
	}
	if g.state == stateDead {
		return heartbeatResponse(v, codeCoordinatorNotAvailable)
	}
	if code := g.validateMember(req.MemberID, instanceID); code != 0 {
		return heartbeatResponse(v, code)
	}
	if req.Generation != g.generation {
		return heartbeatResponse(v, codeIllegalGeneration)
	}
	m := g.members[req.MemberID]
	switch g.state {
	case statePreparingRebalance:
		sh.scheduleHeartbeat(g, m, msDuration(m.sessionTimeoutMs))
		return heartbeatResponse(v, codeRebalanceInProgress)
	case stateCompletingRebalance, stateStable:
		// A member may heartbeat between its JoinGroup and SyncGroup.
		sh.scheduleHeartbeat(g, m, msDuration(m.sessionTimeoutMs))
		return heartbeatResponse(v, 0)
	}
	return heartbeatResponse(v, codeUnknownMemberID)
}
