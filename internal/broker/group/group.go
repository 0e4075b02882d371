package group

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupState is a classic group's state, named as Kafka names it.
type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s groupState) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	case stateDead:
		return "Dead"
	}
	return "Unknown"
}

// consumerProtocolType is the protocol type of Kafka consumers, whose member
// metadata is a ConsumerMemberMetadata.
const consumerProtocolType = "consumer"

// waiter is a parked JoinGroup or SyncGroup: it receives exactly one response.
type waiter[T any] struct {
	version int16
	ch      chan *T
}

func newWaiter[T any](version int16) *waiter[T] {
	return &waiter[T]{version: version, ch: make(chan *T, 1)}
}

func (w *waiter[T]) deliver(r *T) {
	select {
	case w.ch <- r:
	default:
	}
}

type (
	joinWaiter = waiter[kmsg.JoinGroupResponse]
	syncWaiter = waiter[kmsg.SyncGroupResponse]
)

// member is a member of a classic group (Kafka's ClassicGroupMember).
type member struct {
	id                 string
	instanceID         *string
	clientID           string
	clientHost         string
	protocolType       string
	protocols          []kmsg.JoinGroupRequestProtocol
	sessionTimeoutMs   int32
	rebalanceTimeoutMs int32
	assignment         []byte
	seq                uint64 // order of joining; orders leader choice and member lists

	join  *joinWaiter // set while a JoinGroup waits for the join phase to end
	sync  *syncWaiter // set while a SyncGroup waits for the assignment
	isNew bool        // has not yet received its first JoinGroup response

	hb    *time.Timer // session timeout
	hbSeq uint64      // invalidates fired-but-stale session timers
}

func (m *member) isStatic() bool { return m.instanceID != nil }

// metadata returns the member's metadata for protocol, or nil.
func (m *member) metadata(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// matches reports whether protocols equal the member's, in order.
func (m *member) matches(protocols []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(m.protocols, protocols, func(a, b kmsg.JoinGroupRequestProtocol) bool {
		return a.Name == b.Name && bytes.Equal(a.Metadata, b.Metadata)
	})
}

// vote returns the member's most preferred protocol among candidates.
func (m *member) vote(candidates map[string]bool) (string, bool) {
	for _, p := range m.protocols {
		if candidates[p.Name] {
			return p.Name, true
		}
	}
	return "", false
}

func (m *member) stopHeartbeat() {
	m.hbSeq++
	if m.hb != nil {
		m.hb.Stop()
		m.hb = nil
	}
}

// pendingMember is a dynamic member that got MEMBER_ID_REQUIRED and has not
// joined with its id yet.
type pendingMember struct {
	t   *time.Timer
	seq uint64
}

// committed is a committed offset (Kafka's OffsetAndMetadata).
type committed struct {
	offset          int64
	leaderEpoch     int32
	metadata        string
	commitTimestamp int64
	expireTimestamp int64 // -1: none
	// seq orders the commit's record in the partition's log (the shard
	// counts records as it replays and writes them): a transactional commit
	// materialized by its COMMIT marker replaces only an older commit, as
	// Kafka compares record offsets.
	seq int64
}

// group is a classic group and its committed offsets. It is guarded by its
// shard's mutex.
type group struct {
	id           string
	state        groupState
	prevState    groupState
	stateTime    time.Time
	protocolType string
	protocol     string
	generation   int32
	leader       string

	members     map[string]*member
	support     map[string]int    // protocol name → members supporting it
	static      map[string]string // group.instance.id → member id
	pending     map[string]*pendingMember
	pendingSync map[string]bool
	nextSeq     uint64

	newMemberAdded bool // a member joined during the initial rebalance delay

	joinTimer *time.Timer
	joinSeq   uint64
	syncTimer *time.Timer
	syncSeq   uint64

	offsets offsetMap
	// commitsInFlight counts offset commits being persisted: their offsets
	// are not in offsets yet, but the group must not be dropped as unused.
	commitsInFlight int
}

func (g *group) transition(s groupState, now time.Time) {
	g.prevState = g.state
	g.state = s
	g.stateTime = now
}

// orderedMembers returns the members in joining order.
func (g *group) orderedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return ms
}

// newGroupValue returns an Empty group with no members.
func newGroupValue(id string, now time.Time) *group {
	return &group{
		id:          id,
		state:       stateEmpty,
		prevState:   stateEmpty,
		stateTime:   now,
		members:     make(map[string]*member),
		support:     make(map[string]int),
		static:      make(map[string]string),
		pending:     make(map[string]*pendingMember),
		pendingSync: make(map[string]bool),
	}
}

func (g *group) supportCount(protocol string) int { return g.support[protocol] }

// count adds delta to the support of each protocol m names.
func (g *group) count(m *member, delta int) {
	for i, p := range m.protocols {
		if slices.ContainsFunc(m.protocols[:i], func(q kmsg.JoinGroupRequestProtocol) bool { return q.Name == p.Name }) {
			continue
		}
		if g.support[p.Name] += delta; g.support[p.Name] <= 0 {
			delete(g.support, p.Name)
		}
	}
}

// setProtocols replaces the protocols of member m.
func (g *group) setProtocols(m *member, protocols []kmsg.JoinGroupRequestProtocol) {
	g.count(m, -1)
	m.protocols = protocols
	g.count(m, +1)
}

// supportsProtocols reports whether a member with these protocols may join
// (Kafka's ClassicGroup.supportsProtocols).
func (g *group) supportsProtocols(protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if g.state == stateEmpty {
		return protocolType != "" && len(protocols) > 0
	}
	if g.protocolType != protocolType {
		return false
	}
	for _, p := range protocols {
		if g.supportCount(p.Name) == len(g.members) {
			return true
		}
	}
	return false
}

// selectProtocol picks the protocol every member supports that gets the most
// votes; ties go to the protocol voted for first in joining order.
func (g *group) selectProtocol() string {
	ms := g.orderedMembers()
	candidates := make(map[string]bool)
	for name, n := range g.support {
		if n == len(g.members) {
			candidates[name] = true
		}
	}
	votes := make(map[string]int)
	var order []string
	for _, m := range ms {
		name, ok := m.vote(candidates)
		if !ok {
			continue
		}
		if votes[name] == 0 {
			order = append(order, name)
		}
		votes[name]++
	}
	best, bestVotes := "", 0
	for _, name := range order {
		if votes[name] > bestVotes {
			best, bestVotes = name, votes[name]
		}
	}
	if best == "" && len(ms) > 0 && len(ms[0].protocols) > 0 {
		// Unreachable when joins are validated; answer something sane.
		best = ms[0].protocols[0].Name
	}
	return best
}

func (g *group) hasAllMembersJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return true
}

func (g *group) numAwaitingJoin() int {
	n := 0
	for _, m := range g.members {
		if m.join != nil {
			n++
		}
	}
	return n
}

// rebalanceTimeout is the largest rebalance timeout of the members.
func (g *group) rebalanceTimeout() time.Duration {
	var ms int32
	for _, m := range g.members {
		ms = max(ms, m.rebalanceTimeoutMs)
	}
	return time.Duration(ms) * time.Millisecond
}

// add adds m to the group (Kafka's ClassicGroup.add).
func (g *group) add(m *member) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	if g.leader == "" {
		g.leader = m.id
	}
	g.nextSeq++
	m.seq = g.nextSeq
	g.members[m.id] = m
	g.count(m, +1)
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	g.removePending(m.id)
}

// addLoadedMember adds a member rebuilt from the log.
func (g *group) addLoadedMember(m *member) {
	if old := g.members[m.id]; old != nil {
		return
	}
	g.nextSeq++
	m.seq = g.nextSeq
	g.members[m.id] = m
	g.count(m, +1)
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
}

// remove removes a member or pending member (Kafka's ClassicGroup.remove).
// It stops the member's session timer; answering its parked requests is the
// caller's job.
func (g *group) remove(id string) {
	if m := g.members[id]; m != nil {
		delete(g.members, id)
		g.count(m, -1)
		m.stopHeartbeat()
		if m.instanceID != nil && g.static[*m.instanceID] == id {
			delete(g.static, *m.instanceID)
		}
	}
	if g.leader == id {
		g.leader = ""
		if ms := g.orderedMembers(); len(ms) > 0 {
			g.leader = ms[0].id
		}
	}
	g.removePending(id)
	delete(g.pendingSync, id)
}

func (g *group) removePending(id string) {
	if p := g.pending[id]; p != nil {
		if p.t != nil {
			p.t.Stop()
		}
		delete(g.pending, id)
	}
}

// validateMember checks that memberID (and instanceID, if set) name a current
// member, as Kafka's ClassicGroup.validateMember does.
func (g *group) validateMember(memberID string, instanceID *string) int16 {
	if instanceID != nil {
		existing, ok := g.static[*instanceID]
		if !ok {
			return codeUnknownMemberID
		}
		if existing != memberID {
			return codeFencedInstanceID
		}
	}
	if g.members[memberID] == nil {
		return codeUnknownMemberID
	}
	return 0
}

// canRebalance reports whether the group may enter PreparingRebalance.
func (g *group) canRebalance() bool {
	switch g.state {
	case stateStable, stateCompletingRebalance, stateEmpty:
		return true
	}
	return false
}

// joinMembers is the member list a leader gets in its JoinGroup response.
func (g *group) joinMembers() []kmsg.JoinGroupResponseMember {
	ms := g.orderedMembers()
	out := make([]kmsg.JoinGroupResponseMember, 0, len(ms))
	for _, m := range ms {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		jm.InstanceID = m.instanceID
		jm.ProtocolMetadata = nonNil(m.metadata(g.protocol))
		out = append(out, jm)
	}
	return out
}

// subscribedTopics returns the topics the members subscribe to, decoded from
// their consumer-protocol metadata, and whether they are known (Kafka's
// ClassicGroup.computeSubscribedTopics).
func (g *group) subscribedTopics() (map[string]bool, bool) {
	if g.protocolType != consumerProtocolType {
		return nil, false
	}
	topics := make(map[string]bool)
	if len(g.members) == 0 {
		return topics, true
	}
	if g.protocol == "" {
		return nil, false
	}
	for _, m := range g.members {
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(m.metadata(g.protocol)); err != nil {
			return nil, false
		}
		for _, t := range meta.Topics {
			topics[t] = true
		}
	}
	return topics, true
}

// isSubscribedToTopic is Kafka's ClassicGroup.isSubscribedToTopic.
func (g *group) isSubscribedToTopic(topic string) bool {
	topics, known := g.subscribedTopics()
	if !known {
		return g.protocolType == consumerProtocolType
	}
	return topics[topic]
}

func (g *group) setOffset(topic string, partition int32, c committed) {
	g.offsets.set(topic, partition, c)
}

func (g *group) deleteOffset(topic string, partition int32) {
	g.offsets.remove(topic, partition)
}

func (g *group) offset(topic string, partition int32) (committed, bool) {
	c, ok := g.offsets[topic][partition]
	return c, ok
}

// unused reports whether the group holds nothing worth keeping: a group that
// a rejected request created. A group with a commit being persisted is used.
func (g *group) unused() bool {
	return g.state == stateEmpty && g.generation == 0 && len(g.members) == 0 &&
		len(g.pending) == 0 && len(g.offsets) == 0 && g.commitsInFlight == 0
}

// newMemberID returns a member id as Kafka makes one: the client id (or the
// group instance id of a static member), a dash, and a random UUID.
func newMemberID(clientID string, instanceID *string) string {
	prefix := clientID
	if instanceID != nil {
		prefix = *instanceID
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func timeFromMillis(ms int64) time.Time { return time.UnixMilli(ms) }
