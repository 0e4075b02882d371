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
	armed atomic.Int32 // len(by), so that the produce path takes no lock while none is armed
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
	if n <= 0 {
		delete(f.by, key)
	} else {
		if f.by == nil {
			f.by = map[tp]*produceFault{}
		}
		f.by[key] = &produceFault{left: n, err: err, delay: delay}
	}
	f.armed.Store(int32(len(f.by)))
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
	if pf.left--; pf.left == 0 {
		delete(f.by, key)
		f.armed.Store(int32(len(f.by)))
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
