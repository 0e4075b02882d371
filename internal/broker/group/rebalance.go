package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The rebalance state machine of a classic group, after Kafka's
// GroupMetadataManager. Every function here runs with sh.mu held.

func strPtrOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return kmsg.StringPtr(s)
}

func msDuration(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }

// joinResponse is the successful JoinGroup response for memberID in g's
// current generation, without the member list.
func (g *group) joinResponse(version int16, memberID string) *kmsg.JoinGroupResponse {
	resp := &kmsg.JoinGroupResponse{Version: version}
	resp.Default()
	resp.Generation = g.generation
	resp.ProtocolType = strPtrOrNil(g.protocolType)
	resp.Protocol = strPtrOrNil(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = memberID
	return resp
}

// answerJoinError answers m's parked JoinGroup, if any, with code.
func (sh *shard) answerJoinError(m *member, memberID string, code int16) {
	if w := m.join; w != nil {
		m.join = nil
		resp := &kmsg.JoinGroupResponse{Version: w.version}
		resp.Default()
		resp.MemberID = memberID
		resp.ErrorCode = code
		w.deliver(resp)
	}
}

// answerSyncError answers m's parked SyncGroup, if any, with code.
func (sh *shard) answerSyncError(m *member, code int16) {
	if w := m.sync; w != nil {
		m.sync = nil
		resp := &kmsg.SyncGroupResponse{Version: w.version}
		resp.Default()
		resp.ErrorCode = code
		w.deliver(resp)
	}
}

// dropMember removes m, answering its parked requests with code.
func (sh *shard) dropMember(g *group, m *member, memberID string, code int16) {
	sh.answerJoinError(m, memberID, code)
	sh.answerSyncError(m, code)
	g.remove(m.id)
}

// scheduleHeartbeat (re)arms m's session timer to expire after d.
func (sh *shard) scheduleHeartbeat(g *group, m *member, d time.Duration) {
	m.stopHeartbeat()
	seq := m.hbSeq
	m.hb = sh.afterFunc(d, func() {
		if !sh.current(g) || g.members[m.id] != m || m.hbSeq != seq {
			return
		}
		sh.expireHeartbeat(g, m)
	})
}

// expireHeartbeat handles a session timeout (Kafka's
// expireClassicGroupMemberHeartbeat): a member parked in a rebalance is kept
// unless it is new.
func (sh *shard) expireHeartbeat(g *group, m *member) {
	if !m.isNew && (m.join != nil || m.sync != nil) {
		return
	}
	sh.c.log.Info("group: member session expired, removing it",
		"group", g.id, "member", m.id, "generation", g.generation)
	sh.dropMember(g, m, "", codeUnknownMemberID)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		sh.maybePrepareRebalanceOrCompleteJoin(g)
	case statePreparingRebalance:
		if g.hasAllMembersJoined() {
			sh.completeJoin(g)
		}
	}
}

// addPending records a dynamic member that was told MEMBER_ID_REQUIRED; it
// is forgotten if it does not join within its session timeout.
func (sh *shard) addPending(g *group, id string, d time.Duration) {
	p := &pendingMember{}
	g.pending[id] = p
	p.t = sh.afterFunc(d, func() {
		if !sh.current(g) || g.pending[id] != p {
			return
		}
		delete(g.pending, id)
		if g.state == statePreparingRebalance && g.hasAllMembersJoined() {
			sh.completeJoin(g)
		}
		sh.dropIfUnused(g)
	})
}

func (sh *shard) maybePrepareRebalanceOrCompleteJoin(g *group) {
	if g.canRebalance() {
		sh.prepareRebalance(g)
	} else {
		sh.maybeCompleteJoinPhase(g)
	}
}

// prepareRebalance moves g to PreparingRebalance: parked SyncGroups are told
// to rejoin, and the join phase ends when every member has rejoined or the
// rebalance timeout passes. The first rebalance of an empty group instead
// waits Config.InitialRebalanceDelay, extended while members keep coming.
func (sh *shard) prepareRebalance(g *group) {
	if g.state == stateCompletingRebalance {
		sh.resetAndPropagateAssignmentWithError(g, codeRebalanceInProgress)
	}
	sh.cancelPendingSync(g)
	initial := g.state == stateEmpty
	g.transition(statePreparingRebalance, sh.now())
	sh.c.log.Debug("group: preparing rebalance", "group", g.id,
		"generation", g.generation, "members", len(g.members))
	if initial {
		delay := sh.c.cfg.InitialRebalanceDelay
		remaining := max(g.rebalanceTimeout()-delay, 0)
		sh.scheduleJoin(g, delay, func() { sh.tryCompleteInitialRebalance(g, delay, remaining) })
		return
	}
	sh.maybeCompleteJoinElseSchedule(g)
}

func (sh *shard) tryCompleteInitialRebalance(g *group, delay, remaining time.Duration) {
	if g.newMemberAdded && remaining > 0 {
		g.newMemberAdded = false
		next := min(sh.c.cfg.InitialRebalanceDelay, remaining)
		left := max(remaining-delay, 0)
		sh.scheduleJoin(g, next, func() { sh.tryCompleteInitialRebalance(g, next, left) })
		return
	}
	sh.completeJoin(g)
}

func (sh *shard) maybeCompleteJoinElseSchedule(g *group) {
	if g.hasAllMembersJoined() {
		sh.completeJoin(g)
		return
	}
	sh.scheduleJoin(g, g.rebalanceTimeout(), func() { sh.completeJoin(g) })
}

// maybeCompleteJoinPhase ends the join phase early if every member rejoined,
// except during the initial rebalance, which always waits for its delay.
func (sh *shard) maybeCompleteJoinPhase(g *group) {
	if g.state != statePreparingRebalance || g.prevState == stateEmpty || !g.hasAllMembersJoined() {
		return
	}
	sh.completeJoin(g)
}

// scheduleJoin arms g's join-phase timer, replacing any earlier one.
func (sh *shard) scheduleJoin(g *group, d time.Duration, fn func()) {
	sh.cancelJoin(g)
	seq := g.joinSeq
	g.joinTimer = sh.afterFunc(d, func() {
		if !sh.current(g) || g.joinSeq != seq || g.state != statePreparingRebalance {
			return
		}
		fn()
	})
}

func (sh *shard) cancelJoin(g *group) {
	g.joinSeq++
	if g.joinTimer != nil {
		g.joinTimer.Stop()
		g.joinTimer = nil
	}
}

// completeJoin ends the join phase (Kafka's completeClassicGroupJoin):
// dynamic members that did not rejoin are dropped, the generation advances,
// and every parked JoinGroup is answered, the leader's with all members'
// metadata. An emptied group is persisted as such.
func (sh *shard) completeJoin(g *group) {
	if g.state != statePreparingRebalance {
		return
	}
	sh.cancelJoin(g)
	for _, m := range g.orderedMembers() {
		if m.join == nil && !m.isStatic() {
			sh.dropMember(g, m, "", codeUnknownMemberID)
		}
	}
	if !sh.electJoinedLeader(g) && len(g.members) > 0 {
		// Only static members that have not rejoined are left: wait for
		// them to rejoin or for their sessions to expire.
		sh.scheduleJoin(g, g.rebalanceTimeout(), func() { sh.completeJoin(g) })
		return
	}
	g.generation++
	g.newMemberAdded = false
	g.pendingSync = make(map[string]bool)
	if len(g.members) == 0 {
		g.protocol = ""
		g.transition(stateEmpty, sh.now())
		sh.c.log.Info("group: group is now empty", "group", g.id, "generation", g.generation)
		sh.persistEmpty(g)
		return
	}
	g.protocol = g.selectProtocol()
	g.transition(stateCompletingRebalance, sh.now())
	sh.c.log.Info("group: join phase complete", "group", g.id, "generation", g.generation,
		"members", len(g.members), "protocol", g.protocol, "leader", g.leader)
	for _, m := range g.orderedMembers() {
		if w := m.join; w != nil {
			m.join = nil
			resp := g.joinResponse(w.version, m.id)
			if m.id == g.leader {
				resp.Members = g.joinMembers()
			}
			w.deliver(resp)
		}
		sh.scheduleHeartbeat(g, m, msDuration(m.sessionTimeoutMs))
		m.isNew = false
		g.pendingSync[m.id] = true
	}
	sh.schedulePendingSync(g)
}

// electJoinedLeader keeps the leader if it rejoined, else picks the first
// member that did; false if none did.
func (sh *shard) electJoinedLeader(g *group) bool {
	if g.leader == "" {
		return false
	}
	if l := g.members[g.leader]; l != nil && l.join != nil {
		return true
	}
	for _, m := range g.orderedMembers() {
		if m.join != nil {
			g.leader = m.id
			return true
		}
	}
	return false
}

// persistEmpty writes g's metadata once it became Empty, so that a new
// coordinator knows its generation. A failure is only logged, as in Kafka.
func (sh *shard) persistEmpty(g *group) {
	gen := g.generation
	sh.enqueue(&writeOp{prepare: func() ([]Record, func(error)) {
		if !sh.current(g) || g.state != stateEmpty || g.generation != gen {
			return nil, nil
		}
		return []Record{groupMetadataRecord(g, nil)}, func(err error) {
			if err != nil {
				sh.c.log.Warn("group: failed to persist empty group", "group", g.id, "err", err)
			}
		}
	}})
}

// schedulePendingSync drops the members that have not sent SyncGroup within
// the rebalance timeout, and rebalances.
func (sh *shard) schedulePendingSync(g *group) {
	g.syncSeq++
	if g.syncTimer != nil {
		g.syncTimer.Stop()
	}
	seq, gen := g.syncSeq, g.generation
	g.syncTimer = sh.afterFunc(g.rebalanceTimeout(), func() {
		if !sh.current(g) || g.syncSeq != seq || g.generation != gen || len(g.pendingSync) == 0 {
			return
		}
		if g.state != stateCompletingRebalance && g.state != stateStable {
			return
		}
		for id := range g.pendingSync {
			if m := g.members[id]; m != nil {
				sh.c.log.Info("group: member did not sync in time, removing it",
					"group", g.id, "member", id, "generation", gen)
				sh.dropMember(g, m, "", codeUnknownMemberID)
			}
		}
		g.pendingSync = make(map[string]bool)
		sh.prepareRebalance(g)
	})
}

func (sh *shard) cancelPendingSync(g *group) {
	g.pendingSync = make(map[string]bool)
	g.syncSeq++
	if g.syncTimer != nil {
		g.syncTimer.Stop()
		g.syncTimer = nil
	}
}

// removePendingSync notes that m sent SyncGroup.
func (sh *shard) removePendingSync(g *group, id string) {
	delete(g.pendingSync, id)
	if len(g.pendingSync) == 0 {
		g.syncSeq++
		if g.syncTimer != nil {
			g.syncTimer.Stop()
			g.syncTimer = nil
		}
	}
}

func (sh *shard) resetAndPropagateAssignmentWithError(g *group, code int16) {
	for _, m := range g.members {
		m.assignment = []byte{}
	}
	sh.propagateAssignment(g, code)
}

func (sh *shard) setAndPropagateAssignment(g *group, assignment map[string][]byte) {
	for _, m := range g.members {
		m.assignment = nonNil(assignment[m.id])
	}
	sh.propagateAssignment(g, 0)
}

// propagateAssignment answers every parked SyncGroup.
func (sh *shard) propagateAssignment(g *group, code int16) {
	for _, m := range g.orderedMembers() {
		w := m.sync
		if w == nil {
			continue
		}
		m.sync = nil
		resp := &kmsg.SyncGroupResponse{Version: w.version}
		resp.Default()
		resp.ErrorCode = code
		if code == 0 {
			resp.ProtocolType = strPtrOrNil(g.protocolType)
			resp.Protocol = strPtrOrNil(g.protocol)
		}
		resp.MemberAssignment = nonNil(m.assignment)
		w.deliver(resp)
		sh.scheduleHeartbeat(g, m, msDuration(m.sessionTimeoutMs))
	}
}
