package verify

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// exitingMember stops on its own right after it starts when exit is set.
type exitingMember struct {
	id     string
	exit   chan struct{}
	closed chan struct{}
	once   sync.Once
	stops  bool
}

func (m *exitingMember) name() string { return m.id }
func (m *exitingMember) start(context.Context) {
	if m.stops {
		close(m.exit)
	}
}
func (m *exitingMember) crash()                  {}
func (m *exitingMember) close()                  { m.once.Do(func() { close(m.closed) }) }
func (m *exitingMember) exited() <-chan struct{} { return m.exit }

// TestQueueRunRestartsAMemberThatStoppedOnItsOwn: a member whose Run returned an error (every
// broker unreachable while it started its producer) is closed and replaced in its slot, as a
// process manager restarts a process that exited; one that keeps running is left alone, and
// stop closes the current one.
func TestQueueRunRestartsAMemberThatStoppedOnItsOwn(t *testing.T) {
	var mu sync.Mutex
	var built []*exitingMember
	cfg := QueueConfig{Config: Config{Logger: slog.New(slog.DiscardHandler)}}
	cfg.newMember = func(mc memberConfig) (member, error) {
		mu.Lock()
		defer mu.Unlock()
		m := &exitingMember{id: mc.name, exit: make(chan struct{}), closed: make(chan struct{}), stops: len(built) < 2}
		built = append(built, m)
		return m, nil
	}
	q := &queueRun{cfg: cfg, t0: time.Now(), rng: rand.New(rand.NewPCG(1, 1)), halt: make(chan struct{})}
	s := &slot{}
	q.members = []*slot{s}
	if err := q.launch(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(built)
		mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d members built, want 3: the two that stopped on their own restarted", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * restartDelay) // the third keeps running: no fourth
	if err := q.stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(built) != 3 || s.incarnation != 3 || s.m != built[2] {
		t.Fatalf("%d members, slot incarnation %d: want 3, the last one in the slot", len(built), s.incarnation)
	}
	for i, m := range built {
		select {
		case <-m.closed:
		default:
			t.Errorf("member %d (%s) was not closed", i, m.id)
		}
	}
}
