package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/groupengine"
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
	submitted bool  // a record of this assignment reached the dispatcher
	committed int64 // the last offset committed or found committed; -1: none
	hwm       int64 // the high watermark of the last fetch; -1: none yet
}

// Consumer is a franz-go group consumer that commits an offset only once
// every record below it has been handled. Create it with New, start it with
// Run. Its methods are safe for concurrent use.
type Consumer struct {
	eng     *engine[*kgo.Record]
	group   *groupengine.Engine
	cfg     config
	log     *slog.Logger
	kopts   []kgo.Opt
	name    string        // the consumer group
	done    chan struct{} // closed when Run has returned, or by Close without Run
	commits atomic.Int64

	mu     sync.Mutex
	parts  map[ordering.TopicPartition]*partState // assigned partitions
	paused map[ordering.TopicPartition]bool       // partitions this consumer paused
	ran    bool
	stop   context.CancelFunc // ends the running Run's poll loop

	tx *txnState // exactly-once mode (NewExactlyOnce); nil otherwise
}

// New returns a Consumer that runs handler for every record of the topics
// and group given with KgoOpts, or of the client given with Client. Every
// invalid option is reported at once, each wrapping ErrInvalidOption. New
// does not connect; Run does (with KgoOpts).
func New(handler Handler, opts ...ConsumerOpt) (*Consumer, error) {
	var handle func(context.Context, *kgo.Record) error
	if handler != nil {
		handle = handler
	}
	return newConsumer(newConfig(opts), handle, nil)
}

// newConsumer is New, and NewExactlyOnce with tx set.
func newConsumer(cfg config, handle func(context.Context, *kgo.Record) error, tx *txnState) (*Consumer, error) {
	err := cfg.validate()
	if handle == nil {
		err = errors.Join(err, fmt.Errorf("%w: handler is nil", ErrInvalidOption))
	}
	var (
		group  string
		optErr error
	)
	switch {
	case tx != nil:
		group, optErr = checkExactlyOnce(&cfg)
	case cfg.client != nil && len(cfg.kgoOpts) > 0:
		optErr = fmt.Errorf("%w: Client and KgoOpts exclude each other: the client's options are already set", ErrInvalidOption)
	case cfg.client != nil:
		group, optErr = checkClient(cfg.client, cfg.hooks, cfg.drainTimeout)
	default:
		group, optErr = checkKgoOpts(cfg.kgoOpts, cfg.drainTimeout)
	}
	if err = errors.Join(err, optErr); err != nil {
		return nil, err
	}
	c := &Consumer{
		cfg:    cfg,
		log:    cfg.log(),
		name:   group,
		done:   make(chan struct{}),
		parts:  make(map[ordering.TopicPartition]*partState),
		paused: make(map[ordering.TopicPartition]bool),
		tx:     tx,
	}
	c.eng, err = newEngine(cfg, handle, func(r *kgo.Record) *kgo.Record { return r })
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	gcfg := groupengine.Config{
		Group:          group,
		Work:           (*consumerWork)(c),
		CommitInterval: cfg.commitInterval,
		DrainTimeout:   cfg.drainTimeout,
		CommitTimeout:  cfg.drainTimeout,
		PartitionError: func(tp ordering.TopicPartition, cp ordering.Checkpoint, err error) error {
			return &CommitError{Topic: tp.Topic, Partition: tp.Partition, Offset: cp.Offset, Err: err}
		},
		OnCommit: c.committed,
		Logger:   c.log,
		Prefix:   "consume",
	}
	if tx != nil {
		// Offsets are committed only inside the transaction (endWindow).
		gcfg.Committer, gcfg.RequireStable = noCommits{}, true
	}
	c.group, err = groupengine.New(gcfg)
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	if cfg.client != nil {
		if !cfg.hooks.b.Bind(c.group) {
			_ = c.eng.d.Close()
			return nil, fmt.Errorf("%w: Client: the Hooks serve another Consumer already", ErrInvalidOption)
		}
		return c, nil
	}
	c.kopts = append(slices.Clone(cfg.kgoOpts), c.group.Opts()...)
	return c, nil
}

// Run consumes until ctx is done, then stops fetching, waits for the
// buffered records (at most the drain timeout), commits, and leaves the
// group. It returns nil after a clean shutdown; an error wrapping
// ErrDrainTimeout if records were still running at the drain timeout (they
// run again on the next start); commit errors; or ErrRunning if the
// Consumer already ran. Handler failures do not end Run: they are reported
// through OnError and the log, and wait in Failures.
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

	cl, owned := c.cfg.client, c.cfg.client == nil
	var sess *kgo.GroupTransactSession
	if owned {
		var err error
		if c.tx != nil {
			sess, err = kgo.NewGroupTransactSession(c.kopts...)
			if err == nil {
				cl = sess.Client()
			}
		} else {
			cl, err = kgo.NewClient(c.kopts...)
		}
		if err != nil {
			_ = c.eng.d.Close()
			return fmt.Errorf("consume: %w", err)
		}
	}
	c.cfg.metrics.offsetGauges().add(c)
	defer c.cfg.metrics.offsetGauges().remove(c)
	c.log.Info("consume: started", "group", c.name, "order", c.cfg.order.String(),
		"concurrency", c.cfg.concurrency, "max_buffered", c.cfg.maxBuffered)

	poll := func(ctx context.Context) error { c.poll(ctx, cl); return nil }
	if sess != nil {
		poll = func(ctx context.Context) error { return c.transact(ctx, sess) }
	}
	err := c.group.Run(ctx, cl, poll)
	if c.group.Crashed() {
		_ = c.eng.d.Close()
		if owned {
			cl.Close()
		}
		return nil
	}
	if owned {
		cl.Close() // leaves the group; revoked commits whatever is left
	}
	_ = c.eng.d.Close()
	c.log.Info("consume: stopped", "group", c.name, "err", err)
	return err
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
	c.group.Crash()
	c.mu.Lock()
	stop := c.stop
	c.mu.Unlock()
	if stop != nil {
		stop()
		<-c.done
	}
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
		if c.cfg.metrics != nil {
			c.noteHighWatermarks(fs)
		}
		if c.cfg.batch {
			c.submitBatches(ctx, fs)
		} else {
			fs.EachRecord(func(r *kgo.Record) { c.submit(ctx, r) })
		}
		cl.AllowRebalance()
	}
}

func (c *Consumer) submit(ctx context.Context, r *kgo.Record) {
	c.submitMessage(ctx, ordering.Message[*kgo.Record]{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r})
}

// submitMessage hands a record, or a batch (NewBatch), to the dispatcher.
func (c *Consumer) submitMessage(ctx context.Context, m ordering.Message[*kgo.Record]) {
	tp, r := m.TopicPartition(), m.Value
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

// consumerWork is the Consumer's side of the group lifecycle
// (groupengine.Work): the dispatcher's partitions.
type consumerWork Consumer

// Assign starts tracking new partitions from their committed offsets and
// metadata, so that records done above the committed offset are skipped.
func (w *consumerWork) Assign(_ context.Context, cps map[ordering.TopicPartition]ordering.Checkpoint) {
	c := (*Consumer)(w)
	for tp, cp := range cps {
		if aw, ok := c.cfg.parker.(AssignmentAware); ok {
			aw.Forget(tp.Topic, tp.Partition)
		}
		if c.tx != nil {
			c.tx.assigned(tp, cp)
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
		c.parts[tp] = &partState{committed: max(cp.Offset, -1), hwm: -1}
		c.mu.Unlock()
		c.log.Info("consume: partition assigned", "partition", tp.String(), "committed", cp.Offset)
	}
	c.cfg.metrics.rebalanced(c.name, "assigned")
}

// Release stops dispatching the partitions and waits for their running
// records until ctx is done.
func (w *consumerWork) Release(ctx context.Context, tps []ordering.TopicPartition) map[ordering.TopicPartition]ordering.Checkpoint {
	c := (*Consumer)(w)
	if c.tx != nil {
		c.tx.rewinding.Lock()
		defer c.tx.rewinding.Unlock()
	}
	cps := make(map[ordering.TopicPartition]ordering.Checkpoint)
	for _, tp := range tps {
		cp, err := c.eng.d.Revoke(ctx, tp)
		if errors.Is(err, ordering.ErrNotAssigned) {
			continue
		}
		if err != nil {
			c.log.Warn("consume: records still running at release; their partition's next owner runs them again",
				"partition", tp.String(), "err", err)
		}
		cps[tp] = cp
		c.mu.Lock()
		delete(c.parts, tp)
		c.mu.Unlock()
	}
	c.eng.signalRoom()
	c.cfg.metrics.rebalanced(c.name, "released")
	return cps
}

// Checkpoints returns the dispatcher's checkpoints.
func (w *consumerWork) Checkpoints() map[ordering.TopicPartition]ordering.Checkpoint {
	return w.eng.d.Checkpoints()
}

// Drain waits for every buffered record.
func (w *consumerWork) Drain(ctx context.Context) error {
	w.eng.stopRetries() // a record waiting for a retry runs again on the next start
	if err := w.eng.d.Drain(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrDrainTimeout, err)
	}
	return nil
}

// committed counts a commit Kafka accepted and keeps its offsets for the
// metrics.
func (c *Consumer) committed(cps map[ordering.TopicPartition]ordering.Checkpoint) {
	c.commits.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for tp, cp := range cps {
		if ps := c.parts[tp]; ps != nil {
			ps.committed = cp.Offset
		}
	}
}

// noteHighWatermarks keeps the high watermark of every partition fs holds,
// for the lag metric.
func (c *Consumer) noteHighWatermarks(fs kgo.Fetches) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if ps := c.parts[ordering.TopicPartition{Topic: p.Topic, Partition: p.Partition}]; ps != nil && p.Err == nil {
			ps.hwm = p.HighWatermark
		}
	})
}

// partitionOffsets implements offsetSource.
func (c *Consumer) partitionOffsets(fn func(group string, tp ordering.TopicPartition, committed, hwm int64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tp, ps := range c.parts {
		fn(c.name, tp, ps.committed, ps.hwm)
	}
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
