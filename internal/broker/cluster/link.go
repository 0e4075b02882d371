package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
)

// controllerLink is one broker's path to the controller, both ways: the broker's calls go out
// on it and the controller's metadata images come back on it. Faults on that path live here —
// a cut link refuses the calls and drops the images, a paused broker's calls and images wait, a
// broker's added latency and the link's own (SetControllerLatency) delay both, and ISR changes
// can be held in flight — so neither the
// broker nor the controller knows about them.
type controllerLink struct {
	e     *edge
	ctrl  *Controller
	to    server.Controller // the controller as this broker reaches it
	holds *isrHolds

	mu     sync.Mutex
	l      server.Listener // the broker, as it last registered
	missed bool            // an image was dropped or held: the newest is owed once the link allows
}

var _ server.Controller = (*controllerLink)(nil)

// enter waits while the broker is paused, refuses the call while the link is cut, and waits out
// the added latency of the broker and of its controller link.
func (l *controllerLink) enter(ctx context.Context) error {
	if err := l.e.gate.wait(ctx.Done()); err != nil {
		return fmt.Errorf("broker %d to the controller: %w", l.e.id, ctx.Err())
	}
	if !l.up() {
		return fmt.Errorf("broker %d to the controller: %w", l.e.id, ErrLinkDown)
	}
	sleepFor(l.e.ctrlLatencyNow(), ctx.Done())
	return nil
}

// up reports whether the link carries messages now.
func (l *controllerLink) up() bool {
	nw := l.e.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return l.e.ctrlReachLocked() && !l.e.gate.closed()
}

// deliver passes an image to the broker when the link carries it; otherwise the image is owed
// and flush delivers the newest one once the link is back (as a broker's metadata fetch catches
// up after a partition heals or a pause ends).
func (l *controllerLink) deliver(to server.Listener, img *meta.Image) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up() {
		l.missed = true
		return
	}
	if d := l.e.ctrlLatencyNow(); d > 0 {
		go func() {
			time.Sleep(d)
			to.OnImage(img)
		}()
		return
	}
	to.OnImage(img)
}

// flush delivers the newest image if one is owed and the link carries it now.
func (l *controllerLink) flush() {
	img := l.ctrl.Image()
	l.mu.Lock()
	owed, to := l.missed, l.l
	l.missed = false
	l.mu.Unlock()
	if owed && to != nil {
		l.deliver(to, img)
	}
}

// linkListener is the broker as the controller sees it: images sent to it travel the link.
type linkListener struct {
	link *controllerLink
	l    server.Listener
}

func (ll linkListener) OnImage(img *meta.Image) { ll.link.deliver(ll.l, img) }

// Register implements server.Controller.
func (l *controllerLink) Register(ctx context.Context, b meta.Broker, lst server.Listener) error {
	if err := l.enter(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	l.l = lst
	l.mu.Unlock()
	return l.to.Register(ctx, b, linkListener{l, lst})
}

// Heartbeat implements server.Controller.
func (l *controllerLink) Heartbeat(ctx context.Context) error {
	if err := l.enter(ctx); err != nil {
		return err
	}
	return l.to.Heartbeat(ctx)
}

// CreateTopics implements server.Controller. Over a cut link every topic times out.
func (l *controllerLink) CreateTopics(ctx context.Context, specs []server.TopicSpec, validateOnly bool) []error {
	if err := l.enter(ctx); err != nil {
		return timedOut(err, len(specs))
	}
	return l.to.CreateTopics(ctx, specs, validateOnly)
}

// DeleteTopics implements server.Controller.
func (l *controllerLink) DeleteTopics(ctx context.Context, names []string) []error {
	if err := l.enter(ctx); err != nil {
		return timedOut(err, len(names))
	}
	return l.to.DeleteTopics(ctx, names)
}

func timedOut(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = fmt.Errorf("%w: %w", kerr.RequestTimedOut, err)
	}
	return errs
}

// CreatePartitions implements server.Controller.
func (l *controllerLink) CreatePartitions(ctx context.Context, topic string, count int32, validateOnly bool) error {
	if err := l.enter(ctx); err != nil {
		return fmt.Errorf("%w: %w", kerr.RequestTimedOut, err)
	}
	return l.to.CreatePartitions(ctx, topic, count, validateOnly)
}

// AlterScramCredentials implements server.Controller.
func (l *controllerLink) AlterScramCredentials(ctx context.Context, changes []server.ScramChange) []error {
	if err := l.enter(ctx); err != nil {
		return timedOut(err, len(changes))
	}
	return l.to.AlterScramCredentials(ctx, changes)
}

// AllocateProducerID implements server.Controller.
func (l *controllerLink) AllocateProducerID(ctx context.Context) (int64, error) {
	if err := l.enter(ctx); err != nil {
		return -1, err
	}
	return l.to.AllocateProducerID(ctx)
}

// AlterISR forwards the ISR change unless the link holds this broker's ISR changes: then it
// waits, unanswered and unseen by the controller, until the hold is released (or ctx ends, and
// the controller never sees it).
func (l *controllerLink) AlterISR(ctx context.Context, topic string, p, leaderEpoch, partEpoch int32, isr []int32) error {
	if err := l.enter(ctx); err != nil {
		return err
	}
	if h := l.holds.get(l.e.id); h != nil {
		select {
		case h.held <- ISRChange{Topic: topic, Partition: p, ISR: slices.Clone(isr)}:
		default:
		}
		select {
		case <-h.release:
		case <-ctx.Done():
			return fmt.Errorf("cluster: ISR change of broker %d held on its controller link: %w", l.e.id, ctx.Err())
		}
	}
	return l.to.AlterISR(ctx, topic, p, leaderEpoch, partEpoch, isr)
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
