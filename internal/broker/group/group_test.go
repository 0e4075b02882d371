package group

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestThreeMembersJoinSyncAndHeartbeatIntoOneStableGeneration(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	sims := make([]*sim, 3)
	for i := range sims {
		sims[i] = startSim(t, c, "g", fmt.Sprintf("client-%d", i), 2*time.Second, 20*time.Millisecond)
	}
	gen := waitStable(t, c, "g", sims...)

	ctx := testCtx(t)
	for _, s := range sims {
		st := s.state()
		if !strings.HasPrefix(st.id, s.client+"-") {
			t.Errorf("member id %q does not start with client id %q", st.id, s.client)
		}
		if code := heartbeat(ctx, c, "g", st.id, gen); code != 0 {
			t.Errorf("heartbeat of %s in generation %d: error %d", st.id, gen, code)
		}
	}
	d := describe(ctx, c, "g")
	if d.Protocol != "range" || d.ProtocolType != "consumer" {
		t.Errorf("described protocol %q/%q, want consumer/range", d.ProtocolType, d.Protocol)
	}
	for _, m := range d.Members {
		if m.ClientHost != "/10.0.0.1" || !strings.HasPrefix(m.ClientID, "client-") {
			t.Errorf("member %s described with client %q host %q", m.MemberID, m.ClientID, m.ClientHost)
		}
	}
}

func TestMemberThatStopsHeartbeatingIsEvictedAndOthersRebalance(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	a := startSim(t, c, "g", "a", 300*time.Millisecond, 20*time.Millisecond)
	b := startSim(t, c, "g", "b", 300*time.Millisecond, 20*time.Millisecond)
	dead := startSim(t, c, "g", "dead", 300*time.Millisecond, 20*time.Millisecond)
	gen := waitStable(t, c, "g", a, b, dead)
	deadID := dead.state().id

	dead.halt() // stops talking, never leaves
	newGen := waitStable(t, c, "g", a, b)
	if newGen <= gen {
		t.Fatalf("generation after eviction = %d, want > %d", newGen, gen)
	}
	for _, m := range describe(context.Background(), c, "g").Members {
		if m.MemberID == deadID {
			t.Fatalf("evicted member %s still described", deadID)
		}
	}
	if code := heartbeat(testCtx(t), c, "g", deadID, gen); code != codeUnknownMemberID {
		t.Fatalf("heartbeat of evicted member: error %d, want UNKNOWN_MEMBER_ID", code)
	}
}

func TestLeaveGroupTriggersRebalanceOfTheRest(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	stay := startSim(t, c, "g", "stay", 5*time.Second, 20*time.Millisecond)
	leave := startSim(t, c, "g", "leave", 5*time.Second, 20*time.Millisecond)
	gen := waitStable(t, c, "g", stay, leave)

	leave.leave = true
	leave.halt()
	newGen := waitStable(t, c, "g", stay)
	if newGen <= gen {
		t.Fatalf("generation after leave = %d, want > %d", newGen, gen)
	}
}

func TestHeartbeatDuringRebalanceAnswersRebalanceInProgress(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	reqA, chA := joinNew(t, ctx, c, "g")
	ja := recv(t, chA)
	if ja.ErrorCode != 0 || ja.Generation != 1 || ja.LeaderID != reqA.MemberID {
		t.Fatalf("first join: %+v", ja)
	}
	sa := recv(t, goSync(ctx, c, syncReq("g", reqA.MemberID, 1, map[string][]byte{reqA.MemberID: []byte("a")})))
	if sa.ErrorCode != 0 || string(sa.MemberAssignment) != "a" {
		t.Fatalf("sync: %+v", sa)
	}

	_, chB := joinNew(t, ctx, c, "g")
	notYet(t, chB, "join of a second member")
	if code := heartbeat(ctx, c, "g", reqA.MemberID, 1); code != codeRebalanceInProgress {
		t.Fatalf("heartbeat during rebalance: %d, want REBALANCE_IN_PROGRESS", code)
	}
	if d := describe(ctx, c, "g"); d.State != "PreparingRebalance" || len(d.Members[0].ProtocolMetadata) != 0 {
		t.Fatalf("described %s with metadata %q; want PreparingRebalance without metadata", d.State, d.Members[0].ProtocolMetadata)
	}
	ja2 := recv(t, goJoin(ctx, c, reqA))
	jb := recv(t, chB)
	if ja2.Generation != 2 || jb.Generation != 2 || ja2.LeaderID != reqA.MemberID {
		t.Fatalf("rejoin: a=%+v b=%+v", ja2, jb)
	}
	if len(ja2.Members) != 2 || len(jb.Members) != 0 {
		t.Fatalf("leader got %d members, follower %d; want 2 and 0", len(ja2.Members), len(jb.Members))
	}
	if code := heartbeat(ctx, c, "g", reqA.MemberID, 2); code != 0 {
		t.Fatalf("heartbeat between join and sync: %d, want 0", code)
	}
}

func TestRebalanceTimeoutDropsMembersThatDoNotRejoin(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	opts := []joinRequestOpt{withSession(10 * time.Second), withRebalance(150 * time.Millisecond)}
	reqA, chA := joinNew(t, ctx, c, "g", opts...)
	recv(t, chA)
	recv(t, goSync(ctx, c, syncReq("g", reqA.MemberID, 1, nil)))
	// B joins: A must rejoin within the rebalance timeout.
	reqB, chB := joinNew(t, ctx, c, "g", opts...)
	recv(t, goJoin(ctx, c, reqA))
	jb := recv(t, chB)
	if jb.Generation != 2 {
		t.Fatalf("B joined generation %d, want 2", jb.Generation)
	}
	syncB := goSync(ctx, c, syncReq("g", reqB.MemberID, 2, nil))
	syncA := goSync(ctx, c, syncReq("g", reqA.MemberID, 2, nil))
	if a, b := recv(t, syncA), recv(t, syncB); a.ErrorCode != 0 || b.ErrorCode != 0 {
		t.Fatalf("sync of generation 2: a=%d b=%d", a.ErrorCode, b.ErrorCode)
	}

	// C joins; A rejoins, B stays silent (its session is long).
	start := time.Now()
	reqC, chC := joinNew(t, ctx, c, "g", opts...)
	chA2 := goJoin(ctx, c, reqA)
	ja := recv(t, chA2)
	jc := recv(t, chC)
	if ja.ErrorCode != 0 || jc.ErrorCode != 0 || ja.Generation != 3 || jc.Generation != 3 {
		t.Fatalf("after the rebalance timeout: a=%+v c=%+v", ja, jc)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("join phase ended after %v, before the rebalance timeout", waited)
	}
	leader := ja
	if jc.LeaderID == reqC.MemberID {
		leader = jc
	}
	if len(leader.Members) != 2 {
		t.Fatalf("leader sees %d members, want 2 (B dropped)", len(leader.Members))
	}
	if code := heartbeat(ctx, c, "g", reqB.MemberID, 2); code != codeUnknownMemberID {
		t.Fatalf("heartbeat of dropped member: %d, want UNKNOWN_MEMBER_ID", code)
	}
}

func TestMembersThatDoNotSyncInTimeAreDropped(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	opts := []joinRequestOpt{withRebalance(100 * time.Millisecond)}
	reqA, chA := joinNew(t, ctx, c, "g", opts...)
	recv(t, chA)
	recv(t, goSync(ctx, c, syncReq("g", reqA.MemberID, 1, nil)))
	reqB, chB := joinNew(t, ctx, c, "g", opts...)
	recv(t, goJoin(ctx, c, reqA))
	recv(t, chB)
	// Only B syncs; the leader A never does.
	sb := recv(t, goSync(ctx, c, syncReq("g", reqB.MemberID, 2, nil)))
	if sb.ErrorCode != codeRebalanceInProgress {
		t.Fatalf("parked sync after the leader timed out: %d, want REBALANCE_IN_PROGRESS", sb.ErrorCode)
	}
	if code := heartbeat(ctx, c, "g", reqA.MemberID, 2); code != codeUnknownMemberID {
		t.Fatalf("leader that never synced: heartbeat %d, want UNKNOWN_MEMBER_ID", code)
	}
}

func TestMemberIDRequiredFlow(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)

	first := c.JoinGroup(ctx, joinReq("g", ""))
	if first.ErrorCode != codeMemberIDRequired {
		t.Fatalf("v9 join with no member id: %d, want MEMBER_ID_REQUIRED", first.ErrorCode)
	}
	if !strings.HasPrefix(first.MemberID, "test-client-") || len(first.MemberID) != len("test-client-")+36 {
		t.Fatalf("assigned member id %q, want test-client-<uuid>", first.MemberID)
	}
	if d := describe(ctx, c, "g"); len(d.Members) != 0 {
		t.Fatalf("a pending member is described as a member: %+v", d.Members)
	}
	j := c.JoinGroup(ctx, joinReq("g", first.MemberID))
	if j.ErrorCode != 0 || j.MemberID != first.MemberID || j.Generation != 1 || j.LeaderID != first.MemberID {
		t.Fatalf("join with the assigned id: %+v", j)
	}
	if c.JoinGroup(ctx, joinReq("g", "made-up")).ErrorCode != codeUnknownMemberID {
		t.Fatal("join with an id the coordinator never gave: want UNKNOWN_MEMBER_ID")
	}
	if c.JoinGroup(ctx, joinReq("other", "made-up")).ErrorCode != codeUnknownMemberID {
		t.Fatal("join of an unknown group with a member id: want UNKNOWN_MEMBER_ID")
	}

	// Before v4 the coordinator assigns the id and joins at once.
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	old := c.JoinGroup(ctx2, joinReq("v3", "", withVersion(3)))
	if old.ErrorCode != 0 || old.MemberID == "" || old.Generation != 1 {
		t.Fatalf("v3 join with no member id: %+v", old)
	}
}

func TestIllegalGenerationAndUnknownMember(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	req, ch := joinNew(t, ctx, c, "g")
	j := recv(t, ch)
	recv(t, goSync(ctx, c, syncReq("g", req.MemberID, j.Generation, nil)))

	if code := heartbeat(ctx, c, "g", req.MemberID, j.Generation+1); code != codeIllegalGeneration {
		t.Errorf("heartbeat with a wrong generation: %d, want ILLEGAL_GENERATION", code)
	}
	if code := recv(t, goSync(ctx, c, syncReq("g", req.MemberID, 7, nil))).ErrorCode; code != codeIllegalGeneration {
		t.Errorf("sync with a wrong generation: %d, want ILLEGAL_GENERATION", code)
	}
	if code := heartbeat(ctx, c, "g", "nobody", j.Generation); code != codeUnknownMemberID {
		t.Errorf("heartbeat of an unknown member: %d, want UNKNOWN_MEMBER_ID", code)
	}
	if code := heartbeat(ctx, c, "nogroup", "nobody", 1); code != codeUnknownMemberID {
		t.Errorf("heartbeat to an unknown group: %d, want UNKNOWN_MEMBER_ID", code)
	}

	tests := []struct {
		name    string
		group   string
		member  string
		gen     int32
		version int16
		want    int16
	}{
		{"wrong generation", "g", req.MemberID, j.Generation + 1, 9, codeIllegalGeneration},
		{"unknown member", "g", "nobody", j.Generation, 9, codeUnknownMemberID},
		{"simple commit to a group with members", "g", "", -1, 9, codeUnknownMemberID},
		{"member commit to an unknown group, v9", "nogroup", "m", 1, 9, codeGroupIDNotFound},
		{"member commit to an unknown group, v8", "nogroup", "m", 1, 8, codeIllegalGeneration},
		{"member of the current generation", "g", req.MemberID, j.Generation, 9, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := commitReq(tt.group, tt.member, tt.gen, "t", map[int32]int64{0: 5})
			r.Version = tt.version
			if got := commitCodes(c.OffsetCommit(ctx, r)); got[0] != tt.want {
				t.Fatalf("commit: %d, want %d", got[0], tt.want)
			}
		})
	}
}

func TestInvalidRequestsGetKafkasErrors(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	tests := []struct {
		name string
		req  *kmsg.JoinGroupRequest
		want int16
	}{
		{"empty group id", joinReq("", ""), codeInvalidGroupID},
		{"session timeout below the minimum", joinReq("g", "", withSession(time.Millisecond)), codeInvalidSessionTimeout},
		{"session timeout above the maximum", joinReq("g", "", withSession(time.Hour)), codeInvalidSessionTimeout},
		{"no protocol type", func() *kmsg.JoinGroupRequest { r := joinReq("g", ""); r.ProtocolType = ""; return r }(), codeInconsistentGroupProtocol},
		{"no protocols", joinReq("g", "", withProtocols()), codeInconsistentGroupProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.JoinGroup(ctx, tt.req).ErrorCode; got != tt.want {
				t.Fatalf("JoinGroup: %d, want %d", got, tt.want)
			}
		})
	}
	r := kmsg.NewPtrListGroupsRequest()
	if groups := c.ListGroups(ctx, r).Groups; len(groups) != 0 {
		t.Fatalf("rejected joins left groups behind: %+v", groups)
	}
}

func TestProtocolIsChosenByMemberVotes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		members [][]string
		want    string
	}{
		{"only common protocol wins", [][]string{{"range", "roundrobin"}, {"roundrobin", "range"}, {"roundrobin"}}, "roundrobin"},
		{"majority of first choices", [][]string{{"x", "y"}, {"y", "x"}, {"y", "x"}}, "y"},
		{"single member's first choice", [][]string{{"cooperative-sticky", "range"}}, "cooperative-sticky"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.InitialRebalanceDelay = 100 * time.Millisecond
			c, _ := newLoaded(t, cfg)
			ctx := testCtx(t)
			var chans []<-chan *kmsg.JoinGroupResponse
			for _, ps := range tt.members {
				_, ch := joinNew(t, ctx, c, "g", withProtocols(ps...))
				chans = append(chans, ch)
			}
			for _, ch := range chans {
				j := recv(t, ch)
				if j.ErrorCode != 0 || j.Protocol == nil || *j.Protocol != tt.want {
					t.Fatalf("join: error %d protocol %v, want %q", j.ErrorCode, j.Protocol, tt.want)
				}
				if j.Generation != 1 {
					t.Fatalf("generation %d, want 1: the initial delay should gather every member", j.Generation)
				}
			}
		})
	}
}

func TestJoinWithIncompatibleProtocolsIsRejected(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	_, ch := joinNew(t, ctx, c, "g", withProtocols("range"))
	recv(t, ch)
	if code := c.JoinGroup(ctx, joinReq("g", "", withProtocols("sticky"))).ErrorCode; code != codeInconsistentGroupProtocol {
		t.Fatalf("join sharing no protocol: %d, want INCONSISTENT_GROUP_PROTOCOL", code)
	}
	r := joinReq("g", "")
	r.ProtocolType = "connect"
	if code := c.JoinGroup(ctx, r).ErrorCode; code != codeInconsistentGroupProtocol {
		t.Fatalf("join with another protocol type: %d, want INCONSISTENT_GROUP_PROTOCOL", code)
	}
}

func TestStaticMemberRestartKeepsAssignmentWithoutRebalance(t *testing.T) {
	t.Parallel()
	c, st := newLoaded(t, testConfig())
	ctx := testCtx(t)
	a := joinReq("g", "", withInstance("instance-a"))
	ja := recv(t, goJoin(ctx, c, a))
	if ja.ErrorCode != 0 || !strings.HasPrefix(ja.MemberID, "instance-a-") {
		t.Fatalf("static join (no MEMBER_ID_REQUIRED for static members): %+v", ja)
	}
	sa := syncReq("g", ja.MemberID, ja.Generation, map[string][]byte{ja.MemberID: []byte("parts-of-a")})
	sa.InstanceID = a.InstanceID
	recv(t, goSync(ctx, c, sa))
	appends := len(st.snapshot())

	// The instance restarts: same instance id, no member id.
	again := recv(t, goJoin(ctx, c, joinReq("g", "", withInstance("instance-a"))))
	if again.ErrorCode != 0 || again.MemberID == ja.MemberID || again.Generation != ja.Generation {
		t.Fatalf("static rejoin: %+v (old id %s, generation %d)", again, ja.MemberID, ja.Generation)
	}
	if again.LeaderID != again.MemberID || !again.SkipAssignment || len(again.Members) != 1 {
		t.Fatalf("static leader rejoin at v9: want leader with members and SkipAssignment, got %+v", again)
	}
	if len(st.snapshot()) <= appends {
		t.Fatal("the replaced member id was not persisted")
	}
	s := syncReq("g", again.MemberID, again.Generation, nil)
	s.InstanceID = kmsg.StringPtr("instance-a")
	if r := recv(t, goSync(ctx, c, s)); r.ErrorCode != 0 || string(r.MemberAssignment) != "parts-of-a" {
		t.Fatalf("sync after static rejoin: %+v, want the old assignment", r)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version = 4
	hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = "g", ja.MemberID, ja.Generation, kmsg.StringPtr("instance-a")
	if code := c.Heartbeat(ctx, hb).ErrorCode; code != codeFencedInstanceID {
		t.Fatalf("heartbeat of the old static member id: %d, want FENCED_INSTANCE_ID", code)
	}
	if d := describe(ctx, c, "g"); d.State != "Stable" {
		t.Fatalf("state after static rejoin: %s, want Stable (no rebalance)", d.State)
	}
}

func TestDescribeAndListGroups(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	req, ch := joinNew(t, ctx, c, "members", withTopics("t1", "t2"))
	j := recv(t, ch)
	recv(t, goSync(ctx, c, syncReq("members", req.MemberID, j.Generation, map[string][]byte{req.MemberID: []byte("x")})))
	commitCodes(c.OffsetCommit(ctx, commitReq("simple", "", -1, "t", map[int32]int64{0: 1})))

	d := describe(ctx, c, "members")
	if d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 1 ||
		string(d.Members[0].MemberAssignment) != "x" || len(d.Members[0].ProtocolMetadata) == 0 {
		t.Fatalf("describe stable group: %+v", d)
	}

	dr := kmsg.NewPtrDescribeGroupsRequest()
	dr.Version = 6
	dr.Groups = []string{"missing"}
	dr.IncludeAuthorizedOperations = true
	missing := c.DescribeGroups(ctx, dr).Groups[0]
	if missing.State != "Dead" || missing.ErrorCode != codeGroupIDNotFound || missing.AuthorizedOperations != groupAuthorizedOperations {
		t.Fatalf("describe missing group at v6: %+v", missing)
	}
	dr.Version = 5
	if missing := c.DescribeGroups(ctx, dr).Groups[0]; missing.State != "Dead" || missing.ErrorCode != 0 {
		t.Fatalf("describe missing group at v5: %+v", missing)
	}

	tests := []struct {
		name   string
		states []string
		types  []string
		want   []string
	}{
		{"all", nil, nil, []string{"members", "simple"}},
		{"stable only, any case", []string{"stable"}, nil, []string{"members"}},
		{"empty only", []string{"Empty"}, nil, []string{"simple"}},
		{"classic type", nil, []string{"Classic"}, []string{"members", "simple"}},
		{"consumer type", nil, []string{"consumer"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kmsg.NewPtrListGroupsRequest()
			r.Version = 5
			r.StatesFilter, r.TypesFilter = tt.states, tt.types
			var got []string
			for _, g := range c.ListGroups(ctx, r).Groups {
				got = append(got, g.Group)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("listed %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDeleteGroups(t *testing.T) {
	t.Parallel()
	c, st := newLoaded(t, testConfig())
	ctx := testCtx(t)
	req, ch := joinNew(t, ctx, c, "busy")
	recv(t, ch)
	_ = req
	commitCodes(c.OffsetCommit(ctx, commitReq("idle", "", -1, "t", map[int32]int64{0: 1, 1: 2})))

	r := kmsg.NewPtrDeleteGroupsRequest()
	r.Version = 3
	r.Groups = []string{"idle", "busy", "missing"}
	resp := c.DeleteGroups(ctx, r)
	want := []int16{0, codeNonEmptyGroup, codeGroupIDNotFound}
	for i, g := range resp.Groups {
		if g.ErrorCode != want[i] {
			t.Errorf("delete %s: %d, want %d", g.Group, g.ErrorCode, want[i])
		}
		if (g.ErrorCode != 0) != (g.ErrorMessage != nil) {
			t.Errorf("delete %s at v3: error message %v with code %d", g.Group, g.ErrorMessage, g.ErrorCode)
		}
	}
	if got := fetchOffset(t, ctx, c, "idle", "t", 0); got != -1 {
		t.Fatalf("offset of a deleted group: %d, want -1", got)
	}
	tombstones := 0
	for _, rec := range st.snapshot() {
		if rec.Value == nil {
			tombstones++
		}
	}
	if tombstones != 3 {
		t.Fatalf("persisted %d tombstones, want 3 (two offsets and the group)", tombstones)
	}
	c2 := NewCoordinator(testConfig(), nil)
	defer c2.Close()
	if err := c2.Load(ctx, 0, &memStore{}, st.replay()); err != nil {
		t.Fatal(err)
	}
	if d := describe(ctx, c2, "idle"); d.State != "Dead" {
		t.Fatalf("deleted group after reload: %s, want Dead (absent)", d.State)
	}
}

func TestOffsetDelete(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	req, ch := joinNew(t, ctx, c, "g", withTopics("subscribed"))
	j := recv(t, ch)
	recv(t, goSync(ctx, c, syncReq("g", req.MemberID, j.Generation, nil)))
	for _, topic := range []string{"subscribed", "other"} {
		if codes := commitCodes(c.OffsetCommit(ctx, commitReq("g", req.MemberID, j.Generation, topic, map[int32]int64{0: 9}))); codes[0] != 0 {
			t.Fatalf("commit %s: %v", topic, codes)
		}
	}
	r := kmsg.NewPtrOffsetDeleteRequest()
	r.Group = "g"
	for _, topic := range []string{"subscribed", "other"} {
		rt := kmsg.NewOffsetDeleteRequestTopic()
		rt.Topic = topic
		rt.Partitions = []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}
		r.Topics = append(r.Topics, rt)
	}
	resp := c.OffsetDelete(ctx, r)
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != codeGroupSubscribedToTopic ||
		resp.Topics[1].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset delete: %+v", resp)
	}
	if got := fetchOffset(t, ctx, c, "g", "other", 0); got != -1 {
		t.Fatalf("deleted offset still fetched: %d", got)
	}
	if got := fetchOffset(t, ctx, c, "g", "subscribed", 0); got != 9 {
		t.Fatalf("offset of a subscribed topic: %d, want 9 kept", got)
	}
	r.Group = "missing"
	if code := c.OffsetDelete(ctx, r).ErrorCode; code != codeGroupIDNotFound {
		t.Fatalf("offset delete of a missing group: %d, want GROUP_ID_NOT_FOUND", code)
	}
}
