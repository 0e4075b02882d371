package group

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// gateStore is a memStore whose appends wait until the test lets them go,
// so that a test can act while a change is being persisted.
type gateStore struct {
	memStore
	entered chan struct{} // receives once per Append, when it starts
	release chan struct{} // each receive lets one Append proceed
}

func newGateStore() *gateStore {
	return &gateStore{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (s *gateStore) Append(ctx context.Context, records []Record) error {
	s.entered <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.memStore.Append(ctx, records)
}

// TestCommitCreatingAGroupSurvivesARejectedJoinDuringItsAppend checks that a
// simple commit to a new group is visible once acknowledged, even if a
// JoinGroup rejected while the commit was being persisted saw the group
// (still without offsets) and dropped it as unused.
func TestCommitCreatingAGroupSurvivesARejectedJoinDuringItsAppend(t *testing.T) {
	c := NewCoordinator(testConfig(), nil)
	t.Cleanup(c.Close)
	st := newGateStore()
	if err := c.Load(context.Background(), 0, st, nil); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	done := make(chan *kmsg.OffsetCommitResponse, 1)
	go func() { done <- c.OffsetCommit(ctx, commitReq("g", "", -1, "t", map[int32]int64{0: 10})) }()
	recv(t, st.entered)

	// A consumer with a stale member id: rejected, and the group it found
	// has no members, no generation and no offsets yet.
	if code := c.JoinGroup(ctx, joinReq("g", "stale-member")).ErrorCode; code != codeUnknownMemberID {
		t.Fatalf("join with an unknown member id: %d, want UNKNOWN_MEMBER_ID", code)
	}

	st.release <- struct{}{}
	if codes := commitCodes(recv(t, done)); codes[0] != 0 {
		t.Fatalf("commit: %v", codes)
	}
	if got := fetchOffset(t, ctx, c, "g", "t", 0); got != 10 {
		t.Fatalf("offset after an acknowledged commit: %d, want 10", got)
	}
}

// TestOffsetsOfAGroupBeingDeletedStayVisibleUntilTheDeletionIsDurable checks
// that OffsetFetch keeps answering a group's committed offsets while its
// deletion is being persisted: the deletion may still fail, and then the
// offsets were never gone.
func TestOffsetsOfAGroupBeingDeletedStayVisibleUntilTheDeletionIsDurable(t *testing.T) {
	c := NewCoordinator(testConfig(), nil)
	t.Cleanup(c.Close)
	st := newGateStore()
	if err := c.Load(context.Background(), 0, st, nil); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	committed := make(chan *kmsg.OffsetCommitResponse, 1)
	go func() { committed <- c.OffsetCommit(ctx, commitReq("g", "", -1, "t", map[int32]int64{0: 10})) }()
	recv(t, st.entered)
	st.release <- struct{}{}
	if codes := commitCodes(recv(t, committed)); codes[0] != 0 {
		t.Fatalf("commit: %v", codes)
	}

	deleted := make(chan *kmsg.DeleteGroupsResponse, 1)
	go func() {
		r := kmsg.NewPtrDeleteGroupsRequest()
		r.Groups = []string{"g"}
		deleted <- c.DeleteGroups(ctx, r)
	}()
	recv(t, st.entered)
	if got := fetchOffset(t, ctx, c, "g", "t", 0); got != 10 {
		t.Errorf("offset while the deletion is being persisted: %d, want 10", got)
	}
	st.setFail(ErrUnavailable)
	st.release <- struct{}{}
	if code := recv(t, deleted).Groups[0].ErrorCode; code != codeCoordinatorNotAvailable {
		t.Fatalf("delete with a failing store: %d, want COORDINATOR_NOT_AVAILABLE", code)
	}
	if got := fetchOffset(t, ctx, c, "g", "t", 0); got != 10 {
		t.Fatalf("offset after the deletion failed: %d, want 10", got)
	}
}
