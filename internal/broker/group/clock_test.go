package group

import (
	"sync/atomic"
	"testing"
	"time"
)

// heldClock is a Clock whose timers, once due while it is frozen, wait for
// thaw before running (a frozen broker's clock): fired receives one value per
// timer held.
type heldClock struct {
	frozen atomic.Bool
	fired  chan struct{}
	thaw   chan struct{}
}

func (c *heldClock) AfterFunc(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		if c.frozen.Load() {
			c.fired <- struct{}{}
			<-c.thaw
		}
		f()
	})
}

func TestSessionTimeoutRunsOnTheConfiguredClock(t *testing.T) {
	t.Parallel()
	clock := &heldClock{fired: make(chan struct{}, 16), thaw: make(chan struct{})}
	cfg := testConfig()
	cfg.Clock = clock
	c, _ := newLoaded(t, cfg)
	ctx := testCtx(t)

	req, joined := joinNew(t, ctx, c, "g", withSession(20*time.Millisecond))
	resp := recv(t, joined)
	if resp.ErrorCode != 0 {
		t.Fatalf("join: error %d", resp.ErrorCode)
	}
	// Frozen from here: the member never heartbeats, so its session timer comes due, and
	// the frozen clock holds it.
	clock.frozen.Store(true)
	if code := c.SyncGroup(ctx, syncReq("g", req.MemberID, resp.Generation, map[string][]byte{req.MemberID: nil})).ErrorCode; code != 0 {
		t.Fatalf("sync: error %d", code)
	}
	select {
	case <-clock.fired:
	case <-time.After(10 * time.Second):
		t.Fatal("no timer came due on the configured clock")
	}
	if n := len(describe(ctx, c, "g").Members); n != 1 {
		t.Fatalf("the session expired while the clock held its timer: %d members, want 1", n)
	}
	clock.frozen.Store(false)
	close(clock.thaw)
	deadline := time.Now().Add(10 * time.Second)
	for len(describe(ctx, c, "g").Members) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the member outlived its session once the clock let the timer run")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
