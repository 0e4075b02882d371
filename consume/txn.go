package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/kgotxn"
	"github.com/kafkaguard/kafkaguard/ordering"
	"github.com/kafkaguard/kafkaguard/produce"
)

// TxnHandler processes one record of an exactly-once Consumer
// (NewExactlyOnce). The records it adds to out are produced in the current
// transaction once it returns nil, and committed with the record's offset:
// a read_committed reader sees them exactly once. If it returns an error
// (or panics) they are dropped and the record fails as with a Handler. It
// runs again, with a fresh out, when its transaction is aborted (after a
// crash, a rebalance or a failed produce), so anything it does besides
// adding output records may happen more than once.
type TxnHandler func(ctx context.Context, r *kgo.Record, out *Output) error

// Output collects the records a TxnHandler emits for one input record.
// It is not safe for concurrent use; it is valid until the handler returns.
type Output struct{ recs []*kgo.Record }

// Produce adds records to the output. A record with no Topic goes to the
// client's kgo.DefaultProduceTopic.
func (o *Output) Produce(rs ...*kgo.Record) { o.recs = append(o.recs, rs...) }

// Errors of the exactly-once mode.
var (
	// ErrTxnFailed is wrapped by the error Run returns when a transaction
	// could not be ended (committed or aborted) and the client cannot go
	// on; nothing of the window was committed unless the error also wraps
	// produce.ErrOutcomeUnknown. A restarted Consumer resumes exactly once
	// either way.
	ErrTxnFailed = errors.New("consume: transaction failed")

	// ErrFenced is wrapped by the error Run returns when a newer producer
	// with the same transactional id (a replacement of this member) fenced
	// this one: its open transaction was aborted by the broker and it
	// stopped. It matches produce.ErrFenced too.
	ErrFenced = fmt.Errorf("consume: fenced by a newer member with the same transactional id: %w", produce.ErrFenced)
)

var (
	// errWindowAborted is what a failed output record records: the
	// window's transaction must abort.
	errWindowAborted = errors.New("consume: an output record of the window failed")
	// errPartitionGone refuses a TxnOffsetCommit naming a partition the
	// Consumer released meanwhile; kgo then aborts the transaction.
	errPartitionGone = errors.New("consume: partition released during the window")
)

// NewExactlyOnce returns a Consumer whose handler's output records and
// input offsets are committed in one transaction (consume-transform-produce
// exactly once, KIP-98 and KIP-447), with the semantics of franz-go's
// kgo.GroupTransactSession, on which it runs:
//
//   - Records are polled and handled in parallel (KeyOrder, PartitionOrder
//     or Unordered, as OrderBy says) for a transaction window of
//     TxnInterval. At the window's end polling stops, the window's records
//     finish (at most DrainTimeout), their outputs are flushed, and the
//     committable offsets (with the commit metadata of package ordering)
//     are sent with TxnOffsetCommit and the transaction committed. A
//     window thus lasts TxnInterval plus the time its last records take:
//     at most MaxBuffered records are held at once, so a MaxBuffered of a
//     few hundred keeps windows close to TxnInterval when handlers are slow.
//   - A rebalance during a window aborts it (fenced on rebalance, aborted
//     on revoke): the partitions kept are rewound to their last committed
//     offsets and their records run again in the next window; a failed
//     output record or a drain timeout aborts the window likewise.
//   - A member that lost its partitions but still runs (a zombie) is fenced
//     by the broker: its TxnOffsetCommit carries its group generation and
//     is refused, so its transaction aborts; a replacement started with the
//     same transactional id fences it at once (Run then returns an error
//     wrapping ErrFenced).
//
// KgoOpts must include kgo.TransactionalID: one per member, stable across
// its restarts (a pod name, say), so that a restarted member fences its
// predecessor's open transaction at once; with a fresh id the new member
// waits for that transaction to time out (kgo.TransactionTimeout). The
// options are checked against produce.ExactlyOnce (acks=all, idempotent
// writes, read_committed fetching of the input) and every contradiction is
// reported, wrapping ErrInvalidOption and produce.ErrUnsafeConfig.
//
// Applications reading the output must read committed records only
// (kgo.FetchIsolationLevel(kgo.ReadCommitted()), as
// produce.KgoConsumerOpts(produce.ExactlyOnce) gives, or sarama's
// Consumer.IsolationLevel = sarama.ReadCommitted): a read_uncommitted
// reader also sees the outputs of aborted windows.
//
// Client and RetryPath are refused: the Consumer creates its session
// client itself, and parking a record is not part of the transaction yet.
// A handler failure blocks its key or partition as with New; the records
// done above it are named in the committed metadata, which must fit in
// MetadataMaxBytes, or those past the limit run again after a crash and
// their outputs are written twice.
func NewExactlyOnce(handler TxnHandler, opts ...ExactlyOnceOpt) (*Consumer, error) {
	tx := &txnState{last: make(map[ordering.TopicPartition]ordering.Checkpoint)}
	var handle func(context.Context, *kgo.Record) error
	if handler != nil {
		handle = func(ctx context.Context, r *kgo.Record) error {
			var out Output
			if err := handler(ctx, r, &out); err != nil {
				return err
			}
			return tx.emit(ctx, out.recs)
		}
	}
	return newConsumer(newConfig(opts), handle, tx)
}

// checkExactlyOnce checks the options of NewExactlyOnce and puts the
// ExactlyOnce preset's kgo options in front of the application's. It
// returns the group.
func checkExactlyOnce(cfg *config) (string, error) {
	var errs []error
	if cfg.client != nil {
		errs = append(errs, fmt.Errorf("%w: Client: NewExactlyOnce creates its client (a kgo.GroupTransactSession); give KgoOpts", ErrInvalidOption))
	}
	if cfg.parker != nil {
		errs = append(errs, fmt.Errorf("%w: RetryPath: parking a record is not part of the transaction; NewExactlyOnce refuses it", ErrInvalidOption))
	}
	if cfg.retries != nil {
		errs = append(errs, fmt.Errorf("%w: Retries: a record waiting for its next attempt would hold the transaction window open; NewExactlyOnce refuses it", ErrInvalidOption))
	}
	group, err := checkKgoOpts(cfg.kgoOpts, cfg.drainTimeout)
	errs = append(errs, err)
	if len(cfg.kgoOpts) > 0 {
		all, err := produce.ApplyKgo(produce.ExactlyOnce, cfg.kgoOpts)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: KgoOpts: %w", ErrInvalidOption, err))
		} else {
			cfg.kgoOpts = append(all, kgo.RequireStableFetchOffsets())
		}
	}
	return group, errors.Join(errs...)
}

// txnState is an exactly-once Consumer's transaction: the gate handlers
// pass to produce into it, and the last committed checkpoints to rewind to
// after an abort.
type txnState struct {
	// gate is held for reading while a handler produces its outputs, and
	// for writing while no transaction is open (between End and Begin).
	gate   sync.RWMutex
	cl     *kgo.Client // set by transact before the first window opens
	open   bool        // a transaction is open; guarded by gate
	failed error       // the first output record that failed in this window; guarded by mu

	mu   sync.Mutex
	last map[ordering.TopicPartition]ordering.Checkpoint // last committed, per partition held

	// rewinding serialises a rewind with a release of partitions by a
	// rebalance, so a partition released meanwhile is not assigned again.
	rewinding sync.Mutex
}

// emit produces a handled record's outputs in the open transaction. It
// waits while the transaction ends; a record whose context ended meanwhile
// (its partition was rewound or revoked) produces nothing and fails: it
// runs again.
func (t *txnState) emit(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	// Wait for the gate, or for ctx: a revocation waiting for this record
	// while the transaction ends cancels it rather than waits.
	for !t.gate.TryRLock() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	defer t.gate.RUnlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if !t.open {
		return fmt.Errorf("%w: no transaction open", ErrClosed)
	}
	for _, r := range recs {
		t.cl.Produce(context.WithoutCancel(ctx), r, func(r *kgo.Record, err error) {
			if err != nil {
				t.mu.Lock()
				if t.failed == nil {
					t.failed = fmt.Errorf("%w: %s: %w", errWindowAborted, r.Topic, err)
				}
				t.mu.Unlock()
			}
		})
	}
	return nil
}

func (t *txnState) assigned(tp ordering.TopicPartition, cp ordering.Checkpoint) {
	t.mu.Lock()
	t.last[tp] = cp
	t.mu.Unlock()
}

// noCommits is the group engine's Committer in exactly-once mode: offsets
// are committed only in the transaction, so the engine's own commits
// (periodic, on revocation, on shutdown) commit nothing.
type noCommits struct{}

// Commit implements groupengine.Committer: nothing is committed.
func (noCommits) Commit(context.Context, *kgo.Client, map[ordering.TopicPartition]ordering.Checkpoint) (map[ordering.TopicPartition]error, error) {
	return nil, nil
}

// transact is the exactly-once poll loop: a window of polling and
// handling, then the transaction's end, until ctx is done; the last window
// is ended (committed) too.
func (c *Consumer) transact(ctx context.Context, s *kgo.GroupTransactSession) error {
	t := c.tx
	t.cl = s.Client()
	t.gate.Lock() // no transaction open
	defer t.gate.Unlock()
	for {
		if err := s.Begin(); err != nil {
			return txnFailed(fmt.Errorf("begin: %w", err))
		}
		t.open = true
		t.gate.Unlock()
		wctx, cancel := context.WithTimeout(ctx, c.cfg.txnInterval)
		c.poll(wctx, s.Client())
		cancel()
		if c.group.Crashed() {
			t.gate.Lock()
			return nil
		}
		err := c.endWindow(ctx, s) // returns with the gate held
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// endWindow waits for the window's running records (at most DrainTimeout),
// closes the gate, and ends the transaction: a commit with the committable
// checkpoints if every record finished and every output was written, else
// an abort followed by a rewind of every held partition to its last
// committed checkpoint. It returns with the gate held for writing.
func (c *Consumer) endWindow(ctx context.Context, s *kgo.GroupTransactSession) error {
	t := c.tx
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.drainTimeout)
	drainErr := c.eng.d.Drain(dctx)
	cancel()
	t.gate.Lock()
	t.open = false
	if c.group.Crashed() {
		return nil
	}
	t.mu.Lock()
	prodErr := t.failed
	t.failed = nil
	t.mu.Unlock()

	commit := drainErr == nil && prodErr == nil
	cps := c.eng.d.Checkpoints()
	sent := make(map[ordering.TopicPartition]ordering.Checkpoint)
	// The transaction ends even when ctx ends meanwhile (cancelling End can
	// leave the client unusable), but at most DrainTimeout after it did.
	ectx, cancelEnd := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelEnd()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.drainTimeout, cancelEnd) })
	defer stopGrace()
	ectx = kgo.PreTxnCommitFnContext(ectx, func(req *kmsg.TxnOffsetCommitRequest) error {
		return setTxnOffsets(req, cps, sent)
	})
	committed, err := s.End(ectx, kgo.TransactionEndTry(commit))
	// A commit whose end failed without a definite refusal (its EndTxn's answer lost) may have
	// committed: Run ends, and a restarted Consumer resumes from the offsets the brokers hold.
	unconfirmed := commit && !committed && err != nil && !kgotxn.Refused(err) && !errors.Is(err, errPartitionGone)
	switch {
	case committed:
		c.txnCommitted(sent)
	case unconfirmed:
		c.log.Warn("consume: the transaction's commit was not confirmed; it may have committed; Run ends", "group", c.name, "err", err)
		err = fmt.Errorf("%w: %w", produce.ErrOutcomeUnknown, err)
	default:
		reason := errors.Join(drainErr, prodErr, err)
		if reason == nil {
			reason = errors.New("the group rebalanced during the window")
		}
		level := slog.LevelWarn
		if drainErr == nil && prodErr == nil && err == nil {
			level = slog.LevelInfo // a rebalance: expected
		}
		c.log.Log(ctx, level, "consume: transaction aborted; the window's records run again", "group", c.name, "reason", reason)
		c.rewind()
	}
	if err == nil || errors.Is(err, errPartitionGone) && !committed {
		return nil // aborted: the next window runs the records again
	}
	return txnFailed(err)
}

// txnFailed wraps the error that ended a transaction for good: ErrFenced
// if a newer producer with the same transactional id took over, else
// ErrTxnFailed.
func txnFailed(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return fmt.Errorf("%w: %w", ErrTxnFailed, err)
}

// setTxnOffsets replaces the offsets of a TxnOffsetCommit (kgo fills in the
// position after the last polled record) by the committable checkpoints:
// the offset below which every record was handled, and the metadata naming
// those handled above it. A partition with nothing committable is left out.
// A partition the dispatcher does not hold refuses the commit (its outputs
// may be in the transaction, so it must abort). sent gets what was
// committed.
func setTxnOffsets(req *kmsg.TxnOffsetCommitRequest, cps, sent map[ordering.TopicPartition]ordering.Checkpoint) error {
	topics := req.Topics[:0]
	for _, rt := range req.Topics {
		ps := rt.Partitions[:0]
		for _, p := range rt.Partitions {
			tp := ordering.TopicPartition{Topic: rt.Topic, Partition: p.Partition}
			cp, ok := cps[tp]
			if !ok {
				return fmt.Errorf("%w: %s", errPartitionGone, tp)
			}
			if cp.Offset < 0 {
				continue
			}
			if cp.Offset != p.Offset {
				p.LeaderEpoch = -1
			}
			p.Offset, p.Metadata = cp.Offset, kmsg.StringPtr(cp.Metadata)
			sent[tp] = cp
			ps = append(ps, p)
		}
		if rt.Partitions = ps; len(ps) > 0 {
			topics = append(topics, rt)
		}
	}
	req.Topics = topics
	return nil
}

// txnCommitted records a committed transaction's checkpoints.
func (c *Consumer) txnCommitted(sent map[ordering.TopicPartition]ordering.Checkpoint) {
	c.tx.mu.Lock()
	for tp, cp := range sent {
		c.tx.last[tp] = cp
	}
	c.tx.mu.Unlock()
	if len(sent) > 0 {
		c.committed(sent)
	}
}

// rewind restarts every held partition at its last committed checkpoint,
// as kgo's session rewinds its fetch positions after an abort: queued and
// failed records are dropped and running ones cancelled (their outputs are
// not produced), and the records come again from the fetch.
func (c *Consumer) rewind() {
	c.tx.rewinding.Lock()
	defer c.tx.rewinding.Unlock()
	c.mu.Lock()
	tps := make([]ordering.TopicPartition, 0, len(c.parts))
	for tp := range c.parts {
		tps = append(tps, tp)
	}
	c.mu.Unlock()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tp := range tps {
		if _, err := c.eng.d.Revoke(done, tp); errors.Is(err, ordering.ErrNotAssigned) {
			continue
		}
		c.tx.mu.Lock()
		cp, ok := c.tx.last[tp]
		c.tx.mu.Unlock()
		if !ok {
			cp = ordering.Checkpoint{Offset: -1}
		}
		if err := c.eng.d.Assign(tp, cp); err != nil {
			c.log.Error("consume: rewinding a partition failed", "partition", tp.String(), "err", err)
		}
		c.mu.Lock()
		if ps := c.parts[tp]; ps != nil {
			ps.submitted = false
		}
		c.mu.Unlock()
	}
	c.eng.signalRoom()
}
