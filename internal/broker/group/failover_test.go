package group

import (
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// waitRebalancing waits until group g of c prepares a rebalance.
func waitRebalancing(t *testing.T, c *Coordinator) {
	t.Helper()
	ctx := testCtx(t)
	testkit.WaitFor(t, 5*time.Second, "the group to prepare a rebalance", func() bool {
		return describe(ctx, c, "g").State == "PreparingRebalance"
	})
}

// A rebalance whose group metadata could not be persisted (the coordinator lost its ISR, say,
// while clients still reached it) leaves nothing in the log: a coordinator that loads the
// partition afterwards continues from the last persisted generation, as Kafka's does. So
// generation numbers are unique among persisted generations only: a follower that rejoins the
// loaded group with the same subscription gets the persisted generation and assignment back
// without a rebalance, and the next rebalance hands out the number the lost one had. (A member
// therefore cannot tell two generations apart by number across a coordinator move.)
func TestReloadContinuesFromThePersistedGenerationNotALostRebalance(t *testing.T) {
	t.Parallel()
	c, st := newLoaded(t, testConfig())
	ctx := testCtx(t)

	// Generation 2: leader a, follower b, both assignments persisted.
	reqA, chA := joinNew(t, ctx, c, "g")
	ja := recv(t, chA)
	recv(t, goSync(ctx, c, syncReq("g", reqA.MemberID, ja.Generation, map[string][]byte{reqA.MemberID: []byte("a")})))
	reqB, chB := joinNew(t, ctx, c, "g")
	chA = goJoin(ctx, c, reqA)
	ja, jb := recv(t, chA), recv(t, chB)
	if ja.Generation != 2 || jb.Generation != 2 || ja.LeaderID != reqA.MemberID {
		t.Fatalf("second rebalance: generations %d, %d, leader %s; want 2, 2, %s", ja.Generation, jb.Generation, ja.LeaderID, reqA.MemberID)
	}
	chSyncB := goSync(ctx, c, syncReq("g", reqB.MemberID, 2, nil))
	if s := recv(t, goSync(ctx, c, syncReq("g", reqA.MemberID, 2, map[string][]byte{reqA.MemberID: []byte("a"), reqB.MemberID: []byte("b")}))); s.ErrorCode != 0 {
		t.Fatalf("leader's SyncGroup of generation 2: code %d", s.ErrorCode)
	}
	if s := recv(t, chSyncB); s.ErrorCode != 0 || string(s.MemberAssignment) != "b" {
		t.Fatalf("follower's SyncGroup of generation 2: %+v", s)
	}

	// The coordinator can no longer persist: generation 3 is handed out by JoinGroup, but its
	// SyncGroup fails.
	st.setFail(ErrUnavailable)
	chA = goJoin(ctx, c, reqA) // the leader's rejoin starts a rebalance
	waitRebalancing(t, c)
	chB = goJoin(ctx, c, reqB)
	ja, jb = recv(t, chA), recv(t, chB)
	if ja.Generation != 3 || jb.Generation != 3 {
		t.Fatalf("rebalance while unable to persist: generations %d, %d; want 3", ja.Generation, jb.Generation)
	}
	if s := recv(t, goSync(ctx, c, syncReq("g", reqA.MemberID, 3, map[string][]byte{reqA.MemberID: []byte("a3"), reqB.MemberID: []byte("b3")}))); s.ErrorCode != codeCoordinatorNotAvailable {
		t.Fatalf("leader's SyncGroup of generation 3 that cannot be persisted: code %d, want COORDINATOR_NOT_AVAILABLE", s.ErrorCode)
	}

	// The next coordinator loads generation 2.
	c2 := NewCoordinator(testConfig(), nil)
	defer c2.Close()
	if err := c2.Load(ctx, 0, &memStore{}, st.replay()); err != nil {
		t.Fatal(err)
	}
	if j := recv(t, goJoin(ctx, c2, reqB)); j.ErrorCode != 0 || j.Generation != 2 {
		t.Fatalf("follower rejoining the reloaded group: generation %d, code %d; want 2 (the persisted one), 0", j.Generation, j.ErrorCode)
	}
	if s := recv(t, goSync(ctx, c2, syncReq("g", reqB.MemberID, 2, nil))); s.ErrorCode != 0 || string(s.MemberAssignment) != "b" {
		t.Fatalf("follower's SyncGroup with the reloaded group: %+v, want generation 2's assignment b", s)
	}
	chA = goJoin(ctx, c2, reqA)
	waitRebalancing(t, c2)
	chB = goJoin(ctx, c2, reqB)
	ja, jb = recv(t, chA), recv(t, chB)
	if ja.ErrorCode != 0 || ja.Generation != 3 || jb.Generation != 3 {
		t.Fatalf("leader rejoining the reloaded group: generations %d, %d, code %d; want 3 again", ja.Generation, jb.Generation, ja.ErrorCode)
	}
}
