package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/ordering"
)

// SaramaHandlerFunc processes one sarama message, with the same contract
// as Handler.
type SaramaHandlerFunc func(ctx context.Context, m *sarama.ConsumerMessage) error

// saramaClaim is one partition claimed by a session.
type saramaClaim struct {
	sess      sarama.ConsumerGroupSession
	last      ordering.Checkpoint // last marked (or committed before the claim); guarded by markMu
	submitted bool                // guarded by SaramaHandler.mu
	waiting   bool                // waiting for buffer room; guarded by SaramaHandler.mu
}

// SaramaHandler gives a sarama ConsumerGroup the semantics of Consumer: it
// is a sarama.ConsumerGroupHandler that hands messages to a dispatcher with
// the chosen Order and marks and commits, for each claim, only the offset
// below which every message was handled, with the same commit metadata as
// Consumer (so the two can take over from each other). Create it with
// NewSarama and pass it to ConsumerGroup.Consume, or call Run. A
// SaramaHandler serves one ConsumerGroup; its methods are safe for
// concurrent use.
//
// When a claim ends (a rebalance or the end of the session) the handler
// stops taking its messages, waits for its running records (at most the
// drain timeout), marks and commits. When the context given to Run ends it
// first waits for every record it holds. While the buffer is full, claims
// stop reading their Messages channel, so sarama stops fetching once its
// channel buffers fill; a cooperative revocation that comes meanwhile is
// seen when room frees up or when sarama's Rebalance.Timeout ends the
// session, so keep DrainTimeout below that timeout.
type SaramaHandler struct {
	eng     *engine[*sarama.ConsumerMessage]
	cfg     config
	log     *slog.Logger
	client  sarama.Client
	group   string
	commits atomic.Int64

	markMu sync.Mutex // serialises taking checkpoints and marking them

	mu       sync.Mutex
	claims   map[ordering.TopicPartition]*saramaClaim
	stopping context.Context // Run's context: its end means shutdown
	closed   bool
	stopLoop map[sarama.ConsumerGroupSession]chan struct{}
}

var _ sarama.ConsumerGroupHandler = (*SaramaHandler)(nil)

// NewSarama returns a SaramaHandler that runs handler for the messages of
// group. client is the sarama client the ConsumerGroup is built from (see
// sarama.NewConsumerGroupFromClient); the handler reads the committed
// metadata through it. Its Consumer.Offsets.AutoCommit.Enable must be false.
// Every invalid option is reported at once, each
// wrapping ErrInvalidOption. Close the handler when the group has stopped.
func NewSarama(client sarama.Client, group string, handler SaramaHandlerFunc, opts ...SaramaOpt) (*SaramaHandler, error) {
	cfg := newConfig(opts)
	errs := []error{cfg.validate()}
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
	}
	if handler == nil {
		bad("handler is nil")
	}
	if group == "" {
		bad("group is empty")
	}
	if client == nil {
		bad("sarama client is nil")
	} else {
		sc := client.Config()
		if sc.Consumer.Offsets.AutoCommit.Enable {
			bad("Consumer.Offsets.AutoCommit.Enable must be false: the handler commits what it has handled")
		}
		if rt := sc.Consumer.Group.Rebalance.Timeout; cfg.drainTimeout >= rt {
			bad("DrainTimeout %v must be below Consumer.Group.Rebalance.Timeout %v, or a revoked claim outlives the rebalance",
				cfg.drainTimeout, rt)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h := &SaramaHandler{
		cfg:      cfg,
		log:      cfg.log(),
		client:   client,
		group:    group,
		claims:   make(map[ordering.TopicPartition]*saramaClaim),
		stopLoop: make(map[sarama.ConsumerGroupSession]chan struct{}),
	}
	if client.Config().Consumer.Offsets.Initial == sarama.OffsetNewest {
		h.log.Warn("consume: Consumer.Offsets.Initial is OffsetNewest: a new group skips the records written before it joined",
			"group", group)
	}
	var err error
	h.eng, err = newEngine(cfg, func(ctx context.Context, m *sarama.ConsumerMessage) error { return handler(ctx, m) },
		saramaRecord)
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	return h, nil
}

// saramaRecord copies a sarama message into a kgo.Record for the retry
// path and failure reports.
func saramaRecord(m *sarama.ConsumerMessage) *kgo.Record {
	r := &kgo.Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value,
		Timestamp: m.Timestamp}
	for _, h := range m.Headers {
		if h != nil {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: string(h.Key), Value: h.Value})
		}
	}
	return r
}

// Run calls group.Consume with the handler until ctx is done or the group
// is closed, starting a new session after each one ends. When ctx ends,
// every claim waits for the records the handler holds (at most the drain
// timeout) before it commits. It returns nil once ctx is done, or
// sarama.ErrClosedConsumerGroup.
func (h *SaramaHandler) Run(ctx context.Context, group sarama.ConsumerGroup, topics []string) error {
	h.mu.Lock()
	h.stopping = ctx
	h.mu.Unlock()
	for {
		err := group.Consume(ctx, topics, h)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, sarama.ErrClosedConsumerGroup) {
			return err
		}
		if err != nil {
			h.log.Warn("consume: sarama session ended", "group", h.group, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// Close stops the handler's workers: running handlers see their context
// cancelled. Call it once the ConsumerGroup has stopped. It always returns
// nil.
func (h *SaramaHandler) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	return h.eng.d.Close()
}

// Setup implements sarama.ConsumerGroupHandler: it starts the periodic
// commits of the session.
func (h *SaramaHandler) Setup(sess sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if aw, ok := h.cfg.parker.(AssignmentAware); ok {
		for topic, ps := range sess.Claims() {
			for _, p := range ps {
				aw.Forget(topic, p)
			}
		}
	}
	stop := make(chan struct{})
	h.stopLoop[sess] = stop
	go h.commitLoop(sess, stop)
	h.cfg.metrics.rebalanced(h.group, "assigned")
	return nil
}

// Cleanup implements sarama.ConsumerGroupHandler: it stops the periodic
// commits of the session. Every claim has committed by then.
func (h *SaramaHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if stop, ok := h.stopLoop[sess]; ok {
		close(stop)
		delete(h.stopLoop, sess)
	}
	h.cfg.metrics.rebalanced(h.group, "released")
	return nil
}

// ConsumeClaim implements sarama.ConsumerGroupHandler: it hands the claim's
// messages to the dispatcher, and when the claim ends waits for its running
// records, marks the committable offset and commits.
func (h *SaramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	tp := ordering.TopicPartition{Topic: claim.Topic(), Partition: claim.Partition()}
	ctx := sess.Context()
	cp, last := h.committedAt(tp, claim.InitialOffset())
	err := h.eng.d.Assign(tp, cp)
	if errors.Is(err, ordering.ErrAssigned) {
		_, _ = h.eng.d.Revoke(context.Background(), tp)
		err = h.eng.d.Assign(tp, cp)
	}
	if errors.Is(err, ordering.ErrClosed) {
		return ErrClosed
	}
	if err != nil {
		h.log.Warn("consume: assign", "partition", tp.String(), "err", err)
	}
	cl := &saramaClaim{sess: sess, last: last}
	h.mu.Lock()
	h.claims[tp] = cl
	h.mu.Unlock()
	h.log.Info("consume: partition claimed", "partition", tp.String(), "committed", last.Offset)

	h.consumeClaim(ctx, tp, cl, claim)

	wait := h.cfg.drainTimeout
	if h.shuttingDown() {
		h.eng.stopRetries() // a record waiting for a retry runs again on the next start
		dctx, cancel := context.WithTimeout(context.Background(), h.cfg.drainTimeout)
		if err := h.eng.d.Drain(dctx); err != nil {
			h.log.Warn("consume: records still running at the drain timeout; they run again on the next start", "err", err)
		}
		cancel()
		wait = 0
	}
	rctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	final, err := h.eng.d.Revoke(rctx, tp)
	if err != nil && wait > 0 {
		h.log.Warn("consume: records still running at the drain timeout; the partition's next owner runs them again",
			"partition", tp.String(), "err", err)
	}
	h.eng.signalRoom()
	h.markMu.Lock()
	h.markLocked(tp, cl, final)
	h.markMu.Unlock()
	sess.Commit()
	h.commits.Add(1)
	h.mu.Lock()
	if h.claims[tp] == cl {
		delete(h.claims, tp)
	}
	h.mu.Unlock()
	h.log.Info("consume: claim released", "partition", tp.String(), "committed", final.Offset)
	return nil
}

func (h *SaramaHandler) consumeClaim(ctx context.Context, tp ordering.TopicPartition, cl *saramaClaim, claim sarama.ConsumerGroupClaim) {
	for {
		for h.eng.held() >= h.cfg.maxBuffered {
			if ctx.Err() != nil {
				return
			}
			h.setWaiting(cl, true)
			h.eng.waitRoom(ctx)
		}
		h.setWaiting(cl, false)
		select {
		case m, ok := <-claim.Messages():
			if !ok || !h.submit(ctx, tp, cl, m) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (h *SaramaHandler) setWaiting(cl *saramaClaim, w bool) {
	h.mu.Lock()
	cl.waiting = w
	h.mu.Unlock()
}

// submit hands m to the dispatcher. It reports whether the claim may go on:
// after a message that was not dispatched (the session ended while it
// waited for room, or the handler was closed) the claim must take no later
// one, or the committable offset would pass the message that never ran.
func (h *SaramaHandler) submit(ctx context.Context, tp ordering.TopicPartition, cl *saramaClaim, m *sarama.ConsumerMessage) bool {
	msg := ordering.Message[*sarama.ConsumerMessage]{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m}
	err := h.eng.d.Submit(ctx, msg)
	if errors.Is(err, ordering.ErrOffsetOrder) {
		h.mu.Lock()
		first := !cl.submitted
		h.mu.Unlock()
		if first {
			// The claim starts below the committed offset (an offset
			// reset): restart the partition there.
			if _, rerr := h.eng.d.Revoke(context.Background(), tp); rerr == nil {
				if aerr := h.eng.d.Assign(tp, ordering.Checkpoint{Offset: m.Offset}); aerr == nil {
					h.log.Warn("consume: claim starts below the committed offset (offset reset); records from there run again",
						"partition", tp.String(), "offset", m.Offset)
					err = h.eng.d.Submit(ctx, msg)
				}
			}
		}
	}
	switch {
	case err == nil:
		h.mu.Lock()
		cl.submitted = true
		h.mu.Unlock()
		return true
	case errors.Is(err, ordering.ErrOffsetOrder):
		// Delivered again after a later message: the earlier delivery
		// is kept.
		h.log.Warn("consume: message delivered again after a later one; the earlier delivery is kept",
			"partition", tp.String(), "offset", m.Offset, "err", err)
		return true
	case ctx.Err() != nil:
		// The session ended: the message runs on the next claim.
	default:
		h.log.Warn("consume: message not dispatched; the claim stops and it runs again on the next claim",
			"partition", tp.String(), "offset", m.Offset, "err", err)
	}
	return false
}

func (h *SaramaHandler) shuttingDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopping != nil && h.stopping.Err() != nil
}

// committedAt reads the partition's committed offset and metadata. It
// returns the checkpoint to assign the claim at (its initial offset, with
// the metadata if the claim starts at the committed offset) and what the
// session's offset manager holds as marked.
func (h *SaramaHandler) committedAt(tp ordering.TopicPartition, initial int64) (assign, marked ordering.Checkpoint) {
	assign = ordering.Checkpoint{Offset: max(initial, -1)}
	marked = ordering.Checkpoint{Offset: -1}
	block, err := h.fetchCommitted(tp)
	if err != nil {
		h.log.Warn("consume: reading the committed metadata failed; records done above the committed offset may run again",
			"partition", tp.String(), "err", err)
		return assign, marked
	}
	if block.Offset >= 0 {
		marked = ordering.Checkpoint{Offset: block.Offset, Metadata: block.Metadata}
		if block.Offset == initial {
			assign.Metadata = block.Metadata
		}
	}
	return assign, marked
}

func (h *SaramaHandler) fetchCommitted(tp ordering.TopicPartition) (*sarama.OffsetFetchResponseBlock, error) {
	coord, err := h.client.Coordinator(h.group)
	if err != nil {
		return nil, err
	}
	req := sarama.NewOffsetFetchRequest(h.client.Config().Version, h.group, map[string][]int32{tp.Topic: {tp.Partition}})
	resp, err := coord.FetchOffset(req)
	if err != nil {
		return nil, err
	}
	if !errors.Is(resp.Err, sarama.ErrNoError) {
		return nil, resp.Err
	}
	block := resp.GetBlock(tp.Topic, tp.Partition)
	if block == nil {
		return nil, fmt.Errorf("consume: no offset for %s in the OffsetFetch response", tp)
	}
	if !errors.Is(block.Err, sarama.ErrNoError) {
		return nil, block.Err
	}
	return block, nil
}

// markLocked marks cp for the claim if it moved: MarkOffset when the offset
// advanced, ResetOffset when only the metadata changed (sarama's MarkOffset
// ignores an offset that did not advance). The caller holds markMu.
func (h *SaramaHandler) markLocked(tp ordering.TopicPartition, cl *saramaClaim, cp ordering.Checkpoint) bool {
	switch {
	case cp.Offset < 0:
		return false
	case cp.Offset > cl.last.Offset:
		cl.sess.MarkOffset(tp.Topic, tp.Partition, cp.Offset, cp.Metadata)
	case cp.Offset == cl.last.Offset && cp.Metadata != cl.last.Metadata:
		cl.sess.ResetOffset(tp.Topic, tp.Partition, cp.Offset, cp.Metadata)
	default:
		return false
	}
	cl.last = cp
	return true
}

func (h *SaramaHandler) commitLoop(sess sarama.ConsumerGroupSession, stop chan struct{}) {
	t := time.NewTicker(h.cfg.commitInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		claims := make(map[ordering.TopicPartition]*saramaClaim)
		for tp, cl := range h.claims {
			if cl.sess == sess {
				claims[tp] = cl
			}
		}
		h.mu.Unlock()
		moved := false
		h.markMu.Lock()
		for tp, cl := range claims {
			// A revoked partition has no checkpoint: its claim marks
			// its final one itself.
			if cp, err := h.eng.d.Checkpoint(tp); err == nil && h.markLocked(tp, cl, cp) {
				moved = true
			}
		}
		h.markMu.Unlock()
		if moved {
			sess.Commit()
			h.commits.Add(1)
		}
	}
}

// Stats returns a snapshot of the handler's load. Paused counts the claims
// waiting for buffer room; Commits counts the commits issued (sarama
// reports their failures on the ConsumerGroup's Errors channel or log).
func (h *SaramaHandler) Stats() Stats {
	h.mu.Lock()
	waiting := 0
	for _, cl := range h.claims {
		if cl.waiting {
			waiting++
		}
	}
	h.mu.Unlock()
	return Stats{Stats: h.eng.d.Stats(), Paused: waiting, Commits: h.commits.Load()}
}

// Failures returns the messages whose handler failed and that wait for
// Resolve or Retry, as copies in kgo.Record form.
func (h *SaramaHandler) Failures() []Failure { return h.eng.failures() }

// Resolve marks a failed message handled; see Consumer.Resolve.
func (h *SaramaHandler) Resolve(topic string, partition int32, offset int64) error {
	return h.eng.resolve(topic, partition, offset)
}

// Retry runs a failed message's handler again; see Consumer.Retry.
func (h *SaramaHandler) Retry(topic string, partition int32, offset int64) error {
	return h.eng.retry(topic, partition, offset)
}
