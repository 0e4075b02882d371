package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/kafkaguard/kafkaguard/internal/broker/server"
)

// controllerLink is one broker's path to the controller: it forwards every call, and it is where
// faults on that path are injected (ISR changes held in flight), so neither the broker nor the
// controller knows about them.
type controllerLink struct {
	*Controller
	id    int32
	holds *isrHolds
}

var _ server.Controller = controllerLink{}

// AlterISR forwards the ISR change unless the link holds this broker's ISR changes: then it
// waits, unanswered and unseen by the controller, until the hold is released (or ctx ends, and
// the controller never sees it).
func (l controllerLink) AlterISR(ctx context.Context, from int32, topic string, p, leaderEpoch, partEpoch int32, isr []int32) error {
	if h := l.holds.get(l.id); h != nil {
		select {
		case h.held <- ISRChange{Topic: topic, Partition: p, ISR: slices.Clone(isr)}:
		default:
		}
		select {
		case <-h.release:
		case <-ctx.Done():
			return fmt.Errorf("cluster: ISR change of broker %d held on its controller link: %w", l.id, ctx.Err())
		}
	}
	return l.Controller.AlterISR(ctx, from, topic, p, leaderEpoch, partEpoch, isr)
}

// isrHolds are the brokers whose ISR changes their controller links hold.
type isrHolds struct {
	mu sync.Mutex
	by map[int32]*isrHold
}

type isrHold struct {
	held    chan ISRChange
	release chan struct{}
}

func (hs *isrHolds) get(id int32) *isrHold {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.by[id]
}

// ISRChange is an ISR change a partition's leader proposed.
type ISRChange struct {
	Topic     string
	Partition int32
	ISR       []int32
}

// HoldISRChanges makes broker id's controller link hold the ISR changes (AlterISR) its
// partitions propose: each waits in flight, not yet seen by the controller, until release is
// called, and then reaches the controller as sent. held receives each change as the link holds it
// (changes beyond its buffer are held without a notice). It models a slow path to
// the controller: the leader has proposed a change that is neither committed nor refused yet.
// Holding a broker whose changes are already held, or an unknown broker, is an error.
func (c *Cluster) HoldISRChanges(id int32) (held <-chan ISRChange, release func(), err error) {
	if _, err := c.node(id); err != nil {
		return nil, nil, err
	}
	hs := c.holds
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.by[id] != nil {
		return nil, nil, fmt.Errorf("%w: the ISR changes of broker %d are already held", ErrBrokerState, id)
	}
	h := &isrHold{held: make(chan ISRChange, 64), release: make(chan struct{})}
	hs.by[id] = h
	c.lg.Warn("fault: holding ISR changes", "broker", id)
	var once sync.Once
	return h.held, func() {
		once.Do(func() {
			hs.mu.Lock()
			delete(hs.by, id)
			hs.mu.Unlock()
			close(h.release)
			c.lg.Warn("fault: releasing held ISR changes", "broker", id)
		})
	}, nil
}
