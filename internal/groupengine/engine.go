// Package groupengine is the consumer-group lifecycle that package consume
// (Consumer) and package retry (Job) share: assign → load checkpoints → run
// → drain on revoke → commit with metadata → map per-partition commit
// errors. The engine owns the group side (kgo's partition callbacks, the
// committed checkpoints, the commit schedule); the caller owns the records
// (what runs, what is finished) behind the Work interface, and how a commit
// reaches Kafka behind the Committer interface.
//
// # Contract
//
// Work is called by the engine only, never concurrently with itself for the
// same partition, in this order per partition: Assign, then any number of
// Checkpoints, then Release; a partition may be assigned again after its
// Release. Checkpoints may run concurrently with Assign and Release of other
// partitions (it is called by the commit loop). Drain is called once, after
// poll returned, and no Assign follows it until the client is closed.
//
//   - Assign(ctx, cps) is called from kgo.OnPartitionsAssigned, before any
//     record of the partitions is polled, with the checkpoint committed for
//     each (Offset -1: nothing committed, or the committed offsets could not
//     be read before ctx ended). ctx is the client's: it ends when the
//     client is closed. Work must start tracking every partition in cps; it
//     may block (no record is polled meanwhile) and must return once ctx is
//     done.
//   - Release(ctx, tps) is called from kgo.OnPartitionsRevoked (ctx carries
//     the drain timeout) and from kgo.OnPartitionsLost (ctx is already
//     done). Work stops dispatching the partitions' records, waits for
//     those running until ctx is done, forgets the partitions and returns
//     the final checkpoint of each it held; a partition it did not hold is
//     left out. Records still running when ctx ended are not covered by the
//     returned checkpoint (they run again on the partition's next owner).
//     The engine commits the returned checkpoints of revoked partitions
//     before kgo lets the rebalance go on; those of lost ones never.
//   - Checkpoints() returns the committable checkpoint of every held
//     partition (Offset < 0: nothing to commit). The returned map is the
//     engine's; Work must not keep it.
//   - Drain(ctx) waits for every held record to finish, at most until ctx
//     (which carries the drain timeout) is done, and reports what did not.
//
// A checkpoint is committed at most once (an unchanged checkpoint is not
// committed again), commits never run concurrently, and a checkpoint taken
// on revocation is never followed by an older one: the engine takes
// checkpoints and commits them under one lock.
//
// # Committing
//
// The Committer is the only code that talks to Kafka about offsets; the
// default, OffsetCommitter, sends an OffsetCommit with each checkpoint's
// metadata. A transactional consumer plugs in one that commits through its
// transaction instead. Whatever the Committer, the engine records a
// checkpoint as committed only for the partitions the Committer reports
// accepted, and turns each refused partition into the error built by
// Config.PartitionError.
package groupengine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/ordering"
)

// Work is the caller's side of the lifecycle: the records of the assigned
// partitions. See the package doc for the contract of each method.
type Work interface {
	Assign(ctx context.Context, cps map[ordering.TopicPartition]ordering.Checkpoint)
	Release(ctx context.Context, tps []ordering.TopicPartition) map[ordering.TopicPartition]ordering.Checkpoint
	Checkpoints() map[ordering.TopicPartition]ordering.Checkpoint
	Drain(ctx context.Context) error
}

// Config configures an Engine. Group, Work, CommitInterval and
// CommitTimeout are required.
type Config struct {
	// Group is the consumer group whose offsets are loaded and committed.
	Group string
	// Work holds the records; see the package doc.
	Work Work
	// Committer commits checkpoints; nil means OffsetCommitter{}.
	Committer Committer
	// CommitInterval is the time between periodic commits.
	CommitInterval time.Duration
	// DrainTimeout bounds the wait for running records on revocation and on
	// shutdown.
	DrainTimeout time.Duration
	// CommitTimeout bounds the commit that follows each drain: it has its
	// own budget, so a record stuck until the drain timeout does not cost
	// the commit of the records finished below it.
	CommitTimeout time.Duration
	// PartitionError builds the error reported for a partition whose
	// commit was refused; nil means a *CommitError.
	PartitionError func(tp ordering.TopicPartition, cp ordering.Checkpoint, err error) error
	// OnCommit, if set, is called after a commit with the checkpoints Kafka
	// accepted (never empty), under the engine's commit lock.
	OnCommit func(map[ordering.TopicPartition]ordering.Checkpoint)
	// RequireStable makes the committed offsets be read with KIP-447's
	// RequireStable: a partition with a transactional offset commit still
	// pending is read again once its transaction ended. A transactional
	// consumer needs it; reading is retried meanwhile.
	RequireStable bool
	// Logger receives the engine's logs; nil discards. Prefix starts every
	// message ("consume", "retry").
	Logger *slog.Logger
	Prefix string
}

// ErrCrashed is returned by commits after Crash.
var ErrCrashed = errors.New("groupengine: crashed")

// CommitError is the default error for one partition's refused commit.
type CommitError struct {
	Topic     string
	Partition int32
	Offset    int64 // the offset that was to be committed
	Err       error // the Kafka error
}

// Error implements error.
func (e *CommitError) Error() string {
	return fmt.Sprintf("commit %s/%d offset %d: %v", e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the Kafka error.
func (e *CommitError) Unwrap() error { return e.Err }

// Engine runs the group lifecycle of one kgo client. Its methods are safe
// for concurrent use.
type Engine struct {
	cfg Config
	log *slog.Logger

	commitMu  sync.Mutex                                      // serialises taking checkpoints and committing them
	committed map[ordering.TopicPartition]ordering.Checkpoint // last commit per held partition; guarded by commitMu
	crashed   atomic.Bool                                     // commit nothing more
	stopping  atomic.Bool                                     // Run drained: revocation no longer waits
}

// New returns an Engine, or an error if cfg lacks a required field.
func New(cfg Config) (*Engine, error) {
	var errs []error
	if cfg.Group == "" {
		errs = append(errs, errors.New("groupengine: Group is empty"))
	}
	if cfg.Work == nil {
		errs = append(errs, errors.New("groupengine: Work is nil"))
	}
	if cfg.CommitInterval <= 0 || cfg.DrainTimeout < 0 || cfg.CommitTimeout <= 0 {
		errs = append(errs, fmt.Errorf("groupengine: CommitInterval %v and CommitTimeout %v must be > 0, DrainTimeout %v >= 0",
			cfg.CommitInterval, cfg.CommitTimeout, cfg.DrainTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Committer == nil {
		cfg.Committer = OffsetCommitter{}
	}
	if cfg.PartitionError == nil {
		cfg.PartitionError = func(tp ordering.TopicPartition, cp ordering.Checkpoint, err error) error {
			return &CommitError{Topic: tp.Topic, Partition: tp.Partition, Offset: cp.Offset, Err: err}
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "groupengine"
	}
	return &Engine{cfg: cfg, log: log, committed: make(map[ordering.TopicPartition]ordering.Checkpoint)}, nil
}

// Opts returns the kgo options the engine needs on the client it runs:
// auto-commit off, rebalances blocked while polled records are handed over,
// and its partition callbacks. Put them after the caller's own options.
func (e *Engine) Opts() []kgo.Opt {
	return []kgo.Opt{
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(e.assigned),
		kgo.OnPartitionsRevoked(e.revoked),
		kgo.OnPartitionsLost(e.lost),
	}
}

// Run runs poll and periodic commits until poll returns (poll returns once
// ctx is done, or with the error that stopped it), then drains Work (at
// most DrainTimeout), stops waiting on revocation, and commits everything
// finished (at most CommitTimeout). It returns poll's error, Drain's and the
// final commit's, joined. The caller closes cl afterwards: closing leaves
// the group, which revokes the partitions and commits what is left. After
// Crash, Run neither drains nor commits and returns poll's error.
func (e *Engine) Run(ctx context.Context, cl *kgo.Client, poll func(context.Context) error) error {
	loopCtx, stopLoop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { e.commitLoop(loopCtx, cl) })
	pollErr := poll(ctx)
	stopLoop()
	wg.Wait()
	if e.crashed.Load() {
		return pollErr
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.DrainTimeout)
	defer cancel()
	drainErr := e.cfg.Work.Drain(dctx)
	e.stopping.Store(true)
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.CommitTimeout)
	defer ccancel()
	return errors.Join(pollErr, drainErr, e.CommitAll(cctx, cl))
}

// Crash makes the engine commit nothing more, as a crashed process would:
// it waits for a commit in flight, and every later commit fails with
// ErrCrashed. Tests use it to check what a restart runs again.
func (e *Engine) Crash() {
	e.crashed.Store(true)
	e.commitMu.Lock() // wait for a commit in flight; none starts after
	e.commitMu.Unlock()
}

// Crashed reports whether Crash was called.
func (e *Engine) Crashed() bool { return e.crashed.Load() }

func (e *Engine) commitLoop(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(e.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := e.CommitAll(ctx, cl); err != nil && ctx.Err() == nil {
			e.log.Warn(e.cfg.Prefix+": periodic commit failed", "group", e.cfg.Group, "err", err)
		}
	}
}

// CommitAll commits the checkpoint of every held partition that moved since
// its last commit.
func (e *Engine) CommitAll(ctx context.Context, cl *kgo.Client) error {
	e.commitMu.Lock()
	defer e.commitMu.Unlock()
	return e.commitLocked(ctx, cl, e.cfg.Work.Checkpoints())
}

// commitLocked commits cps, skipping those already committed and those with
// nothing to commit. The caller holds commitMu.
func (e *Engine) commitLocked(ctx context.Context, cl *kgo.Client, cps map[ordering.TopicPartition]ordering.Checkpoint) error {
	if e.crashed.Load() {
		return ErrCrashed
	}
	todo := make(map[ordering.TopicPartition]ordering.Checkpoint, len(cps))
	for tp, cp := range cps {
		if last, ok := e.committed[tp]; cp.Offset < 0 || ok && last == cp {
			continue
		}
		todo[tp] = cp
	}
	if len(todo) == 0 {
		return nil
	}
	res, err := e.cfg.Committer.Commit(ctx, cl, todo)
	if err != nil {
		return fmt.Errorf("%s: commit: %w", e.cfg.Prefix, err)
	}
	var errs []error
	accepted := make(map[ordering.TopicPartition]ordering.Checkpoint, len(todo))
	for tp, cp := range todo {
		perr, ok := res[tp]
		switch {
		case !ok:
			// Not answered: not known to be committed; tried again next time.
		case perr != nil:
			errs = append(errs, e.cfg.PartitionError(tp, cp, perr))
		default:
			e.committed[tp] = cp
			accepted[tp] = cp
			e.log.Debug(e.cfg.Prefix+": committed", "partition", tp.String(), "offset", cp.Offset, "metadata", cp.Metadata)
		}
	}
	if len(accepted) > 0 && e.cfg.OnCommit != nil {
		e.cfg.OnCommit(accepted)
	}
	return errors.Join(errs...)
}

// assigned loads the committed checkpoints of newly assigned partitions
// (retrying until it succeeds or the client closes) and hands them to Work.
func (e *Engine) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	if len(assigned) == 0 {
		return
	}
	offs := e.loadOffsets(ctx, cl, assigned)
	cps := make(map[ordering.TopicPartition]ordering.Checkpoint)
	for topic, ps := range assigned {
		for _, p := range ps {
			cp := ordering.Checkpoint{Offset: -1}
			if o, ok := offs.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
				cp = ordering.Checkpoint{Offset: o.At, Metadata: o.Metadata}
			}
			cps[ordering.TopicPartition{Topic: topic, Partition: p}] = cp
		}
	}
	e.commitMu.Lock()
	for tp, cp := range cps {
		if cp.Offset >= 0 {
			e.committed[tp] = cp
		} else {
			delete(e.committed, tp)
		}
	}
	e.commitMu.Unlock()
	e.cfg.Work.Assign(ctx, cps)
	e.log.Info(e.cfg.Prefix+": partitions assigned", "group", e.cfg.Group, "partitions", assigned)
}

// loadOffsets reads the group's committed offsets, retrying with backoff
// until it succeeds for every assigned partition or ctx is done (then it
// returns what it has, possibly nothing: records done above the committed
// offsets run again).
func (e *Engine) loadOffsets(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) kadm.OffsetResponses {
	wait := 100 * time.Millisecond
	fctx := ctx
	if e.cfg.RequireStable {
		fctx = kadm.RequireStable(ctx)
	}
	for {
		// The callback's client: kgo may assign before NewClient returned.
		offs, err := kadm.NewClient(cl).FetchOffsets(fctx, e.cfg.Group)
		if err == nil {
			err = assignedError(offs, assigned)
		}
		if err == nil {
			return offs
		}
		if ctx.Err() != nil {
			e.log.Warn(e.cfg.Prefix+": reading committed offsets failed; records done above them may run again",
				"group", e.cfg.Group, "err", err)
			return offs
		}
		if errors.Is(err, kerr.UnstableOffsetCommit) {
			// A transaction with offsets is ending: its markers come within
			// a moment, so asking again soon is not backed off.
			e.log.Debug(e.cfg.Prefix+": committed offsets pending in a transaction, retrying", "group", e.cfg.Group)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		e.log.Warn(e.cfg.Prefix+": reading committed offsets failed, retrying", "group", e.cfg.Group, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// assignedError returns the first error offs holds for an assigned
// partition: another partition's (one with a transaction pending, say) does
// not matter here.
func assignedError(offs kadm.OffsetResponses, assigned map[string][]int32) error {
	for topic, ps := range assigned {
		for _, p := range ps {
			if o, ok := offs.Lookup(topic, p); ok && o.Err != nil {
				return o.Err
			}
		}
	}
	return nil
}

// revoked waits for the partitions' running records (at most DrainTimeout,
// none once Run has drained) and commits, before kgo lets the rebalance go
// on.
func (e *Engine) revoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	e.release(cl, revoked, true)
}

// lost drops partitions the group already gave to another member: there is
// nothing to wait for and nothing may be committed.
func (e *Engine) lost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	e.release(cl, lost, false)
}

func (e *Engine) release(cl *kgo.Client, m map[string][]int32, commit bool) {
	if len(m) == 0 {
		return
	}
	wait := e.cfg.DrainTimeout
	if !commit || e.stopping.Load() {
		wait = 0
	}
	var tps []ordering.TopicPartition
	for topic, ps := range m {
		for _, p := range ps {
			tps = append(tps, ordering.TopicPartition{Topic: topic, Partition: p})
		}
	}
	rctx, cancel := context.WithTimeout(context.Background(), wait)
	cps := e.cfg.Work.Release(rctx, tps)
	cancel()
	if commit && len(cps) > 0 {
		cctx, ccancel := context.WithTimeout(context.Background(), e.cfg.CommitTimeout)
		e.commitMu.Lock()
		err := e.commitLocked(cctx, cl, cps)
		e.commitMu.Unlock()
		ccancel()
		if err != nil {
			e.log.Warn(e.cfg.Prefix+": commit on revocation failed; the next owner runs some records again",
				"group", e.cfg.Group, "err", err)
		}
	}
	e.commitMu.Lock()
	for _, tp := range tps {
		delete(e.committed, tp)
	}
	e.commitMu.Unlock()
	e.log.Info(e.cfg.Prefix+": partitions released", "group", e.cfg.Group, "partitions", m, "committed", commit)
}
