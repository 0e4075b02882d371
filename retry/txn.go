package retry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/kgotxn"
	"github.com/kafkaguard/kafkaguard/ordering"
	"github.com/kafkaguard/kafkaguard/produce"
)

// txnState is the transaction side of an ExactlyOnce Job.
//
// Outcomes (a re-park, a dead letter, the records a handler left in its
// outputs) are written, and their markers marked done, while mu is held
// shared; ending a transaction holds it exclusively, so a transaction
// commits exactly the offsets of the markers whose outcomes it carries.
// When a transaction does not commit, the Job is frozen (Job.frozen): no
// outcome is written and no marker finished until the poll loop resets every
// held partition to its last committed checkpoint and bumps the epoch, which
// makes the outcome of a marker held before the reset a no-op.
type txnState struct {
	sess    *kgo.GroupTransactSession
	id      string
	mu      sync.RWMutex
	doomed  atomic.Bool // an outcome write failed: the open transaction must abort
	effects effects     // of the outcomes written in the open transaction

	pollMu     sync.Mutex
	pollCancel context.CancelFunc // interrupts the poll in progress

	fatal atomic.Pointer[error] // why the Job must stop
}

// noCommit is the group engine's committer in ExactlyOnce mode: offsets are
// committed only inside the Job's transactions (Job.endTxn).
type noCommit struct{}

func (noCommit) Commit(context.Context, *kgo.Client, map[ordering.TopicPartition]ordering.Checkpoint) (map[ordering.TopicPartition]error, error) {
	return nil, nil
}

// effectsKey carries the open transaction's *effects in the context of an
// outcome written in it (Job.inTxn).
type effectsKey struct{}

// effects are what writing an outcome does besides the write (Stats,
// metrics, a dead-letter alert), held until the transaction commits and
// dropped if it aborts, so that they count what read_committed readers see:
// a dead letter written in an aborted transaction and written again in the
// next is one dead letter.
type effects struct {
	mu sync.Mutex
	fs []func()
}

// take returns the effects held and forgets them.
func (e *effects) take() []func() {
	e.mu.Lock()
	defer e.mu.Unlock()
	fs := e.fs
	e.fs = nil
	return fs
}

// afterCommit runs f now; or, when ctx is that of an outcome written in an
// ExactlyOnce Job's transaction, once that transaction commits, and never if
// it aborts.
func afterCommit(ctx context.Context, f func()) {
	e, ok := ctx.Value(effectsKey{}).(*effects)
	if !ok {
		f()
		return
	}
	e.mu.Lock()
	e.fs = append(e.fs, f)
	e.mu.Unlock()
}

// outputsKey carries an *outputs in a handler's context in ExactlyOnce mode.
type outputsKey struct{}

// outputs collects the records a handler writes (Republish), so that the Job
// writes them in its transaction with the marker's outcome.
type outputs struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (o *outputs) add(r *kgo.Record) {
	o.mu.Lock()
	o.recs = append(o.recs, r)
	o.mu.Unlock()
}

// txnOutputs returns the outputs of ctx, if it is an ExactlyOnce handler's.
func txnOutputs(ctx context.Context) (*outputs, bool) {
	o, ok := ctx.Value(outputsKey{}).(*outputs)
	return o, ok
}

// openTxn creates the Job's transactional client (opts carry the
// ExactlyOnce preset and the transactional id) and fences the previous
// instance with the same transactional id: its open transaction is aborted
// before this one reads the group's offsets (they are read stable, so a
// pending commit of the previous instance would otherwise be waited for
// until its transaction times out).
func (j *Job) openTxn(ctx context.Context, opts []kgo.Opt) error {
	t := &txnState{id: TransactionalID(j.groupName, j.cfg.instance)}
	var err error
	t.sess, err = kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("retry: job client: %w", err)
	}
	if _, _, err := t.sess.Client().ProducerID(ctx); err != nil {
		t.sess.Close()
		return fmt.Errorf("retry: initializing transactional id %q: %w", t.id, err)
	}
	if err := t.sess.Begin(); err != nil {
		t.sess.Close()
		return fmt.Errorf("retry: beginning a transaction: %w", err)
	}
	j.txn, j.cl = t, t.sess.Client()
	return nil
}

// txnEndTimeout bounds one end of a transaction (flush, offsets, EndTxn).
const txnEndTimeout = 10 * time.Second

// txnLoop ends the open transaction and begins the next every
// CommitInterval until ctx is done. ctx stops the loop, never an end in
// progress: an end cut short leaves the transaction open on the brokers,
// where it holds back what read_committed readers see of every partition it
// wrote to until the transaction times out.
func (j *Job) txnLoop(ctx context.Context) {
	tk := time.NewTicker(j.cfg.commitInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txnEndTimeout)
		err := j.endTxn(ectx, false)
		cancel()
		if err != nil {
			j.stopTxn(err)
			return
		}
	}
}

// stopTxn records why the Job must stop and interrupts its poll.
func (j *Job) stopTxn(err error) {
	j.txn.fatal.CompareAndSwap(nil, &err)
	j.interruptPoll()
}

func (j *Job) txnErr() error {
	if e := j.txn.fatal.Load(); e != nil {
		return *e
	}
	return nil
}

func (j *Job) interruptPoll() {
	j.txn.pollMu.Lock()
	if j.txn.pollCancel != nil {
		j.txn.pollCancel()
	}
	j.txn.pollMu.Unlock()
}

// pollContext returns the context of one poll, which an aborted
// transaction cancels.
func (j *Job) pollContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if j.txn == nil {
		return ctx, func() {}
	}
	pctx, cancel := context.WithCancel(ctx)
	j.txn.pollMu.Lock()
	j.txn.pollCancel = cancel
	j.txn.pollMu.Unlock()
	if j.frozenNow() || j.txnErr() != nil {
		cancel()
	}
	return pctx, cancel
}

func (j *Job) frozenNow() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.frozen
}

// endTxn ends the open transaction: with a commit of the checkpoint of every
// held partition that moved, unless the Job is frozen or a write failed;
// then it begins the next one, unless final. An error means the Job must
// stop: fenced, the commit's outcome unknown (produce.ErrOutcomeUnknown), or the client cannot
// begin a transaction any more.
func (j *Job) endTxn(ctx context.Context, final bool) error {
	t := j.txn
	t.mu.Lock()
	defer t.mu.Unlock()
	j.mu.Lock()
	frozen := j.frozen
	cps := map[int32]ordering.Checkpoint{}
	if !frozen {
		for p, jp := range j.parts {
			if cp := jp.tracker.Checkpoint(ordering.DefaultMetadataMaxBytes); cp.Offset >= 0 && cp != jp.base {
				cps[p] = cp
			}
		}
	}
	j.mu.Unlock()
	try := kgo.TryCommit
	if frozen || t.doomed.Load() {
		try = kgo.TryAbort
	}
	ectx := kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		// The offsets are the Job's checkpoints, not the polled positions.
		req.Topics = nil
		if len(cps) == 0 {
			return nil
		}
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = j.retryTopic
		for p, cp := range cps {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, cp.Offset, -1
			rp.Metadata = kmsg.StringPtr(cp.Metadata)
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		return nil
	})
	committed, err := t.sess.End(ectx, try)
	t.doomed.Store(false)
	effects := t.effects.take()
	if err != nil && (errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)) {
		return fmt.Errorf("retry: transaction of %q: %w: %w", t.id, produce.ErrFenced, err)
	}
	// A commit whose end failed without a definite refusal may have committed (its EndTxn's
	// answer lost). kgo then keeps the transaction open, so the next Begin fails and the Job
	// stops; restarted, it resumes from the offsets the brokers hold. (A final end cannot ask
	// Begin, and reports any such failure as unknown.)
	unconfirmed := err != nil && try == kgo.TryCommit && !committed && !kgotxn.Refused(err)
	j.mu.Lock()
	switch {
	case committed && !frozen:
		for p, cp := range cps {
			if jp := j.parts[p]; jp != nil {
				jp.base = cp
			}
		}
	case !frozen:
		// Aborted (a rebalance, or a failed write or commit): the outcomes
		// written since the last commit are gone, so every held partition
		// goes back to its last commit.
		j.frozen = true
	}
	nowFrozen := j.frozen
	j.mu.Unlock()
	if committed && !frozen {
		for _, f := range effects {
			f()
		}
		for p, cp := range cps {
			j.locks.gc(p, cp.Offset)
		}
		if len(cps) > 0 {
			j.cfg.logger.Debug("retry: transaction committed", "transactional_id", t.id, "partitions", len(cps))
		}
	}
	if nowFrozen {
		j.interruptPoll()
	}
	var berr error
	if !final {
		berr = t.sess.Begin()
	}
	switch {
	case unconfirmed && (final || berr != nil):
		j.cfg.logger.Warn("retry: the transaction's commit was not confirmed; it may have committed", "transactional_id", t.id, "err", err)
		return fmt.Errorf("retry: transaction of %q: %w: %w", t.id, produce.ErrOutcomeUnknown, err)
	case err != nil:
		j.cfg.logger.Warn("retry: transaction not committed, its markers run again", "transactional_id", t.id, "err", err)
	}
	if berr != nil {
		return fmt.Errorf("retry: transaction of %q: beginning the next: %w", t.id, berr)
	}
	return nil
}

// resetAfterAbort runs in the poll loop, between a poll and AllowRebalance,
// once a transaction did not commit: every held partition restarts from its
// last committed checkpoint, the markers held or running are dropped (the
// outcome of one still running is not written: its epoch is gone), and the
// next poll reads them again.
func (j *Job) resetAfterAbort() {
	t := j.txn
	t.mu.Lock()
	defer t.mu.Unlock()
	j.mu.Lock()
	if !j.frozen {
		j.mu.Unlock()
		return
	}
	j.epoch++
	j.frozen = false
	offsets := map[int32]kgo.EpochOffset{}
	var ps []int32
	for p, jp := range j.parts {
		ps = append(ps, p)
		jp.tracker, jp.next = ordering.NewTracker(-1), 0
		if jp.base.Offset >= 0 {
			jp.tracker, _ = ordering.ResumeTracker(jp.base)
			jp.next = jp.base.Offset
		}
		offsets[p] = kgo.EpochOffset{Epoch: -1, Offset: jp.next}
	}
	j.mu.Unlock()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for _, p := range ps {
		_ = j.sched.dropPartition(gone, p)
	}
	j.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{j.retryTopic: offsets})
	j.cfg.logger.Info("retry: transaction aborted, partitions reset to their last commit", "transactional_id", t.id, "partitions", ps)
}

// inTxn writes a marker's outcome in the open transaction and marks the
// marker done in the same one. It reports false, writing nothing, when the
// marker was held before an aborted transaction, and false when the write
// failed (the transaction then aborts, and the marker runs again).
func (j *Job) inTxn(ctx context.Context, it *item, what string, write func(context.Context) error) bool {
	t := j.txn
	t.mu.RLock()
	defer t.mu.RUnlock()
	if !j.current(it.epoch) {
		return false
	}
	if err := write(context.WithValue(ctx, effectsKey{}, &t.effects)); err != nil {
		t.doomed.Store(true)
		j.cfg.logger.Warn("retry: write in transaction failed, the transaction aborts", "what", what, "err", err)
		return false
	}
	it.txnDone = true
	j.doneAt(it.part, it.offset, it.epoch)
	return true
}

// current reports whether an item held in epoch may still finish.
func (j *Job) current(epoch uint64) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return !j.frozen && epoch == j.epoch
}

// finishTxn writes the outcome of a marker whose handler returned err, in
// ExactlyOnce mode: outs (the records the handler wrote) on success, the
// dead letter or the next marker on failure.
func (j *Job) finishTxn(ctx context.Context, it *item, err error, outs *outputs) bool {
	m := it.m
	if err == nil {
		return j.inTxn(ctx, it, "output", func(ctx context.Context) error {
			if len(outs.recs) > 0 {
				if err := j.cl.ProduceSync(ctx, outs.recs...).FirstErr(); err != nil {
					return fmt.Errorf("retry: writing the outputs of %s: %w", m.Origin, err)
				}
			}
			afterCommit(ctx, func() {
				j.succeeded.Add(1)
				j.cfg.metrics.incSucceeded(m.Topic)
			})
			j.cfg.logger.Info("retry: succeeded", "origin", m.Origin.String(), "attempt", m.Attempts+1)
			return nil
		})
	}
	next := m.failed(err, time.Now())
	if reason := j.deadReason(err, next); reason != "" {
		return j.inTxn(ctx, it, "dead letter", func(ctx context.Context) error {
			if err := j.w.deadLetter(ctx, next, reason); err != nil {
				return err
			}
			afterCommit(ctx, func() { j.deadLettered.Add(1) })
			return nil
		})
	}
	return j.inTxn(ctx, it, "marker", func(ctx context.Context) error {
		if _, err := j.w.park(ctx, next, it.part, true); err != nil {
			return err
		}
		afterCommit(ctx, func() { j.reparked.Add(1) })
		return nil
	})
}
