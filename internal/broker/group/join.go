package group

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// codeInvalidRequest answers a nil request.
const codeInvalidRequest int16 = 42

// joinRequest is a JoinGroup request reduced to what its version defines,
// with the protocol metadata copied out of the request's buffers.
type joinRequest struct {
	version            int16
	group              string
	memberID           string
	instanceID         *string
	protocolType       string
	protocols          []kmsg.JoinGroupRequestProtocol
	sessionTimeoutMs   int32
	rebalanceTimeoutMs int32
	client             clientInfo
}

func newJoinRequest(ctx context.Context, req *kmsg.JoinGroupRequest) joinRequest {
	j := joinRequest{
		version:            req.Version,
		group:              req.Group,
		memberID:           req.MemberID,
		protocolType:       req.ProtocolType,
		sessionTimeoutMs:   req.SessionTimeoutMillis,
		rebalanceTimeoutMs: req.RebalanceTimeoutMillis,
		client:             clientFrom(ctx),
	}
	// Version 0 has no rebalance timeout: Kafka uses the session timeout.
	// A negative one is garbage; treat it the same way.
	if req.Version < 1 || j.rebalanceTimeoutMs < 0 {
		j.rebalanceTimeoutMs = j.sessionTimeoutMs
	}
	if req.Version >= 5 && req.InstanceID != nil {
		j.instanceID = kmsg.StringPtr(*req.InstanceID)
	}
	j.protocols = make([]kmsg.JoinGroupRequestProtocol, 0, len(req.Protocols))
	for _, p := range req.Protocols {
		j.protocols = append(j.protocols, kmsg.JoinGroupRequestProtocol{
			Name:     p.Name,
			Metadata: slices.Clone(p.Metadata),
		})
	}
	return j
}

func joinError(version int16, memberID string, code int16) *kmsg.JoinGroupResponse {
	resp := &kmsg.JoinGroupResponse{Version: version}
	resp.Default()
	resp.MemberID = memberID
	resp.ErrorCode = code
	return resp
}

// JoinGroup handles a JoinGroup request. A member that gets into the join
// phase is parked until the phase ends (every member rejoined, or the
// rebalance timeout dropped the rest), until ctx ends (the answer is then
// REBALANCE_IN_PROGRESS, so the client rejoins), or until the partition is
// unloaded. A first join with an empty member id at version 4 or later is
// answered MEMBER_ID_REQUIRED with the id to join with, as Kafka does.
func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	if req == nil {
		return joinError(0, "", codeInvalidRequest)
	}
	j := newJoinRequest(ctx, req)
	if c.isClosed() {
		return joinError(j.version, j.memberID, codeCoordinatorNotAvailable)
	}
	if j.group == "" {
		return joinError(j.version, j.memberID, codeInvalidGroupID)
	}
	if st := msDuration(j.sessionTimeoutMs); st < c.cfg.MinSessionTimeout || st > c.cfg.MaxSessionTimeout {
		return joinError(j.version, j.memberID, codeInvalidSessionTimeout)
	}
	sh, code := c.shardFor(j.group)
	if code != 0 {
		return joinError(j.version, j.memberID, code)
	}

	sh.mu.Lock()
	if sh.unloaded {
		code := sh.code
		sh.mu.Unlock()
		return joinError(j.version, j.memberID, code)
	}
	resp, w := sh.join(j)
	sh.mu.Unlock()
	if w == nil {
		return resp
	}
	select {
	case r := <-w.ch:
		return r
	case <-ctx.Done():
		return joinError(j.version, j.memberID, codeRebalanceInProgress)
	}
}

func (c *Coordinator) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// join runs a JoinGroup with sh.mu held: it returns either a response or the
// waiter that will get one.
func (sh *shard) join(j joinRequest) (*kmsg.JoinGroupResponse, *joinWaiter) {
	g := sh.groups[j.group]
	if g == nil {
		if j.memberID != "" {
			return joinError(j.version, j.memberID, codeUnknownMemberID), nil
		}
		g = sh.newGroup(j.group)
	}
	defer sh.dropIfUnused(g)
	if !sh.acceptJoiningMember(g, j.memberID) {
		if m := g.members[j.memberID]; m != nil {
			sh.dropMember(g, m, "", codeGroupMaxSizeReached)
		} else {
			g.remove(j.memberID)
		}
		return joinError(j.version, "", codeGroupMaxSizeReached), nil
	}
	if j.memberID == "" {
		return sh.joinNewMember(g, j)
	}
	return sh.joinExistingMember(g, j)
}

// acceptJoiningMember enforces Config.MaxGroupSize as Kafka does.
func (sh *shard) acceptJoiningMember(g *group, memberID string) bool {
	limit := sh.c.cfg.MaxGroupSize
	if limit <= 0 {
		return true
	}
	m := g.members[memberID]
	switch g.state {
	case statePreparingRebalance:
		return (m != nil && m.join != nil) || g.numAwaitingJoin() < limit
	case stateCompletingRebalance, stateStable:
		return m != nil || len(g.members) < limit
	}
	return true
}

func (sh *shard) joinNewMember(g *group, j joinRequest) (*kmsg.JoinGroupResponse, *joinWaiter) {
	if g.state == stateDead {
		return joinError(j.version, "", codeCoordinatorNotAvailable), nil
	}
	if !g.supportsProtocols(j.protocolType, j.protocols) {
		return joinError(j.version, "", codeInconsistentGroupProtocol), nil
	}
	newID := newMemberID(j.client.id, j.instanceID)
	if j.instanceID != nil {
		if oldID, ok := g.static[*j.instanceID]; ok {
			return sh.updateStaticMember(g, j, oldID, newID)
		}
		return nil, sh.addMemberAndRebalance(g, j, newID)
	}
	if j.version >= 4 {
		sh.addPending(g, newID, msDuration(j.sessionTimeoutMs))
		return joinError(j.version, newID, codeMemberIDRequired), nil
	}
	return nil, sh.addMemberAndRebalance(g, j, newID)
}

func (sh *shard) joinExistingMember(g *group, j joinRequest) (*kmsg.JoinGroupResponse, *joinWaiter) {
	if g.state == stateDead {
		return joinError(j.version, j.memberID, codeCoordinatorNotAvailable), nil
	}
	if !g.supportsProtocols(j.protocolType, j.protocols) {
		return joinError(j.version, j.memberID, codeInconsistentGroupProtocol), nil
	}
	if g.pending[j.memberID] != nil {
		if j.instanceID != nil {
			if _, taken := g.static[*j.instanceID]; taken {
				return joinError(j.version, j.memberID, codeFencedInstanceID), nil
			}
		}
		return nil, sh.addMemberAndRebalance(g, j, j.memberID)
	}
	if code := g.validateMember(j.memberID, j.instanceID); code != 0 {
		return joinError(j.version, j.memberID, code), nil
	}
	m := g.members[j.memberID]
	switch g.state {
	case statePreparingRebalance:
		return nil, sh.updateMemberAndRebalance(g, m, j)
	case stateCompletingRebalance:
		if m.matches(j.protocols) {
			// The member probably lost the JoinGroup response: answer
			// again with the current generation.
			resp := g.joinResponse(j.version, m.id)
			if m.id == g.leader {
				resp.Members = g.joinMembers()
			}
			return resp, nil
		}
		return nil, sh.updateMemberAndRebalance(g, m, j)
	case stateStable:
		if m.id == g.leader || !m.matches(j.protocols) {
			// A rejoining leader forces a rebalance: that is how it
			// reacts to changes its metadata does not show.
			return nil, sh.updateMemberAndRebalance(g, m, j)
		}
		return g.joinResponse(j.version, m.id), nil
	}
	return joinError(j.version, j.memberID, codeUnknownMemberID), nil
}

// addMemberAndRebalance adds a member that joins with an id and parks it.
func (sh *shard) addMemberAndRebalance(g *group, j joinRequest, id string) *joinWaiter {
	m := &member{
		id:                 id,
		instanceID:         j.instanceID,
		clientID:           j.client.id,
		clientHost:         j.client.host,
		protocolType:       j.protocolType,
		protocols:          j.protocols,
		sessionTimeoutMs:   j.sessionTimeoutMs,
		rebalanceTimeoutMs: j.rebalanceTimeoutMs,
		assignment:         []byte{},
		isNew:              true,
	}
	if g.state == statePreparingRebalance && g.prevState == stateEmpty {
		g.newMemberAdded = true
	}
	g.add(m)
	w := newWaiter[kmsg.JoinGroupResponse](j.version)
	m.join = w
	// A new member cannot heartbeat before it has its id; bound its first
	// JoinGroup instead, as Kafka does.
	sh.scheduleHeartbeat(g, m, sh.c.cfg.NewMemberJoinTimeout)
	sh.c.log.Debug("group: member joins", "group", g.id, "member", id, "state", g.state.String())
	sh.maybePrepareRebalanceOrCompleteJoin(g)
	return w
}

// updateMemberAndRebalance takes a known member's new JoinGroup and parks it.
func (sh *shard) updateMemberAndRebalance(g *group, m *member, j joinRequest) *joinWaiter {
	g.setProtocols(m, j.protocols)
	m.sessionTimeoutMs = j.sessionTimeoutMs
	m.rebalanceTimeoutMs = j.rebalanceTimeoutMs
	// An older parked JoinGroup of this member (a retry on a new
	// connection) will never be read as the answer to this one.
	sh.answerJoinError(m, m.id, codeRebalanceInProgress)
	w := newWaiter[kmsg.JoinGroupResponse](j.version)
	m.join = w
	sh.maybePrepareRebalanceOrCompleteJoin(g)
	return w
}

// replaceStaticMember moves the member of a group instance id from fromID to
// toID, keeping its place, assignment and client details.
func (g *group) replaceStaticMember(instanceID, fromID, toID string) *member {
	old := g.members[fromID]
	delete(g.members, fromID)
	old.stopHeartbeat()
	nm := &member{
		id:                 toID,
		instanceID:         old.instanceID,
		clientID:           old.clientID,
		clientHost:         old.clientHost,
		protocolType:       old.protocolType,
		protocols:          old.protocols,
		sessionTimeoutMs:   old.sessionTimeoutMs,
		rebalanceTimeoutMs: old.rebalanceTimeoutMs,
		assignment:         old.assignment,
		seq:                old.seq,
	}
	g.members[toID] = nm
	if g.leader == fromID {
		g.leader = toID
	}
	g.static[instanceID] = toID
	if g.pendingSync[fromID] {
		delete(g.pendingSync, fromID)
		g.pendingSync[toID] = true
	}
	return nm
}

// updateStaticMember handles a known static member that joins with an empty
// member id, i.e. restarted (Kafka's
// updateStaticMemberThenRebalanceOrCompleteJoin): the old member id is fenced
// and the instance takes a new one. In a Stable group whose protocol would not
// change, it keeps its assignment without a rebalance once the new id is
// persisted.
func (sh *shard) updateStaticMember(g *group, j joinRequest, oldID, newID string) (*kmsg.JoinGroupResponse, *joinWaiter) {
	old := g.members[oldID]
	if old == nil {
		delete(g.static, *j.instanceID)
		return nil, sh.addMemberAndRebalance(g, j, newID)
	}
	instanceID := *j.instanceID
	currentLeader := g.leader
	sh.answerJoinError(old, oldID, codeFencedInstanceID)
	sh.answerSyncError(old, codeFencedInstanceID)
	nm := g.replaceStaticMember(instanceID, oldID, newID)
	sh.scheduleHeartbeat(g, nm, msDuration(nm.sessionTimeoutMs))
	oldProtocols, oldSession, oldRebalance := nm.protocols, nm.sessionTimeoutMs, nm.rebalanceTimeoutMs
	g.setProtocols(nm, j.protocols)
	nm.sessionTimeoutMs = j.sessionTimeoutMs
	nm.rebalanceTimeoutMs = j.rebalanceTimeoutMs
	w := newWaiter[kmsg.JoinGroupResponse](j.version)
	nm.join = w
	sh.c.log.Info("group: static member rejoined, replacing its member id",
		"group", g.id, "instance", instanceID, "old", oldID, "new", newID, "state", g.state.String())

	switch g.state {
	case stateStable:
		if g.selectProtocol() != g.protocol {
			sh.maybePrepareRebalanceOrCompleteJoin(g)
			return nil, w
		}
		gen := g.generation
		live := func() bool {
			return sh.current(g) && g.state == stateStable && g.generation == gen &&
				g.members[newID] == nm && nm.join == w
		}
		sh.enqueue(&writeOp{prepare: func() ([]Record, func(error)) {
			if !live() {
				return nil, nil
			}
			return []Record{groupMetadataRecord(g, nil)}, func(err error) {
				if !live() {
					return
				}
				nm.join = nil
				if err != nil {
					// Put the old member id back, as Kafka does.
					code := sh.errorCode(err)
					g.setProtocols(nm, oldProtocols)
					nm.sessionTimeoutMs, nm.rebalanceTimeoutMs = oldSession, oldRebalance
					om := g.replaceStaticMember(instanceID, newID, oldID)
					sh.scheduleHeartbeat(g, om, msDuration(om.sessionTimeoutMs))
					resp := joinError(w.version, "", code)
					resp.Generation = g.generation
					resp.ProtocolType = strPtrOrNil(g.protocolType)
					resp.Protocol = strPtrOrNil(g.protocol)
					resp.LeaderID = currentLeader
					w.deliver(resp)
					return
				}
				resp := g.joinResponse(w.version, newID)
				if w.version >= 9 {
					// KIP-814: the leader learns the members but
					// keeps the current assignment.
					if g.leader == newID {
						resp.Members = g.joinMembers()
						resp.SkipAssignment = true
					}
				} else {
					// An old client must not think it leads and
					// reassign: show it the previous leader id.
					resp.LeaderID = currentLeader
				}
				w.deliver(resp)
			}
		}})
	case stateCompletingRebalance:
		// The leader may already have assigned the old member id.
		sh.prepareRebalance(g)
	case statePreparingRebalance:
		sh.maybeCompleteJoinPhase(g)
	}
	return nil, w
}
