package group

import (
	"context"
	"sync/atomic"
	"testing"
)

// panicStore panics in its next n appends, then appends as memStore.
type panicStore struct {
	memStore
	n atomic.Int32
}

func (s *panicStore) Append(ctx context.Context, records []Record) error {
	if s.n.Add(-1) >= 0 {
		panic("injected: Store.Append")
	}
	return s.memStore.Append(ctx, records)
}

// A panic in the Store (the broker's code, run by the shard's writer) fails the commits of that
// append with UNKNOWN_SERVER_ERROR; the writer and the process go on.
func TestAPanicInTheStoreFailsItsCommitsAndTheCoordinatorGoesOn(t *testing.T) {
	t.Parallel()
	st := &panicStore{}
	st.n.Store(1)
	c := loadedWith(t, testConfig(), st)
	ctx := testCtx(t)
	if codes := commitCodes(c.OffsetCommit(ctx, commitReq("g", "", -1, "t", map[int32]int64{0: 1}))); codes[0] != codeUnknownServerError {
		t.Fatalf("commit whose append panicked answered %v, want UNKNOWN_SERVER_ERROR", codes)
	}
	if codes := commitCodes(c.OffsetCommit(ctx, commitReq("g", "", -1, "t", map[int32]int64{0: 2}))); codes[0] != 0 {
		t.Fatalf("commit after the panic answered %v", codes)
	}
	if got := len(st.snapshot()); got != 1 {
		t.Fatalf("store holds %d records, want the second commit's", got)
	}
}

// A panic in a write's prepare (the coordinator's own request code) answers that request
// UNKNOWN_SERVER_ERROR through its abort, and the writer serves the next ones.
func TestAPanicInAWritePrepareAnswersItUnknownServerError(t *testing.T) {
	t.Parallel()
	c := loadedWith(t, testConfig(), &memStore{})
	c.mu.Lock()
	sh := c.shards[0]
	c.mu.Unlock()
	got := make(chan int16, 1)
	sh.enqueue(&writeOp{
		prepare: func() ([]Record, func(error)) { panic("injected: prepare") },
		abort:   func(code int16) { got <- code },
	})
	if code := <-got; code != codeUnknownServerError {
		t.Fatalf("the op that panicked was answered %d, want UNKNOWN_SERVER_ERROR", code)
	}
	if codes := commitCodes(c.OffsetCommit(testCtx(t), commitReq("g", "", -1, "t", map[int32]int64{0: 1}))); codes[0] != 0 {
		t.Fatalf("commit after the panic answered %v", codes)
	}
}
