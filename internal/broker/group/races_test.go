package group

import (
	"context"
	"testing"
	"time"

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
	t.Parallel()
	st := newGateStore()
	c := loadedWith(t, testConfig(), st)
	ctx := testCtx(t)
	done := commitAsync(ctx, c, "g", 10)
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
	t.Parallel()
	st := newGateStore()
	c := loadedWith(t, testConfig(), st)
	ctx := testCtx(t)
	committed := commitAsync(ctx, c, "g", 10)
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

// lateStore is a memStore whose appends take a while to become durable and
// then succeed even if ctx ended meanwhile: the write was already under way,
// as a replicated append may reach the high watermark as it is cancelled.
type lateStore struct {
	memStore
	entered chan struct{}
	delay   time.Duration
}

func (s *lateStore) Append(ctx context.Context, records []Record) error {
	s.entered <- struct{}{}
	time.Sleep(s.delay)
	return s.memStore.Append(context.WithoutCancel(ctx), records)
}

// TestCommitAcknowledgedAcrossUnloadAndReloadIsReplayed checks that Unload
// waits for the append in flight: a broker that loses and regains an offsets
// partition replays its log once Unload returned, and a commit acknowledged
// by the unloaded shard must be in that log.
func TestCommitAcknowledgedAcrossUnloadAndReloadIsReplayed(t *testing.T) {
	t.Parallel()
	st := &lateStore{entered: make(chan struct{}, 4), delay: 100 * time.Millisecond}
	c := loadedWith(t, testConfig(), st)
	ctx := testCtx(t)
	committed := commitAsync(ctx, c, "g", 20)
	recv(t, st.entered)

	c.Unload(0)
	if err := c.Load(ctx, 0, st, st.replay()); err != nil {
		t.Fatal(err)
	}
	codes := commitCodes(recv(t, committed))
	if codes[0] != 0 {
		return // refused: nothing to check
	}
	if got := fetchOffset(t, ctx, c, "g", "t", 0); got != 20 {
		t.Fatalf("offset after reload: %d, want the acknowledged 20", got)
	}
}

// TestReloadingALoadedPartitionKeepsCommitsAcknowledgedMeanwhile checks that
// Load of a partition that is already loaded stops serving the old state
// before it replays: a commit the old state acknowledged after the replay
// read the log would be missing from the new one.
func TestReloadingALoadedPartitionKeepsCommitsAcknowledgedMeanwhile(t *testing.T) {
	t.Parallel()
	c, st := newLoaded(t, testConfig())
	ctx := testCtx(t)
	if codes := commitCodes(c.OffsetCommit(ctx, commitReq("g", "", -1, "t", map[int32]int64{0: 10}))); codes[0] != 0 {
		t.Fatalf("first commit: %v", codes)
	}
	var during []int16
	// The replay reads the log up to its end when loading starts; the
	// commit comes after that.
	err := c.Load(ctx, 0, st, replayOf(st.snapshot(), func() {
		during = commitCodes(c.OffsetCommit(ctx, commitReq("g", "", -1, "t", map[int32]int64{0: 20})))
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := int64(10)
	if during[0] == 0 {
		want = 20
	}
	if got := fetchOffset(t, ctx, c, "g", "t", 0); got != want {
		t.Fatalf("offset after reload: %d, want %d (commit during the reload answered %v)", got, want, during)
	}
}
