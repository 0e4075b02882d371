package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/groupengine"
	"github.com/kafkaguard/kafkaguard/ordering"
	"github.com/kafkaguard/kafkaguard/partitioner"
	"github.com/kafkaguard/kafkaguard/produce"
)

// HeaderSource names, on a dead letter made of a malformed marker, the retry
// topic, partition and offset it was read from ("topic/partition@offset").
const HeaderSource = HeaderPrefix + "source"

// Handler processes a due marker: m.Record() is the original record. A nil
// error finishes the record; an error schedules another attempt or, after
// MaxAttempts or for a permanent error (see Permanent), dead-letters it.
// The context is cancelled when the Job's shutdown timeout runs out.
type Handler func(ctx context.Context, m *Marker) error

// RecordHandler adapts a consumer's own record handler to a Handler: it is
// called with the original record.
func RecordHandler(h func(context.Context, *kgo.Record) error) Handler {
	return func(ctx context.Context, m *Marker) error { return h(ctx, m.Record()) }
}

// Stats is a snapshot of a Job's work. In ExactlyOnce mode an outcome
// (Succeeded, Reparked, DeadLettered) counts once the transaction that wrote
// it commits: what an aborted transaction wrote, and wrote again in the next,
// counts once, while Retried counts every handler run.
type Stats struct {
	Held         int   // markers held: waiting for their due time, their key, or running
	Blocked      int   // held markers waiting for an earlier record of their key
	Retried      int64 // handler runs
	Succeeded    int64 // handler runs that succeeded
	Reparked     int64 // markers written again after a failed attempt
	DeadLettered int64 // records written to the dead-letter topic
	Superseded   int64 // markers skipped because a later marker or resolution of their record exists
}

// Job is the retry side: it consumes the retry topic as a consumer group,
// holds each marker until it is due, runs the handler, and then finishes the
// record (success), writes a new marker with one more attempt (failure), or
// writes it to the dead-letter topic (attempts exhausted, permanent error).
// Each new marker or dead letter is acknowledged by every in-sync replica
// before the old marker's offset may be committed, and commits only ever
// cover markers below the first one not finished (ordering.Tracker), so a
// crash at any point loses no marker: at worst a marker runs again.
//
// Due times are kept in a timer heap: a marker that is not due never delays
// one that is, and due markers run concurrently on at most Concurrency
// goroutines. At most MaxBuffered markers are held in memory; the Job stops
// fetching while the bound is reached.
//
// With ExactlyOnce, each outcome is written in a transaction with the
// marker's offset commit instead, so that a crash neither loses nor doubles
// one as read_committed readers see them (see the package doc).
type Job struct {
	cfg        config
	handler    Handler
	retryTopic string
	groupName  string
	keyOrder   bool
	kgoOpts    []kgo.Opt
	started    atomic.Bool

	locks  *KeyLocks
	cl     *kgo.Client
	w      writer
	alerts *alerter
	sched  *scheduler
	// published is sched once Run set it, for Stats.
	published atomic.Pointer[scheduler]

	group      *groupengine.Engine // built by Run; the group lifecycle
	stopLoop   context.CancelFunc  // set by Run: stops dispatching and the gauges
	cancelWork context.CancelFunc  // set by Run: cancels running handlers
	bg         sync.WaitGroup      // the gauge loop

	txn *txnState // ExactlyOnce: the transactional client and its state; nil otherwise

	mu    sync.Mutex
	parts map[int32]*jobPart
	// epoch and frozen are the ExactlyOnce reset state (see txnState):
	// an item finishes only if held in the current epoch, and nothing
	// finishes while frozen.
	epoch  uint64
	frozen bool

	retried, succeeded, reparked, deadLettered, superseded atomic.Int64
}

type jobPart struct {
	tracker *ordering.Tracker
	next    int64 // next offset to read
	hw      int64 // high watermark seen in the last fetch
	// base is the last checkpoint committed (Offset -1: none); ExactlyOnce
	// resets the partition to it when a transaction aborts.
	base ordering.Checkpoint
}

// NewJob returns a Job that runs handler for the markers of the retry topic
// (Topic or RetryTopic). Every invalid option is reported at once, each
// wrapping ErrInvalidOption; KgoOpts are checked against produce.NoLoss, or
// produce.ExactlyOnce with ExactlyOnce.
func NewJob(handler Handler, opts ...JobOpt) (*Job, error) {
	c := newConfig(opts)
	err := c.validate(true)
	if handler == nil {
		err = errors.Join(err, fmt.Errorf("%w: nil handler", ErrInvalidOption))
	}
	preset, copts := produce.NoLoss, c.clientOpts
	if c.exactlyOnce {
		preset = produce.ExactlyOnce
		copts = append(append([]kgo.Opt(nil), copts...), kgo.TransactionalID(TransactionalID(c.groupName(), c.instance)))
	}
	kopts, kerr := produce.ApplyKgo(preset, copts)
	if kerr != nil {
		err = errors.Join(err, fmt.Errorf("%w: KgoOpts: %w", ErrInvalidOption, kerr))
	}
	if err != nil {
		return nil, err
	}
	j := &Job{
		cfg:        c,
		handler:    handler,
		retryTopic: c.fixedRetryTopic(),
		groupName:  c.groupName(),
		keyOrder:   c.locks != nil,
		kgoOpts:    kopts,
		parts:      map[int32]*jobPart{},
	}
	j.alerts = newAlerter(&j.cfg, j.retryTopic)
	return j, nil
}

// Stats returns a snapshot of the Job's work.
func (j *Job) Stats() Stats {
	st := Stats{
		Retried:      j.retried.Load(),
		Succeeded:    j.succeeded.Load(),
		Reparked:     j.reparked.Load(),
		DeadLettered: j.deadLettered.Load(),
		Superseded:   j.superseded.Load(),
	}
	if s := j.published.Load(); s != nil {
		st.Held, st.Blocked = s.load()
	}
	return st
}

// pinPartitioner puts records pinned by the Job (re-parks and resolutions)
// on the partition of the marker they follow, keyed records where the
// Java client and franz-go would (murmur2), and others anywhere.
func pinPartitioner() kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return func(r *kgo.Record, n int) int {
			if r.Context != nil {
				if p, ok := r.Context.Value(pinKey{}).(int32); ok && int(p) < n {
					return int(p)
				}
			}
			if r.Key != nil {
				if p, err := partitioner.ForKey(partitioner.HashMurmur2, r.Key, n); err == nil {
					return p
				}
			}
			return rand.IntN(n)
		}
	})
}

// Run runs the Job until ctx is done, then shuts down gracefully: it stops
// fetching, waits up to ShutdownTimeout for running handlers, commits what is
// finished and leaves the group. Markers not finished stay uncommitted and
// run after the next start. Run returns nil after a shutdown caused by ctx,
// or the error that stopped it, joined with any error of the final commit. The retry topic must exist: check it
// (and the dead-letter topic) with CheckTopics, or create them as no-loss
// topics with CreateTopics.
// A Job runs once.
func (j *Job) Run(ctx context.Context) error {
	if !j.started.CompareAndSwap(false, true) {
		return fmt.Errorf("retry: Job.Run called twice: %w", ErrClosed)
	}
	// A start that fails because ctx ended is a shutdown by the caller while starting: nil, as
	// after a shutdown once running.
	startErr := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	log := j.cfg.logger
	locks := j.cfg.locks
	if locks == nil {
		var err error
		if locks, err = openKeyLocks(ctx, &j.cfg); err != nil {
			return startErr(err)
		}
		defer locks.Close()
	}
	j.locks = locks
	wcfg := j.cfg
	if j.cfg.exactlyOnce {
		// A marker written in a transaction exists for the locks only
		// once the transaction commits: they read it then.
		wcfg.locks = nil
	} else {
		wcfg.locks = locks
	}

	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var head func(lockKey) (Origin, bool)
	if j.keyOrder {
		head = locks.head
	}
	j.sched = newScheduler(j.cfg.concurrency, head, j.runItem, j.finished)
	j.published.Store(j.sched)
	stopListen := locks.onUnlock(j.sched.recheck)
	defer stopListen()

	var committer groupengine.Committer
	if j.cfg.exactlyOnce {
		committer = noCommit{}
	}
	var err error
	j.group, err = groupengine.New(groupengine.Config{
		Group:          j.groupName,
		Work:           (*jobWork)(j),
		Committer:      committer,
		RequireStable:  j.cfg.exactlyOnce,
		CommitInterval: j.cfg.commitInterval,
		DrainTimeout:   j.cfg.shutdownTimeout,
		CommitTimeout:  10 * time.Second,
		PartitionError: func(tp ordering.TopicPartition, cp ordering.Checkpoint, err error) error {
			return fmt.Errorf("retry: committing %s partition %d offset %d: %w", tp.Topic, tp.Partition, cp.Offset, err)
		},
		OnCommit: func(cps map[ordering.TopicPartition]ordering.Checkpoint) {
			for tp, cp := range cps {
				j.locks.gc(tp.Partition, cp.Offset)
			}
		},
		Logger: log,
		Prefix: "retry",
	})
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	opts := append(append(append([]kgo.Opt(nil), j.kgoOpts...),
		kgo.ConsumeTopics(j.retryTopic),
		kgo.ConsumerGroup(j.groupName),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(pinPartitioner()),
	), j.group.Opts()...)
	if j.cfg.exactlyOnce {
		if err := j.openTxn(ctx, opts); err != nil {
			return startErr(err)
		}
	} else {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return fmt.Errorf("retry: job client: %w", err)
		}
		j.cl = cl
	}
	cl := j.cl
	j.w = writer{cl: cl, cfg: &wcfg, alerts: j.alerts}

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	j.stopLoop, j.cancelWork = stopLoop, cancelWork
	go j.sched.loop(loopCtx, workCtx)
	j.bg.Go(func() { j.gaugeLoop(loopCtx) })
	var txnLoop sync.WaitGroup
	txnCtx, stopTxnLoop := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTxnLoop()
	if j.txn != nil {
		txnLoop.Go(func() { j.txnLoop(txnCtx) })
	}

	log.Info("retry: job started", "retry_topic", j.retryTopic, "group", j.groupName, "key_order", j.keyOrder, "exactly_once", j.cfg.exactlyOnce)
	err = j.group.Run(ctx, cl, j.pollLoop)
	if j.txn != nil {
		// The handlers have returned: the last transaction carries what
		// they finished.
		stopTxnLoop()
		txnLoop.Wait()
		if terr := j.txnErr(); terr == nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txnEndTimeout)
			err = errors.Join(err, j.endTxn(cctx, true))
			cancel()
		} else if !errors.Is(err, terr) {
			// The transactions failed while the Job was being stopped:
			// the poll loop, already done, did not return why.
			err = errors.Join(err, terr)
		}
	}
	cl.Close() // leaves the group; revocation commits whatever is left
	log.Info("retry: job stopped", "retry_topic", j.retryTopic, "err", err)
	return err
}

func (j *Job) pollLoop(ctx context.Context) error {
	for {
		room, err := j.waitRoom(ctx)
		if err != nil {
			return nil
		}
		pctx, cancel := j.pollContext(ctx)
		fs := j.cl.PollRecords(pctx, room)
		cancel()
		if ctx.Err() != nil {
			j.cl.AllowRebalance()
			return nil
		}
		if fs.IsClientClosed() {
			return fmt.Errorf("retry: job client: %w", kgo.ErrClientClosed)
		}
		if j.txn != nil {
			if err := j.txnErr(); err != nil {
				j.cl.AllowRebalance()
				return err
			}
			if j.frozenNow() {
				// A transaction aborted: what was just polled is read
				// again from the last commit.
				j.resetAfterAbort()
				j.cl.AllowRebalance()
				continue
			}
		}
		fs.EachError(func(t string, p int32, err error) {
			j.cfg.logger.Warn("retry: fetch", "topic", t, "partition", p, "err", err)
		})
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if fp.Topic != j.retryTopic {
				return
			}
			j.mu.Lock()
			if jp := j.parts[fp.Partition]; jp != nil && fp.HighWatermark > 0 {
				jp.hw = fp.HighWatermark
			}
			j.mu.Unlock()
			for _, r := range fp.Records {
				j.hold(r)
			}
		})
		j.cl.AllowRebalance()
	}
}

// waitRoom waits until fewer than MaxBuffered markers count against the
// bound and returns how many more may be fetched.
func (j *Job) waitRoom(ctx context.Context) (int, error) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		held, blocked := j.sched.load()
		if room := j.cfg.maxBuffered - (held - blocked); room > 0 {
			return room, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}

// hold takes one record of the retry topic: it is tracked for commits, and
// a live marker is scheduled; anything else is finished at once.
func (j *Job) hold(r *kgo.Record) {
	j.mu.Lock()
	jp := j.parts[r.Partition]
	if jp == nil {
		j.mu.Unlock()
		j.cfg.logger.Error("retry: record of a partition that is not assigned", "partition", r.Partition, "offset", r.Offset)
		return
	}
	if err := jp.tracker.Add(r.Offset); err != nil {
		j.mu.Unlock()
		j.cfg.logger.Error("retry: tracking offset", "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	jp.next = r.Offset + 1
	skip := jp.tracker.Skip(r.Offset)
	epoch := j.epoch
	j.mu.Unlock()

	m, err := ParseMarker(r)
	switch {
	case skip:
		// Finished before the last restart, as the commit metadata says.
		if err == nil {
			j.locks.resolve(r.Partition, r.Offset, m.Origin)
		}
		j.doneAt(r.Partition, r.Offset, epoch)
	case err == nil && m.Kind == KindResolved:
		j.locks.resolve(r.Partition, r.Offset, m.Origin)
		j.doneAt(r.Partition, r.Offset, epoch)
	case err == nil && m.Kind == KindMarker:
		if !j.locks.observe(r.Partition, r.Offset, m) {
			j.superseded.Add(1)
			j.doneAt(r.Partition, r.Offset, epoch)
			return
		}
		it := &item{m: m, part: r.Partition, offset: r.Offset, due: m.Due, index: -1, epoch: epoch, trace: j.markerTrace(r)}
		if j.keyOrder && m.Key != nil {
			it.keyed, it.key = true, lockKey{m.Topic, string(m.Key)}
		}
		j.sched.add(it)
	default:
		if err == nil {
			err = fmt.Errorf("%w: a %s record on the retry topic", ErrInvalidMarker, m.Kind)
		}
		j.cfg.logger.Error("retry: invalid marker", "partition", r.Partition, "offset", r.Offset, "err", err)
		j.sched.add(&item{invalid: true, part: r.Partition, offset: r.Offset, m: &Marker{Key: r.Key, Value: r.Value, Headers: r.Headers}, err: err, index: -1, epoch: epoch})
	}
}

// doneAt marks a retry offset finished for commits, unless it was held in
// an epoch that an aborted transaction ended (ExactlyOnce).
func (j *Job) doneAt(p int32, off int64, epoch uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.frozen || epoch != j.epoch {
		return
	}
	if jp := j.parts[p]; jp != nil {
		if err := jp.tracker.Done(off); err != nil {
			j.cfg.logger.Error("retry: finishing offset", "partition", p, "offset", off, "err", err)
		}
	}
}

// finished is called by the scheduler for every item that is finished.
func (j *Job) finished(it *item) {
	if !it.txnDone {
		j.doneAt(it.part, it.offset, it.epoch)
	}
}

// persist calls write until it succeeds or ctx is done.
func (j *Job) persist(ctx context.Context, what string, write func(context.Context) error) bool {
	wait := 100 * time.Millisecond
	for {
		err := write(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		j.cfg.logger.Warn("retry: write failed, retrying", "what", what, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (j *Job) callHandler(ctx context.Context, m *Marker) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("retry: handler panicked: %v\n%s", v, debug.Stack())
		}
	}()
	return j.handler(ctx, m)
}

// runItem runs one due item and reports whether it is finished.
func (j *Job) runItem(ctx context.Context, it *item) bool {
	if it.invalid {
		dl := func(ctx context.Context) error { return j.deadLetterRaw(ctx, it) }
		if j.txn != nil {
			return j.inTxn(ctx, it, "dead letter", dl)
		}
		return j.persist(ctx, "dead letter", dl)
	}
	m := it.m
	if !j.locks.live(it.part, it.offset, m.Origin) {
		// A later marker of the record was read while this one waited.
		j.superseded.Add(1)
		return true
	}
	j.retried.Add(1)
	j.cfg.metrics.incRetried(m.Topic)
	ctx, span := j.startAttempt(ctx, it)
	hctx, outs := ctx, (*outputs)(nil)
	if j.txn != nil {
		// Republish leaves its record here, for the transaction.
		outs = &outputs{}
		hctx = context.WithValue(ctx, outputsKey{}, outs)
	}
	err := j.callHandler(hctx, m)
	if span != nil {
		defer j.endAttempt(ctx, span, m, err)
	}
	if err != nil && ctx.Err() != nil {
		// Interrupted by shutdown: the attempt does not count.
		return false
	}
	if j.txn != nil {
		return j.finishTxn(ctx, it, err, outs)
	}
	if err == nil {
		j.succeeded.Add(1)
		j.cfg.metrics.incSucceeded(m.Topic)
		j.cfg.logger.Info("retry: succeeded", "origin", m.Origin.String(), "attempt", m.Attempts+1)
		return j.resolve(ctx, it)
	}
	next := m.failed(err, time.Now())
	if reason := j.deadReason(err, next); reason != "" {
		if !j.persist(ctx, "dead letter", func(ctx context.Context) error { return j.w.deadLetter(ctx, next, reason) }) {
			return false
		}
		j.deadLettered.Add(1)
		return j.resolve(ctx, it)
	}
	if !j.persist(ctx, "marker", func(ctx context.Context) error {
		_, err := j.w.park(ctx, next, it.part, true)
		return err
	}) {
		return false
	}
	j.reparked.Add(1)
	return true
}

// deadReason returns why a record whose attempt failed with err goes to the
// dead-letter topic, or "" if it is parked again as next.
func (j *Job) deadReason(err error, next *Marker) string {
	switch {
	case IsPermanent(err):
		return ReasonPermanent
	case next.Attempts >= j.cfg.maxAttempts:
		return ReasonMaxAttempts
	}
	return ""
}

// resolve ends an item's record: in key order with a KindResolved record
// that every KeyLocks sees, otherwise in this Job's locks only.
func (j *Job) resolve(ctx context.Context, it *item) bool {
	off := it.offset
	if it.keyed {
		if !j.persist(ctx, "resolution", func(ctx context.Context) error {
			o, err := j.w.resolved(ctx, it.m, it.part)
			off = o
			return err
		}) {
			return false
		}
	}
	j.locks.resolve(it.part, off, it.m.Origin)
	return true
}

func (j *Job) invalidDLQ() string {
	switch {
	case j.cfg.dlqTopic != "":
		return j.cfg.dlqTopic
	case j.cfg.topic != "":
		return j.cfg.dlqTopicFor(j.cfg.topic)
	}
	return j.cfg.dlqTopicFor(SourceTopic(j.retryTopic))
}

// SourceTopic returns the topic whose retry topic is retryTopic under the
// default names of either header mode: orders for orders.retry,
// orders-retry, orders-retry-0 or orders-retry-5000 (Spring's per-attempt
// topics, suffixed with an index or a delay); retryTopic itself otherwise.
func SourceTopic(retryTopic string) string {
	if t, ok := strings.CutSuffix(retryTopic, RetrySuffix); ok {
		return t
	}
	if t, ok := strings.CutSuffix(retryTopic, SpringRetrySuffix); ok {
		return t
	}
	if i := strings.LastIndex(retryTopic, SpringRetrySuffix+"-"); i > 0 {
		n := retryTopic[i+len(SpringRetrySuffix)+1:]
		if n != "" && strings.Trim(n, "0123456789") == "" {
			return retryTopic[:i]
		}
	}
	return retryTopic
}

func (j *Job) deadLetterRaw(ctx context.Context, it *item) error {
	topic := j.invalidDLQ()
	hs := append(append([]kgo.RecordHeader(nil), it.m.Headers...),
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(ReasonInvalidMarker + ": " + errorText(it.err))},
		kgo.RecordHeader{Key: HeaderSource, Value: []byte(j.retryTopic + "/" + strconv.Itoa(int(it.part)) + "@" + strconv.FormatInt(it.offset, 10))})
	rec := &kgo.Record{Topic: topic, Key: it.m.Key, Value: it.m.Value, Headers: hs}
	if err := j.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("retry: dead-lettering invalid marker on %s: %w", topic, err)
	}
	afterCommit(ctx, func() {
		j.deadLettered.Add(1)
		j.cfg.metrics.incDeadLettered(j.retryTopic)
		j.alerts.deadLettered(it.m)
	})
	return nil
}

// jobWork is the Job's side of the group lifecycle (groupengine.Work): a
// tracker per retry-topic partition and the scheduler's markers.
type jobWork Job

// Assign starts tracking newly assigned partitions from their committed
// offsets and commit metadata, after the locks caught up with the topic so
// that superseded markers are recognised.
func (w *jobWork) Assign(ctx context.Context, cps map[ordering.TopicPartition]ordering.Checkpoint) {
	j := (*Job)(w)
	if !j.persist(ctx, "sync key locks", j.locks.Sync) {
		j.cfg.logger.Warn("retry: key locks not synced before the assignment", "retry_topic", j.retryTopic)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	var ps []int32
	for tp, cp := range cps {
		if tp.Topic != j.retryTopic {
			continue
		}
		jp := &jobPart{tracker: ordering.NewTracker(-1), base: ordering.Checkpoint{Offset: -1}}
		if cp.Offset >= 0 {
			tr, err := ordering.ResumeTracker(cp)
			if err != nil {
				j.cfg.logger.Warn("retry: commit metadata unusable, finished markers above the commit run again", "partition", tp.Partition, "err", err)
			}
			jp.tracker, jp.next, jp.base = tr, cp.Offset, cp
		}
		j.parts[tp.Partition] = jp
		ps = append(ps, tp.Partition)
	}
	j.cfg.logger.Info("retry: assigned", "retry_topic", j.retryTopic, "partitions", ps)
}

// Release stops work on partitions taken away: markers not running are
// dropped (they stay uncommitted for the next owner), running ones are
// waited for until ctx is done; it returns each partition's checkpoint.
func (w *jobWork) Release(ctx context.Context, tps []ordering.TopicPartition) map[ordering.TopicPartition]ordering.Checkpoint {
	j := (*Job)(w)
	cps := make(map[ordering.TopicPartition]ordering.Checkpoint)
	if j.txn != nil {
		// The open transaction aborts (the group rebalanced): nothing
		// running now can commit, so there is nothing to wait for.
		gone, cancel := context.WithCancel(ctx)
		cancel()
		ctx = gone
	}
	for _, tp := range tps {
		if tp.Topic != j.retryTopic {
			continue
		}
		if err := j.sched.dropPartition(ctx, tp.Partition); err != nil {
			j.cfg.logger.Warn("retry: released partition still running", "partition", tp.Partition, "err", err)
		}
		j.mu.Lock()
		if jp := j.parts[tp.Partition]; jp != nil {
			cps[tp] = jp.tracker.Checkpoint(ordering.DefaultMetadataMaxBytes)
			delete(j.parts, tp.Partition)
		}
		j.mu.Unlock()
	}
	return cps
}

// Checkpoints returns the checkpoint of every held partition.
func (w *jobWork) Checkpoints() map[ordering.TopicPartition]ordering.Checkpoint {
	j := (*Job)(w)
	j.mu.Lock()
	defer j.mu.Unlock()
	cps := make(map[ordering.TopicPartition]ordering.Checkpoint, len(j.parts))
	for p, jp := range j.parts {
		cps[ordering.TopicPartition{Topic: j.retryTopic, Partition: p}] = jp.tracker.Checkpoint(ordering.DefaultMetadataMaxBytes)
	}
	return cps
}

// Drain stops dispatching and waits for running handlers until ctx is
// done, then cancels theirs and waits for them to return. Markers whose
// handler did not finish stay uncommitted.
func (w *jobWork) Drain(ctx context.Context) error {
	j := (*Job)(w)
	j.stopLoop()
	<-j.sched.loopDone
	j.bg.Wait()
	done := make(chan struct{})
	go func() { j.sched.runWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		j.cfg.logger.Warn("retry: shutdown timeout, cancelling running handlers")
		j.cancelWork()
		<-done
	}
	return nil
}

// gaugeLoop publishes the backlog and oldest-marker age and checks the alert
// thresholds.
func (j *Job) gaugeLoop(ctx context.Context) {
	t := time.NewTicker(j.cfg.thresholds.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			backlog, age := j.backlog()
			j.cfg.metrics.setGauges(j.retryTopic, backlog, age)
			j.alerts.observe(backlog, age)
		}
	}
}

// backlog returns the markers not finished (held, plus not yet read) and
// the age of the oldest held one.
func (j *Job) backlog() (int, time.Duration) {
	held, _, oldest := j.sched.counts()
	n := held
	j.mu.Lock()
	for _, jp := range j.parts {
		if jp.hw > jp.next && jp.next >= 0 {
			n += int(jp.hw - jp.next)
		}
	}
	j.mu.Unlock()
	var age time.Duration
	if !oldest.IsZero() {
		age = max(time.Since(oldest), 0)
	}
	return n, age
}
