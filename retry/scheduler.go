package retry

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

type itemState uint8

const (
	stateDue     itemState = iota // in the heap, waiting for its due time
	stateWaiting                  // due, waiting for an earlier record of its key
	stateReady                    // due and free to run
	stateRunning
	stateDropped // removed (done, superseded or revoked)
)

// item is one marker the Job holds.
type item struct {
	m      *Marker
	part   int32 // retry partition
	offset int64 // retry offset
	due    time.Time
	keyed  bool // held back behind earlier records of its key
	key    lockKey
	// invalid is set for a record of the retry topic that is not a valid
	// marker; running it dead-letters it.
	invalid bool
	raw     []byte // the raw record's text for an invalid marker
	err     error
	// epoch is the Job's epoch when the item was held (ExactlyOnce), and
	// txnDone is set once its outcome and offset went into a transaction.
	epoch   uint64
	txnDone bool
	// trace is the span context the marker carries (Tracing).
	trace trace.SpanContext

	state itemState
	index int // heap index while stateDue
}

type chainID struct {
	part   int32
	origin Origin
}

func (it *item) chain() chainID { return chainID{it.part, it.m.Origin} }

type dueHeap []*item

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	if h[i].part != h[j].part {
		return h[i].part < h[j].part
	}
	return h[i].offset < h[j].offset
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

// scheduler holds markers until they are due, runs due ones on at most conc
// goroutines at once, and in key order runs a key's markers only when they
// are the key's earliest pending record. A timer heap orders the due times:
// one timer for the earliest, so a marker far in the future never delays
// one that is due.
type scheduler struct {
	conc int
	// head returns the earliest pending record of a key; nil without key
	// order.
	head func(lockKey) (Origin, bool)
	// run runs an item and reports whether it is finished (false when it
	// was abandoned at shutdown and must run again after a restart).
	run func(ctx context.Context, it *item) bool
	// finished is called, under the scheduler's lock, for every item that
	// leaves the scheduler finished (done or superseded).
	finished func(it *item)

	mu       sync.Mutex
	heap     dueHeap
	ready    []*item
	waiting  map[lockKey][]*item
	byChain  map[chainID][]*item
	held     int // items not finished or dropped
	blocked  int // items in waiting
	running  int
	runningP map[int32]int
	stopping bool

	wake     chan struct{}
	idle     *sync.Cond // signalled when running decreases
	runWG    sync.WaitGroup
	loopDone chan struct{}
}

func newScheduler(conc int, head func(lockKey) (Origin, bool), run func(context.Context, *item) bool, finished func(*item)) *scheduler {
	s := &scheduler{
		conc:     conc,
		head:     head,
		run:      run,
		finished: finished,
		waiting:  map[lockKey][]*item{},
		byChain:  map[chainID][]*item{},
		runningP: map[int32]int{},
		wake:     make(chan struct{}, 1),
		loopDone: make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	return s
}

func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// add holds an item. An older held item of the same record that is not
// running is superseded by it and finished; the newer one keeps the larger
// attempt count of the two, so a duplicate marker written by a consumer
// that crashed before committing cannot make a record's attempts go back.
func (s *scheduler) add(it *item) {
	s.mu.Lock()
	if !it.invalid {
		id := it.chain()
		kept := s.byChain[id][:0]
		for _, old := range s.byChain[id] {
			if old.state == stateRunning {
				kept = append(kept, old)
				continue
			}
			if old.m.Attempts > it.m.Attempts {
				m := *it.m
				m.Attempts, m.History, m.FirstFailed = old.m.Attempts, old.m.History, old.m.FirstFailed
				it.m = &m
			}
			s.removeLocked(old)
			s.finishLocked(old)
		}
		s.byChain[id] = append(kept, it)
	}
	s.held++
	it.state = stateDue
	heap.Push(&s.heap, it)
	s.mu.Unlock()
	s.poke()
}

// removeLocked takes an item out of the heap, ready or waiting queues.
func (s *scheduler) removeLocked(it *item) {
	switch it.state {
	case stateDue:
		heap.Remove(&s.heap, it.index)
	case stateReady:
		for i, r := range s.ready {
			if r == it {
				s.ready = append(s.ready[:i], s.ready[i+1:]...)
				break
			}
		}
	case stateWaiting:
		w := s.waiting[it.key]
		for i, r := range w {
			if r == it {
				w = append(w[:i], w[i+1:]...)
				break
			}
		}
		if len(w) == 0 {
			delete(s.waiting, it.key)
		} else {
			s.waiting[it.key] = w
		}
		s.blocked--
	}
}

// finishLocked marks an item finished and forgets it.
func (s *scheduler) finishLocked(it *item) {
	s.dropLocked(it)
	if s.finished != nil {
		s.finished(it)
	}
}

func (s *scheduler) dropLocked(it *item) {
	it.state = stateDropped
	s.held--
	if it.invalid {
		return
	}
	id := it.chain()
	list := s.byChain[id]
	for i, r := range list {
		if r == it {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.byChain, id)
	} else {
		s.byChain[id] = list
	}
}

// eligibleLocked reports whether a due item may run now.
func (s *scheduler) eligibleLocked(it *item) bool {
	if s.head == nil || !it.keyed {
		return true
	}
	h, ok := s.head(it.key)
	return !ok || h == it.m.Origin
}

func (s *scheduler) promoteLocked(now time.Time) {
	for len(s.heap) > 0 && !s.heap[0].due.After(now) {
		it := heap.Pop(&s.heap).(*item)
		if s.eligibleLocked(it) {
			it.state = stateReady
			s.ready = append(s.ready, it)
		} else {
			it.state = stateWaiting
			s.waiting[it.key] = append(s.waiting[it.key], it)
			s.blocked++
		}
	}
}

// recheck moves the waiting items of a key that became eligible to ready.
func (s *scheduler) recheck(k lockKey) {
	s.mu.Lock()
	moved := s.recheckLocked(k)
	s.mu.Unlock()
	if moved {
		s.poke()
	}
}

func (s *scheduler) recheckLocked(k lockKey) bool {
	w := s.waiting[k]
	moved := false
	kept := w[:0]
	for _, it := range w {
		if s.eligibleLocked(it) {
			it.state = stateReady
			s.ready = append(s.ready, it)
			s.blocked--
			moved = true
		} else {
			kept = append(kept, it)
		}
	}
	if len(kept) == 0 {
		delete(s.waiting, k)
	} else {
		s.waiting[k] = kept
	}
	return moved
}

// loop dispatches due items until ctx is done.
func (s *scheduler) loop(ctx, workCtx context.Context) {
	defer close(s.loopDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		s.promoteLocked(time.Now())
		for !s.stopping && s.running < s.conc && len(s.ready) > 0 {
			it := s.ready[0]
			s.ready[0] = nil
			s.ready = s.ready[1:]
			it.state = stateRunning
			s.running++
			s.runningP[it.part]++
			s.runWG.Add(1)
			go s.execute(workCtx, it)
		}
		wait := time.Hour
		if len(s.heap) > 0 {
			wait = max(time.Until(s.heap[0].due), 0)
		}
		s.mu.Unlock()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.stopping = true
			s.mu.Unlock()
			return
		case <-timer.C:
		case <-s.wake:
		}
	}
}

func (s *scheduler) execute(ctx context.Context, it *item) {
	defer s.runWG.Done()
	finished := s.run(ctx, it)
	s.mu.Lock()
	s.running--
	s.runningP[it.part]--
	if s.runningP[it.part] == 0 {
		delete(s.runningP, it.part)
	}
	if finished {
		s.finishLocked(it)
		if it.keyed {
			s.recheckLocked(it.key)
		}
	} else {
		s.dropLocked(it)
	}
	s.idle.Broadcast()
	s.mu.Unlock()
	s.poke()
}

// dropPartition forgets the held items of a revoked partition that are not
// running (they stay uncommitted) and waits until none of its items run
// or ctx is done.
func (s *scheduler) dropPartition(ctx context.Context, p int32) error {
	s.mu.Lock()
	var drop []*item
	for _, it := range s.heap {
		if it.part == p {
			drop = append(drop, it)
		}
	}
	for _, it := range s.ready {
		if it.part == p {
			drop = append(drop, it)
		}
	}
	for _, w := range s.waiting {
		for _, it := range w {
			if it.part == p {
				drop = append(drop, it)
			}
		}
	}
	for _, it := range drop {
		s.removeLocked(it)
		s.dropLocked(it)
	}
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.idle.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	for s.runningP[p] > 0 && ctx.Err() == nil {
		s.idle.Wait()
	}
	s.mu.Unlock()
	return ctx.Err()
}

// load returns the held items and those of them blocked behind their key.
func (s *scheduler) load() (held, blocked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held, s.blocked
}

// counts returns the held items, those of them blocked behind their key,
// and the earliest first failure among them.
func (s *scheduler) counts() (held, blocked int, oldest time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, list := range s.byChain {
		for _, it := range list {
			if f := it.m.FirstFailed; !f.IsZero() && (oldest.IsZero() || f.Before(oldest)) {
				oldest = f
			}
		}
	}
	return s.held, s.blocked, oldest
}
