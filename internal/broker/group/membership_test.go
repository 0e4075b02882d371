package group

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

func TestLeaveGroupVersionsAndStaticRemoval(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	static := recv(t, goJoin(ctx, c, joinReq("g", "", withInstance("i-1"))))
	if static.ErrorCode != 0 {
		t.Fatalf("static join: %+v", static)
	}
	recv(t, goSync(ctx, c, syncReq("g", static.MemberID, static.Generation, nil)))
	pending := c.JoinGroup(ctx, joinReq("g", ""))
	if pending.ErrorCode != codeMemberIDRequired {
		t.Fatalf("pending join: %d", pending.ErrorCode)
	}

	old := kmsg.NewPtrLeaveGroupRequest()
	old.Version = 2
	old.Group, old.MemberID = "g", "nobody"
	if resp := c.LeaveGroup(ctx, old); resp.ErrorCode != codeUnknownMemberID || len(resp.Members) != 0 {
		t.Fatalf("v2 leave of an unknown member: %+v, want top-level UNKNOWN_MEMBER_ID", resp)
	}

	batch := kmsg.NewPtrLeaveGroupRequest()
	batch.Version = 5
	batch.Group = "g"
	batch.Members = []kmsg.LeaveGroupRequestMember{
		{InstanceID: kmsg.StringPtr("i-1")},                // admin removal by instance id
		{MemberID: pending.MemberID},                       // a pending member
		{MemberID: "nobody"},                               // unknown
		{MemberID: "x", InstanceID: kmsg.StringPtr("i-2")}, // unknown instance
	}
	resp := c.LeaveGroup(ctx, batch)
	want := []int16{0, 0, codeUnknownMemberID, codeUnknownMemberID}
	if resp.ErrorCode != 0 || len(resp.Members) != len(want) {
		t.Fatalf("batched leave: %+v", resp)
	}
	for i, m := range resp.Members {
		if m.ErrorCode != want[i] {
			t.Errorf("member %d (%s): %d, want %d", i, m.MemberID, m.ErrorCode, want[i])
		}
	}
	testkit.WaitFor(t, 10*time.Second, "the group to become empty", func() bool { return describe(ctx, c, "g").State == "Empty" })
	if j := c.JoinGroup(ctx, joinReq("g", pending.MemberID)); j.ErrorCode != codeUnknownMemberID {
		t.Fatalf("join with the id of a pending member that left: %d, want UNKNOWN_MEMBER_ID", j.ErrorCode)
	}
}

func TestCommitDuringCompletingRebalanceAsksToRejoin(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	req, ch := joinNew(t, ctx, c, "g")
	j := recv(t, ch)
	codes := commitCodes(c.OffsetCommit(ctx, commitReq("g", req.MemberID, j.Generation, "t", map[int32]int64{0: 1})))
	if codes[0] != codeRebalanceInProgress {
		t.Fatalf("commit between join and sync: %d, want REBALANCE_IN_PROGRESS", codes[0])
	}
	recv(t, goSync(ctx, c, syncReq("g", req.MemberID, j.Generation, nil)))
	// During PreparingRebalance the previous generation may still commit
	// (an eager consumer commits before it rejoins).
	_, chB := joinNew(t, ctx, c, "g")
	notYet(t, chB, "second member's join")
	codes = commitCodes(c.OffsetCommit(ctx, commitReq("g", req.MemberID, j.Generation, "t", map[int32]int64{0: 2})))
	if codes[0] != 0 {
		t.Fatalf("commit while preparing a rebalance: %d, want 0", codes[0])
	}
	if got := fetchOffset(t, ctx, c, "g", "t", 0); got != 2 {
		t.Fatalf("offset %d, want 2", got)
	}
}

func TestMaxGroupSize(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxGroupSize = 1
	c, _ := newLoaded(t, cfg)
	ctx := testCtx(t)
	req, ch := joinNew(t, ctx, c, "g")
	recv(t, ch)
	recv(t, goSync(ctx, c, syncReq("g", req.MemberID, 1, nil)))
	second := joinReq("g", "")
	second.MemberID = c.JoinGroup(ctx, second).MemberID
	if j := c.JoinGroup(ctx, second); j.ErrorCode != codeGroupMaxSizeReached {
		t.Fatalf("join beyond group.max.size: %d, want GROUP_MAX_SIZE_REACHED", j.ErrorCode)
	}
	if code := heartbeat(ctx, c, "g", req.MemberID, 1); code != 0 {
		t.Fatalf("existing member after a rejected join: %d", code)
	}
}

func TestInitialRebalanceDelayGathersMembers(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.InitialRebalanceDelay = 300 * time.Millisecond
	c, _ := newLoaded(t, cfg)
	ctx := testCtx(t)
	start := time.Now()
	_, chA := joinNew(t, ctx, c, "g")
	time.Sleep(20 * time.Millisecond)
	_, chB := joinNew(t, ctx, c, "g")
	a, b := recv(t, chA), recv(t, chB)
	if a.Generation != 1 || b.Generation != 1 {
		t.Fatalf("generations %d and %d, want both 1", a.Generation, b.Generation)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("first generation formed after %v, before the initial delay", waited)
	}
}
