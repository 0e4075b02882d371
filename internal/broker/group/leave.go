package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup handles a LeaveGroup request: each member leaving (one before
// version 3, a batch since) is removed and the group rebalances. A static
// member may be removed by its group.instance.id alone, as admin tools do.
func (c *Coordinator) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	if req == nil {
		resp := kmsg.NewPtrLeaveGroupResponse()
		resp.ErrorCode = codeInvalidRequest
		return resp
	}
	resp := &kmsg.LeaveGroupResponse{Version: req.Version}
	resp.Default()
	top := func(code int16) *kmsg.LeaveGroupResponse {
		resp.ErrorCode = code
		return resp
	}
	if c.isClosed() {
		return top(codeCoordinatorNotAvailable)
	}
	if req.Group == "" {
		return top(codeInvalidGroupID)
	}
	sh, code := c.shardFor(req.Group)
	if code != 0 {
		return top(code)
	}
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}

	sh.mu.Lock()
	if sh.unloaded {
		code := sh.code
		sh.mu.Unlock()
		return top(code)
	}
	g := sh.groups[req.Group]
	switch {
	case g == nil:
		for _, lm := range leaving {
			resp.Members = append(resp.Members, leaveMember(lm, codeUnknownMemberID))
		}
	case g.state == stateDead:
		resp.ErrorCode = codeCoordinatorNotAvailable
	default:
		resp.Members = sh.leave(g, leaving)
	}
	sh.mu.Unlock()

	if req.Version < 3 {
		if resp.ErrorCode == 0 && len(resp.Members) > 0 {
			resp.ErrorCode = resp.Members[0].ErrorCode
		}
		resp.Members = nil
	}
	return resp
}

func leaveMember(lm kmsg.LeaveGroupRequestMember, code int16) kmsg.LeaveGroupResponseMember {
	rm := kmsg.NewLeaveGroupResponseMember()
	rm.MemberID = lm.MemberID
	rm.InstanceID = lm.InstanceID
	rm.ErrorCode = code
	return rm
}

// leave removes the leaving members (Kafka's classicGroupLeaveToClassicGroup)
// and rebalances if any left.
func (sh *shard) leave(g *group, leaving []kmsg.LeaveGroupRequestMember) []kmsg.LeaveGroupResponseMember {
	out := make([]kmsg.LeaveGroupResponseMember, 0, len(leaving))
	left := 0
	for _, lm := range leaving {
		var code int16
		switch {
		case lm.MemberID == "":
			id, ok := "", false
			if lm.InstanceID != nil {
				id, ok = g.static[*lm.InstanceID]
			}
			if m := g.members[id]; ok && m != nil {
				sh.dropMember(g, m, "", codeUnknownMemberID)
				left++
			} else {
				code = codeUnknownMemberID
			}
		case g.pending[lm.MemberID] != nil:
			g.removePending(lm.MemberID)
			left++
		default:
			if code = g.validateMember(lm.MemberID, lm.InstanceID); code == 0 {
				sh.dropMember(g, g.members[lm.MemberID], "", codeUnknownMemberID)
				left++
			}
		}
		if code == 0 {
			sh.c.log.Info("group: member left", "group", g.id, "member", lm.MemberID)
		}
		out = append(out, leaveMember(lm, code))
	}
	if left > 0 {
		switch g.state {
		case stateStable, stateCompletingRebalance:
			sh.maybePrepareRebalanceOrCompleteJoin(g)
		case statePreparingRebalance:
			sh.maybeCompleteJoinPhase(g)
		}
	}
	return out
}
