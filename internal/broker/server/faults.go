package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// produceFaults fails the next produce requests of chosen partitions, for tests that need a
// client to see one batch refused while the batches after it succeed (how retries reorder a
// partition). The zero value has no faults armed.
type produceFaults struct {
	armed atomic.Int32 // partitions with a fault armed: the produce path checks only this when 0
	mu    sync.Mutex
	by    map[tp]*produceFault
}

// produceFault is one partition's armed fault.
type produceFault struct {
	left  int
	err   *kerr.Error
	delay time.Duration
}

// FailProduces makes this node answer the next n produce requests for topic/partition with err,
// after delay, without appending their batches: as a leader does whose ISR shrank for a moment
// (NOT_ENOUGH_REPLICAS) or that was briefly not the leader. Requests already being handled are
// not affected; n <= 0 disarms the fault.
func (b *Broker) FailProduces(topic string, partition int32, n int, err *kerr.Error, delay time.Duration) {
	f := &b.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	key := tp{topic, partition}
	_, had := f.by[key]
	if n <= 0 {
		if had {
			delete(f.by, key)
			f.armed.Add(-1)
		}
		return
	}
	if f.by == nil {
		f.by = map[tp]*produceFault{}
	}
	f.by[key] = &produceFault{left: n, err: err, delay: delay}
	if !had {
		f.armed.Add(1)
	}
}

// takeProduceFault uses up one armed failure of topic/partition, if any.
func (b *Broker) takeProduceFault(topic string, partition int32) (*produceFault, bool) {
	f := &b.faults
	if f.armed.Load() == 0 {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := tp{topic, partition}
	pf := f.by[key]
	if pf == nil {
		return nil, false
	}
	pf.left--
	if pf.left == 0 {
		delete(f.by, key)
		f.armed.Add(-1)
	}
	return pf, true
}

// fail waits out an injected fault's delay (or ctx) and returns its error.
func (pf *produceFault) fail(ctx context.Context, topic string, partition int32) error {
	t := time.NewTimer(pf.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return fmt.Errorf("%s-%d: injected fault: %w", topic, partition, pf.err)
}
