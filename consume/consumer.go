package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/ordering"
)

// Stats is a snapshot of a consumer's load.
type Stats struct {
	ordering.Stats
	// Paused is the number of partitions whose fetching is paused because
	// the buffer is full.
	Paused int
	// Commits is the number of offset commits Kafka accepted.
	Commits int64
}

// partState is what the Consumer knows of one assigned partition.
type partState struct {
	submitted bool // a record of this assignment reached the dispatcher
}

// Consumer is a franz-go group consumer that commits an offset only once
// every record below it has been handled. Create it with New, start it with
// Run. Its methods are safe for concurrent use.
type Consumer struct {
	eng   *engine[*kgo.Record]
	cfg   config
	log   *slog.Logger
	kopts []kgo.Opt
	group string
	done  chan struct{} // closed when Run has returned, or by Close without Run

	commitMu  sync.Mutex                                      // serialises taking checkpoints and committing them
	committed map[ordering.TopicPartition]ordering.Checkpoint // last commit per assigned partition; guarded by commitMu
	commits   atomic.Int64

	mu       sync.Mutex
	parts    map[ordering.TopicPartition]*partState // assigned partitions
	paused   map[ordering.TopicPartition]bool       // partitions this consumer paused
	ran      bool
	stopping bool               // Run drained: revocation no longer waits
	crashed  bool               // set by crash: commit nothing more
	stop     context.CancelFunc // ends the running Run's poll loop
}

// New returns a Consumer that runs handler for every record of the topics
// and group given with WithKgoOpts. Every invalid option is reported at
// once, each wrapping ErrInvalidOption. New does not connect; Run does.
func New(handler Handler, opts ...Option) (*Consumer, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	err := cfg.validate()
	if handler == nil {
		err = errors.Join(err, fmt.Errorf("%w: handler is nil", ErrInvalidOption))
	}
	group, optErr := checkKgoOpts(cfg.kgoOpts, cfg.drainTimeout)
	if err = errors.Join(err, optErr); err != nil {
		return nil, err
	}
	c := &Consumer{
		cfg:       cfg,
		log:       cfg.log(),
		group:     group,
		done:      make(chan struct{}),
		committed: make(map[ordering.TopicPartition]ordering.Checkpoint),
		parts:     make(map[ordering.TopicPartition]*partState),
		paused:    make(map[ordering.TopicPartition]bool),
	}
	c.eng, err = newEngine(cfg, func(ctx context.Context, r *kgo.Record) error { return handler(ctx, r) },
		func(r *kgo.Record) *kgo.Record { return r })
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	c.kopts = append(slices.Clone(cfg.kgoOpts),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	)
	return c, nil
}

// checkKgoOpts reads the user's kgo options from a client that is never
// started (its context is cancelled before it is made) and refuses those
// that contradict the consumer. It returns the group.
func checkKgoOpts(opts []kgo.Opt, drainTimeout time.Duration) (string, error) {
	if len(opts) == 0 {
		return "", fmt.Errorf("%w: WithKgoOpts is required (kgo.SeedBrokers, kgo.ConsumerGroup, kgo.ConsumeTopics)", ErrInvalidOption)
	}
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	probe, err := kgo.NewClient(append(slices.Clone(opts), kgo.WithContext(dead))...)
	if err != nil {
		return "", fmt.Errorf("%w: kgo refuses the options: %w", ErrInvalidOption, err)
	}
	defer probe.Close()

	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
	}
	group, _ := probe.OptValue(kgo.ConsumerGroup).(string)
	if group == "" {
		bad("kgo.ConsumerGroup is required: offsets are committed for a group")
	}
	if share, _ := probe.OptValue(kgo.ShareGroup).(string); share != "" {
		bad("kgo.ShareGroup %q: share groups acknowledge records, they do not commit offsets", share)
	}
	if topics, _ := probe.OptValue(kgo.ConsumeTopics).([]string); len(topics) == 0 {
		bad("kgo.ConsumeTopics (or kgo.ConsumeRegex) is required")
	}
	if rt, ok := probe.OptValue(kgo.RebalanceTimeout).(time.Duration); ok && drainTimeout >= rt {
		bad("WithDrainTimeout %v must be below kgo.RebalanceTimeout %v, or a revocation outlives the rebalance", drainTimeout, rt)
	}
	if on, _ := probe.OptValue(kgo.AutoCommitMarks).(bool); on {
		bad("kgo.AutoCommitMarks re-enables auto-commit; remove it: the consumer commits what it has handled")
	}
	if on, _ := probe.OptValue(kgo.GreedyAutoCommit).(bool); on {
		bad("kgo.GreedyAutoCommit re-enables auto-commit and commits records before they are handled; remove it")
	}
	// kgo wraps the partition callbacks of a group client, so OptValue
	// cannot tell whether the user set one. Without a group kgo refuses a
	// callback, so each option is validated on its own and its error
	// compared with the one a callback gets.
	ref := kgo.ValidateOpts(kgo.OnPartitionsLost(func(context.Context, *kgo.Client, map[string][]int32) {}))
	if ref != nil {
		for i, o := range opts {
			if err := kgo.ValidateOpts(o); err != nil && err.Error() == ref.Error() {
				bad("WithKgoOpts option %d sets a partition callback (kgo.OnPartitionsAssigned, Revoked or Lost): "+
					"the consumer owns them (it drains and commits on revocation)", i)
			}
		}
	}
	return group, errors.Join(errs...)
}

// Run consumes until ctx is done, then stops fetching, waits for the
// buffered records (at most the drain timeout), commits, and leaves the
// group. It returns nil after a clean shutdown; an error wrapping
// ErrDrainTimeout if records were still running at the drain timeout (they
// run again on the next start); commit errors; or ErrRunning if the
// Consumer already ran. Handler failures do not end Run: they are reported
// through WithOnError and the log, and wait in Failures.
func (c *Consumer) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.ran {
		c.mu.Unlock()
		return ErrRunning
	}
	c.ran = true
	ctx, c.stop = context.WithCancel(ctx)
	c.mu.Unlock()
	defer close(c.done)
	defer c.stop()

	cl, err := kgo.NewClient(c.kopts...)
	if err != nil {
		_ = c.eng.d.Close()
		return fmt.Errorf("consume: %w", err)
	}
	c.log.Info("consume: started", "group", c.group, "order", c.cfg.order.String(),
		"concurrency", c.cfg.concurrency, "max_buffered", c.cfg.maxBuffered)

	var wg sync.WaitGroup
	wg.Go(func() { c.commitLoop(ctx, cl) })
	c.poll(ctx, cl)
	wg.Wait()

	if c.isCrashed() {
		_ = c.eng.d.Close()
		cl.Close()
		return nil
	}

	var errs []error
	dctx, cancel := context.WithTimeout(context.Background(), c.cfg.drainTimeout)
	defer cancel()
	if err := c.eng.d.Drain(dctx); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrDrainTimeout, err))
	}
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	cctx, ccancel := context.WithTimeout(context.Background(), c.cfg.drainTimeout)
	defer ccancel()
	if err := c.commitAll(cctx, cl); err != nil {
		errs = append(errs, err)
	}
	cl.Close() // leaves the group; revoked commits whatever is left
	_ = c.eng.d.Close()
	c.log.Info("consume: stopped", "group", c.group, "err", errors.Join(errs...))
	return errors.Join(errs...)
}

// Close stops the consumer: it ends a running Run (which drains and
// commits as on shutdown) and waits for it to return, or releases a
// Consumer that never ran. It always returns nil.
func (c *Consumer) Close() error {
	c.mu.Lock()
	if !c.ran {
		c.ran = true
		c.mu.Unlock()
		_ = c.eng.d.Close()
		close(c.done)
		return nil
	}
	stop := c.stop
	c.mu.Unlock()
	stop()
	<-c.done
	return nil
}

// crash stops the consumer as a process crash would: nothing more is
// committed, running handlers see their context cancelled, and queued
// records are dropped. Tests use it to check what a restart runs again.
func (c *Consumer) crash() {
	c.mu.Lock()
	c.crashed = true
	stop := c.stop
	c.mu.Unlock()
	c.commitMu.Lock() // wait for a commit in flight; none starts after
	c.commitMu.Unlock()
	if stop != nil {
		stop()
		<-c.done
	}
}

func (c *Consumer) isCrashed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed
}

// poll fetches records and hands them to the dispatcher until ctx is done.
// It polls at most as many records as the buffer has room for, so handing
// them over never blocks while a rebalance waits (BlockRebalanceOnPoll).
// When the buffer is full it pauses fetching until half of it is free.
func (c *Consumer) poll(ctx context.Context, cl *kgo.Client) {
	for ctx.Err() == nil {
		held := c.eng.held()
		if c.pausedAny() {
			if held > c.cfg.maxBuffered/2 {
				c.pause(cl) // partitions assigned meanwhile
				c.eng.waitRoom(ctx)
				continue
			}
			c.resume(cl)
		}
		free := c.cfg.maxBuffered - held
		if free <= 0 {
			c.pause(cl)
			c.eng.waitRoom(ctx)
			continue
		}
		fs := cl.PollRecords(ctx, free)
		if fs.IsClientClosed() {
			cl.AllowRebalance()
			return
		}
		fs.EachError(func(topic string, partition int32, err error) {
			if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				return // Run is stopping
			}
			c.log.Warn("consume: fetch error", "topic", topic, "partition", partition, "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) { c.submit(ctx, r) })
		cl.AllowRebalance()
	}
}

func (c *Consumer) submit(ctx context.Context, r *kgo.Record) {
	tp := ordering.TopicPartition{Topic: r.Topic, Partition: r.Partition}
	m := ordering.Message[*kgo.Record]{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r}
	err := c.eng.d.Submit(ctx, m)
	if errors.Is(err, ordering.ErrOffsetOrder) && c.restartAt(tp, r.Offset) {
		err = c.eng.d.Submit(ctx, m)
	}
	switch {
	case err == nil:
		c.mu.Lock()
		if ps := c.parts[tp]; ps != nil {
			ps.submitted = true
		}
		c.mu.Unlock()
	case errors.Is(err, ordering.ErrNotAssigned):
		// Revoked: the partition's next owner reads the record.
		c.log.Debug("consume: record of a revoked partition dropped", "partition", tp.String(), "offset", r.Offset)
	case errors.Is(err, ordering.ErrOffsetOrder):
		c.log.Warn("consume: record delivered again after a later one; the earlier delivery is kept",
			"partition", tp.String(), "offset", r.Offset, "err", err)
	default:
		c.log.Warn("consume: record not dispatched; it runs again on the next start",
			"partition", tp.String(), "offset", r.Offset, "err", err)
	}
}

// restartAt re-assigns a partition at offset when the client starts it below
// the committed offset (an offset reset, for example after the log was
// truncated) before any record of the assignment was dispatched.
func (c *Consumer) restartAt(tp ordering.TopicPartition, offset int64) bool {
	c.mu.Lock()
	ps := c.parts[tp]
	ok := ps != nil && !ps.submitted
	c.mu.Unlock()
	if !ok {
		return false
	}
	if _, err := c.eng.d.Revoke(context.Background(), tp); err != nil {
		return false
	}
	if err := c.eng.d.Assign(tp, ordering.Checkpoint{Offset: offset}); err != nil {
		c.log.Error("consume: re-assigning a partition failed", "partition", tp.String(), "err", err)
		return false
	}
	c.log.Warn("consume: fetching starts below the committed offset (offset reset); records from there run again",
		"partition", tp.String(), "offset", offset)
	return true
}

func (c *Consumer) pausedAny() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.paused) > 0
}

// pause pauses fetching of every assigned partition not paused yet.
func (c *Consumer) pause(cl *kgo.Client) {
	tps := map[string][]int32{}
	c.mu.Lock()
	for tp := range c.parts {
		if !c.paused[tp] {
			c.paused[tp] = true
			tps[tp.Topic] = append(tps[tp.Topic], tp.Partition)
		}
	}
	c.mu.Unlock()
	if len(tps) > 0 {
		cl.PauseFetchPartitions(tps)
		c.log.Debug("consume: buffer full; fetching paused", "partitions", tps)
	}
}

// resume resumes every partition pause paused, assigned or not: kgo keeps a
// pause across rebalances.
func (c *Consumer) resume(cl *kgo.Client) {
	tps := map[string][]int32{}
	c.mu.Lock()
	for tp := range c.paused {
		tps[tp.Topic] = append(tps[tp.Topic], tp.Partition)
	}
	clear(c.paused)
	c.mu.Unlock()
	if len(tps) > 0 {
		cl.ResumeFetchPartitions(tps)
		c.log.Debug("consume: buffer below half; fetching resumed", "partitions", tps)
	}
}

// assigned starts tracking new partitions from their committed offsets and
// metadata, so that records done above the committed offset are skipped.
// kgo calls it before it fetches the partitions.
func (c *Consumer) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	if len(assigned) == 0 {
		return
	}
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, c.group)
	if err != nil {
		c.log.Warn("consume: reading committed offsets failed; records done above them may run again",
			"group", c.group, "err", err)
	}
	for topic, ps := range assigned {
		for _, p := range ps {
			tp := ordering.TopicPartition{Topic: topic, Partition: p}
			if aw, ok := c.cfg.parker.(AssignmentAware); ok {
				aw.Forget(topic, p)
			}
			cp := ordering.Checkpoint{Offset: -1}
			if o, ok := offs.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
				cp = ordering.Checkpoint{Offset: o.At, Metadata: o.Metadata}
			}
			err := c.eng.d.Assign(tp, cp)
			if errors.Is(err, ordering.ErrAssigned) {
				_, _ = c.eng.d.Revoke(context.Background(), tp)
				err = c.eng.d.Assign(tp, cp)
			}
			if err != nil {
				c.log.Warn("consume: assign", "partition", tp.String(), "err", err)
			}
			c.mu.Lock()
			c.parts[tp] = &partState{}
			c.mu.Unlock()
			c.commitMu.Lock()
			if cp.Offset >= 0 {
				c.committed[tp] = cp
			}
			c.commitMu.Unlock()
			c.log.Info("consume: partition assigned", "partition", tp.String(), "committed", cp.Offset)
		}
	}
}

// revoked stops dispatching the partitions, waits for their running records
// (at most the drain timeout) and commits, before kgo lets the rebalance go
// on.
func (c *Consumer) revoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.release(cl, revoked, true)
}

// lost drops partitions the group already gave to another member: there
// is nothing to wait for and nothing may be committed.
func (c *Consumer) lost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	c.release(cl, lost, false)
}

func (c *Consumer) release(cl *kgo.Client, tps map[string][]int32, commit bool) {
	wait := c.cfg.drainTimeout
	c.mu.Lock()
	if !commit || c.stopping {
		wait = 0 // lost, or Run already waited
	}
	c.mu.Unlock()
	rctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cps := make(map[ordering.TopicPartition]ordering.Checkpoint)
	for topic, ps := range tps {
		for _, p := range ps {
			tp := ordering.TopicPartition{Topic: topic, Partition: p}
			cp, err := c.eng.d.Revoke(rctx, tp)
			if errors.Is(err, ordering.ErrNotAssigned) {
				continue
			}
			if err != nil && commit {
				c.log.Warn("consume: records still running at the drain timeout; their partition's next owner runs them again",
					"partition", tp.String(), "err", err)
			}
			cps[tp] = cp
			c.mu.Lock()
			delete(c.parts, tp)
			c.mu.Unlock()
		}
	}
	c.eng.signalRoom()
	if commit && len(cps) > 0 {
		cctx, ccancel := context.WithTimeout(context.Background(), c.cfg.drainTimeout)
		defer ccancel()
		c.commitMu.Lock()
		err := c.commitLocked(cctx, cl, cps)
		c.commitMu.Unlock()
		if err != nil {
			c.log.Warn("consume: commit on revocation failed; the next owner runs some records again", "err", err)
		}
	}
	c.commitMu.Lock()
	for tp := range cps {
		delete(c.committed, tp)
	}
	c.commitMu.Unlock()
	c.log.Info("consume: partitions released", "partitions", tps, "committed", commit)
}

func (c *Consumer) commitLoop(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(c.cfg.commitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.commitAll(ctx, cl); err != nil && ctx.Err() == nil {
			c.log.Warn("consume: periodic commit failed", "err", err)
		}
	}
}

// commitAll commits the checkpoint of every assigned partition that moved.
// Checkpoints are taken under commitMu, so a commit made on revocation is
// never followed by an older one.
func (c *Consumer) commitAll(ctx context.Context, cl *kgo.Client) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	return c.commitLocked(ctx, cl, c.eng.d.Checkpoints())
}

var errCrashed = errors.New("consume: crashed")

// commitLocked commits cps, with their metadata, skipping those already
// committed. The caller holds commitMu.
func (c *Consumer) commitLocked(ctx context.Context, cl *kgo.Client, cps map[ordering.TopicPartition]ordering.Checkpoint) error {
	if c.isCrashed() {
		return errCrashed
	}
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	for tp, cp := range cps {
		if cp.Offset < 0 {
			continue
		}
		if last, ok := c.committed[tp]; ok && last == cp {
			continue
		}
		if offsets[tp.Topic] == nil {
			offsets[tp.Topic] = make(map[int32]kgo.EpochOffset)
		}
		offsets[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: cp.Offset}
	}
	if len(offsets) == 0 {
		return nil
	}
	withMeta := kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			t := &req.Topics[i]
			for j := range t.Partitions {
				p := &t.Partitions[j]
				if cp, ok := cps[ordering.TopicPartition{Topic: t.Topic, Partition: p.Partition}]; ok {
					p.Metadata = kmsg.StringPtr(cp.Metadata)
				}
			}
		}
		return nil
	})
	var errs []error
	cl.CommitOffsetsSync(withMeta, offsets, func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("consume: commit: %w", err))
			return
		}
		names := make(map[[16]byte]string, len(req.Topics))
		for _, t := range req.Topics {
			names[t.TopicID] = t.Topic
		}
		for _, t := range resp.Topics {
			topic := t.Topic
			if topic == "" {
				topic = names[t.TopicID]
			}
			for _, p := range t.Partitions {
				tp := ordering.TopicPartition{Topic: topic, Partition: p.Partition}
				cp, ok := cps[tp]
				if !ok {
					continue
				}
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
					errs = append(errs, &CommitError{Topic: topic, Partition: p.Partition, Offset: cp.Offset, Err: perr})
					continue
				}
				c.committed[tp] = cp
				c.log.Debug("consume: committed", "partition", tp.String(), "offset", cp.Offset, "metadata", cp.Metadata)
			}
		}
		c.commits.Add(1)
	})
	return errors.Join(errs...)
}

// Stats returns a snapshot of the consumer's load.
func (c *Consumer) Stats() Stats {
	c.mu.Lock()
	paused := len(c.paused)
	c.mu.Unlock()
	return Stats{Stats: c.eng.d.Stats(), Paused: paused, Commits: c.commits.Load()}
}

// Failures returns the records whose handler failed and that wait for
// Resolve or Retry, ordered by topic, partition and offset.
func (c *Consumer) Failures() []Failure { return c.eng.failures() }

// Resolve marks a failed record handled, as if its handler had succeeded,
// so the records behind it run and its offset can be committed. Call it
// once the failure has been dealt with durably. A record that is not a
// pending failure returns an error wrapping ordering.ErrNotFailed.
func (c *Consumer) Resolve(topic string, partition int32, offset int64) error {
	return c.eng.resolve(topic, partition, offset)
}

// Retry runs a failed record's handler again; the records behind it keep
// waiting. A record that is not a pending failure returns an error wrapping
// ordering.ErrNotFailed.
func (c *Consumer) Retry(topic string, partition int32, offset int64) error {
	return c.eng.retry(topic, partition, offset)
}
