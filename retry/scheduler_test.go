package retry

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// harness runs a scheduler whose items call fn.
type harness struct {
	s        *scheduler
	mu       sync.Mutex
	ran      []*item
	at       map[*item]time.Time
	finished []*item
	cancel   context.CancelFunc
}

func newHarness(t *testing.T, conc int, head func(lockKey) (Origin, bool), fn func(*item)) *harness {
	h := &harness{at: map[*item]time.Time{}}
	h.s = newScheduler(conc, head, func(_ context.Context, it *item) bool {
		h.mu.Lock()
		h.ran = append(h.ran, it)
		h.at[it] = time.Now()
		h.mu.Unlock()
		if fn != nil {
			fn(it)
		}
		return true
	}, func(it *item) {
		h.mu.Lock()
		h.finished = append(h.finished, it)
		h.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go h.s.loop(ctx, context.Background())
	t.Cleanup(func() { cancel(); <-h.s.loopDone; h.s.runWG.Wait() })
	return h
}

func (h *harness) ranCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ran)
}

func newItem(off int64, due time.Time) *item {
	return &item{m: &Marker{Origin: Origin{"t", 0, off}}, offset: off, due: due, index: -1}
}

func TestAMarkerDueLaterNeverDelaysOneThatIsDue(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, nil, nil)
	later := newItem(0, time.Now().Add(time.Hour))
	now := newItem(1, time.Now())
	h.s.add(later)
	h.s.add(now)
	testkit.WaitFor(t, 10*time.Second, "the due marker to run", func() bool { return h.ranCount() == 1 })
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ran[0] != now {
		t.Fatalf("ran offset %d first, want the due one", h.ran[0].offset)
	}
	if held, _, _ := h.s.counts(); held != 1 {
		t.Errorf("held %d, want the later marker still held", held)
	}
}

func TestMarkersRunInDueOrderAndNeverBeforeTheirDueTime(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, nil, nil)
	start := time.Now()
	var items []*item
	for i := 0; i < 60; i++ {
		it := newItem(int64(i), start.Add(time.Duration(rand.IntN(150))*time.Millisecond))
		items = append(items, it)
	}
	for _, it := range items {
		h.s.add(it)
	}
	testkit.WaitFor(t, 10*time.Second, "all markers to run", func() bool { return h.ranCount() == len(items) })
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, it := range h.ran {
		if h.at[it].Before(it.due) {
			t.Errorf("offset %d ran %v before its due time", it.offset, it.due.Sub(h.at[it]))
		}
	}
	if !sort.SliceIsSorted(h.ran, func(i, j int) bool { return h.ran[i].due.Before(h.ran[j].due) }) {
		t.Errorf("with one worker, markers did not run in due order")
	}
	if len(h.finished) != len(items) {
		t.Errorf("%d finished, want %d", len(h.finished), len(items))
	}
}

func TestAtMostConcurrencyHandlersRunAtOnce(t *testing.T) {
	t.Parallel()
	var running, peak atomic.Int32
	release := make(chan struct{})
	h := newHarness(t, 3, nil, func(*item) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
	})
	for i := 0; i < 20; i++ {
		h.s.add(newItem(int64(i), time.Now()))
	}
	testkit.WaitFor(t, 10*time.Second, "three handlers to run", func() bool { return running.Load() == 3 })
	close(release)
	testkit.WaitFor(t, 10*time.Second, "all to run", func() bool { return h.ranCount() == 20 })
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d, want 3", p)
	}
}

func TestKeyOrderHoldsAMarkerBehindTheEarliestPendingRecordOfItsKey(t *testing.T) {
	t.Parallel()
	k := lockKey{"t", "k"}
	var mu sync.Mutex
	pending := map[int64]bool{1: true, 2: true, 3: true}
	head := func(lockKey) (Origin, bool) {
		mu.Lock()
		defer mu.Unlock()
		var offs []int64
		for o := range pending {
			offs = append(offs, o)
		}
		if len(offs) == 0 {
			return Origin{}, false
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		return Origin{"t", 0, offs[0]}, true
	}
	var h *harness
	h = newHarness(t, 4, head, func(it *item) {
		mu.Lock()
		delete(pending, it.m.Offset)
		mu.Unlock()
		h.s.recheck(k)
	})
	mk := func(off int64, due time.Time) *item {
		it := newItem(off, due)
		it.keyed, it.key = true, k
		return it
	}
	// Offset 3 and 2 are due now, 1 (the earliest record) only later.
	h.s.add(mk(3, time.Now()))
	h.s.add(mk(2, time.Now()))
	h.s.add(mk(1, time.Now().Add(50*time.Millisecond)))
	other := newItem(9, time.Now()) // no key order: not held back
	h.s.add(other)
	testkit.WaitFor(t, 10*time.Second, "all to run", func() bool { return h.ranCount() == 4 })
	h.mu.Lock()
	defer h.mu.Unlock()
	var order []int64
	for _, it := range h.ran {
		order = append(order, it.m.Offset)
	}
	if order[0] != 9 || order[1] != 1 || order[2] != 2 || order[3] != 3 {
		t.Errorf("run order %v, want [9 1 2 3]", order)
	}
}

func TestANewerMarkerOfARecordSupersedesAnOlderHeldOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, nil, nil)
	older := newItem(1, time.Now().Add(time.Hour))
	older.m.Attempts = 3
	newer := newItem(5, time.Now())
	newer.m = &Marker{Origin: older.m.Origin, Attempts: 1}
	h.s.add(older)
	h.s.add(newer)
	testkit.WaitFor(t, 10*time.Second, "the newer marker to run", func() bool { return h.ranCount() == 1 })
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ran[0].offset != 5 || h.ran[0].m.Attempts != 3 {
		t.Errorf("ran offset %d with %d attempts, want offset 5 keeping the 3 attempts", h.ran[0].offset, h.ran[0].m.Attempts)
	}
	if len(h.finished) != 2 || h.finished[0] != older {
		t.Errorf("finished %v, want the older marker first, then the newer", h.finished)
	}
	if held, _, _ := h.s.counts(); held != 0 {
		t.Errorf("held %d, want 0", held)
	}
}

func TestDroppingAPartitionForgetsItsHeldMarkersAndWaitsForRunningOnes(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := newHarness(t, 2, nil, func(it *item) {
		if it.offset == 0 {
			<-release
		}
	})
	running := newItem(0, time.Now())
	h.s.add(running)
	testkit.WaitFor(t, 10*time.Second, "the first marker to run", func() bool { return h.ranCount() == 1 })
	for i := int64(1); i < 5; i++ {
		h.s.add(newItem(i, time.Now().Add(time.Hour)))
	}
	other := newItem(7, time.Now().Add(time.Hour))
	other.part = 1
	h.s.add(other)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := h.s.dropPartition(ctx, 0); err == nil {
		t.Fatal("dropPartition returned while a marker of the partition was running")
	}
	close(release)
	if err := h.s.dropPartition(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if held, _, _ := h.s.counts(); held != 1 {
		t.Errorf("held %d after dropping partition 0, want only partition 1's marker", held)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.finished) != 1 || h.finished[0] != running {
		t.Errorf("finished %v: dropped markers must stay unfinished (uncommitted)", h.finished)
	}
}
