package cluster

import (
	"testing"
	"time"
)

func TestPausedGateHoldsTimersUntilResume(t *testing.T) {
	t.Parallel()
	var g gate
	g.close()
	ranWhileClosed := make(chan bool, 1)
	g.AfterFunc(0, func() { ranWhileClosed <- g.closed() })
	// The timer is due at once; a gate that did not hold it would run it while still closed.
	time.Sleep(50 * time.Millisecond)
	g.open()
	select {
	case closed := <-ranWhileClosed:
		if closed {
			t.Fatal("a paused broker's timer ran before it resumed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the timer never ran after resume")
	}
}
