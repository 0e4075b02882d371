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

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

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

// Stats is a snapshot of a Job's work.
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
type Job struct {
	cfg        config
	handler    Handler
	retryTopic string
	group      string
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

	mu    sync.Mutex
	parts map[int32]*jobPart

	commitMu sync.Mutex

	retried, succeeded, reparked, deadLettered, superseded atomic.Int64
}

type jobPart struct {
	tracker   *ordering.Tracker
	committed ordering.Checkpoint
	next      int64 // next offset to read
	hw        int64 // high watermark seen in the last fetch
}

// NewJob returns a Job that runs handler for the markers of the retry topic
// (Topic or RetryTopic). Every invalid option is reported at once, each
// wrapping ErrInvalidOption. Options used: Topic, RetryTopic,
// DeadLetterTopic, Group, ClientOpts, MaxAttempts, WithBackoff, Concurrency,
// MaxBuffered, CommitInterval, ShutdownTimeout, RefreshInterval, KeyOrder,
// Logger, WithMetrics, OnAlert.
func NewJob(handler Handler, opts ...Opt) (*Job, error) {
	c := newConfig(opts)
	err := c.validate(true)
	if handler == nil {
		err = errors.Join(err, fmt.Errorf("%w: nil handler", ErrInvalidOption))
	}
	kopts, kerr := produce.ApplyKgo(produce.NoLoss, c.clientOpts)
	if kerr != nil {
		err = errors.Join(err, fmt.Errorf("%w: ClientOpts: %w", ErrInvalidOption, kerr))
	}
	if err != nil {
		return nil, err
	}
	j := &Job{
		cfg:        c,
		handler:    handler,
		retryTopic: c.fixedRetryTopic(),
		group:      c.groupName(),
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
// or the error that stopped it. The retry topic must exist (create it, like
// any no-loss topic, with replication factor 3 and min.insync.replicas 2).
// A Job runs once.
func (j *Job) Run(ctx context.Context) error {
	if !j.started.CompareAndSwap(false, true) {
		return fmt.Errorf("retry: Job.Run called twice: %w", ErrClosed)
	}
	log := j.cfg.logger
	locks := j.cfg.locks
	if locks == nil {
		var err error
		if locks, err = openKeyLocks(ctx, &j.cfg); err != nil {
			return err
		}
		defer locks.Close()
	}
	j.locks = locks
	wcfg := j.cfg
	wcfg.locks = locks

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

	opts := append(append([]kgo.Opt(nil), j.kgoOpts...),
		kgo.ConsumeTopics(j.retryTopic),
		kgo.ConsumerGroup(j.group),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(pinPartitioner()),
		kgo.OnPartitionsAssigned(j.assigned),
		kgo.OnPartitionsRevoked(j.revoked),
		kgo.OnPartitionsLost(j.lost),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("retry: job client: %w", err)
	}
	j.cl = cl
	j.w = writer{cl: cl, cfg: &wcfg, alerts: j.alerts}

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	go j.sched.loop(loopCtx, workCtx)
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); j.commitLoop(loopCtx) }()
	go func() { defer bg.Done(); j.gaugeLoop(loopCtx) }()

	log.Info("retry: job started", "retry_topic", j.retryTopic, "group", j.group, "key_order", j.keyOrder)
	runErr := j.pollLoop(ctx)

	// Shutdown: no new dispatches, wait for running handlers, commit, leave.
	stopLoop()
	<-j.sched.loopDone
	bg.Wait()
	done := make(chan struct{})
	go func() { j.sched.runWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(j.cfg.shutdownTimeout):
		log.Warn("retry: shutdown timeout, cancelling running handlers")
		cancelWork()
		<-done
	}
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	if err := j.commit(cctx, j.cl, nil); err != nil {
		log.Warn("retry: final commit", "err", err)
	}
	ccancel()
	j.mu.Lock()
	j.parts = map[int32]*jobPart{} // nothing is committed from here on
	j.mu.Unlock()
	cl.Close()
	log.Info("retry: job stopped", "retry_topic", j.retryTopic)
	return runErr
}

func (j *Job) pollLoop(ctx context.Context) error {
	for {
		room, err := j.waitRoom(ctx)
		if err != nil {
			return nil
		}
		fs := j.cl.PollRecords(ctx, room)
		if ctx.Err() != nil {
			j.cl.AllowRebalance()
			return nil
		}
		if fs.IsClientClosed() {
			return fmt.Errorf("retry: job client: %w", kgo.ErrClientClosed)
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
	j.mu.Unlock()

	m, err := ParseMarker(r)
	switch {
	case skip:
		// Finished before the last restart, as the commit metadata says.
		if err == nil {
			j.locks.resolve(r.Partition, r.Offset, m.Origin)
		}
		j.done(r.Partition, r.Offset)
	case err == nil && m.Kind == KindResolved:
		j.locks.resolve(r.Partition, r.Offset, m.Origin)
		j.done(r.Partition, r.Offset)
	case err == nil && m.Kind == KindMarker:
		if !j.locks.observe(r.Partition, r.Offset, m) {
			j.superseded.Add(1)
			j.done(r.Partition, r.Offset)
			return
		}
		it := &item{m: m, part: r.Partition, offset: r.Offset, due: m.Due, index: -1}
		if j.keyOrder && m.Key != nil {
			it.keyed, it.key = true, lockKey{m.Topic, string(m.Key)}
		}
		j.sched.add(it)
	default:
		if err == nil {
			err = fmt.Errorf("%w: a %s record on the retry topic", ErrInvalidMarker, m.Kind)
		}
		j.cfg.logger.Error("retry: invalid marker", "partition", r.Partition, "offset", r.Offset, "err", err)
		j.sched.add(&item{invalid: true, part: r.Partition, offset: r.Offset, m: &Marker{Key: r.Key, Value: r.Value, Headers: r.Headers}, err: err, index: -1})
	}
}

// done marks a retry offset finished for commits.
func (j *Job) done(p int32, off int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if jp := j.parts[p]; jp != nil {
		if err := jp.tracker.Done(off); err != nil {
			j.cfg.logger.Error("retry: finishing offset", "partition", p, "offset", off, "err", err)
		}
	}
}

// finished is called by the scheduler for every item that is finished.
func (j *Job) finished(it *item) { j.done(it.part, it.offset) }

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
		return j.persist(ctx, "dead letter", func(ctx context.Context) error { return j.deadLetterRaw(ctx, it) })
	}
	m := it.m
	if !j.locks.live(it.part, it.offset, m.Origin) {
		// A later marker of the record was read while this one waited.
		j.superseded.Add(1)
		return true
	}
	j.retried.Add(1)
	j.cfg.metrics.incRetried(m.Topic)
	err := j.callHandler(ctx, m)
	if err != nil && ctx.Err() != nil {
		// Interrupted by shutdown: the attempt does not count.
		return false
	}
	if err == nil {
		j.succeeded.Add(1)
		j.cfg.metrics.incSucceeded(m.Topic)
		j.cfg.logger.Info("retry: succeeded", "origin", m.Origin.String(), "attempt", m.Attempts+1)
		return j.resolve(ctx, it)
	}
	next := m.failed(err, time.Now())
	reason := ""
	switch {
	case IsPermanent(err):
		reason = ReasonPermanent
	case next.Attempts >= j.cfg.maxAttempts:
		reason = ReasonMaxAttempts
	}
	if reason != "" {
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
		return j.cfg.topic + DeadLetterSuffix
	}
	return strings.TrimSuffix(j.retryTopic, RetrySuffix) + DeadLetterSuffix
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
	j.deadLettered.Add(1)
	j.cfg.metrics.incDeadLettered(j.retryTopic)
	j.alerts.deadLettered(it.m)
	return nil
}

// assigned starts tracking newly assigned partitions from their committed
// offsets and commit metadata, after the locks caught up with the topic so
// that superseded markers are recognised.
func (j *Job) assigned(ctx context.Context, cl *kgo.Client, a map[string][]int32) {
	ps := a[j.retryTopic]
	if len(ps) == 0 {
		return
	}
	var offs kadm.OffsetResponses
	if !j.persist(ctx, "fetch committed offsets", func(ctx context.Context) error {
		var err error
		// The callback's client, not j.cl: kgo may assign before NewClient has returned to Run.
		offs, err = kadm.NewClient(cl).FetchOffsets(ctx, j.group)
		if err == nil {
			err = offs.Error()
		}
		return err
	}) {
		return
	}
	if !j.persist(ctx, "sync key locks", j.locks.Sync) {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, p := range ps {
		jp := &jobPart{tracker: ordering.NewTracker(-1), committed: ordering.Checkpoint{Offset: -1}}
		if o, ok := offs.Lookup(j.retryTopic, p); ok && o.Err == nil && o.At >= 0 {
			cp := ordering.Checkpoint{Offset: o.At, Metadata: o.Metadata}
			tr, err := ordering.ResumeTracker(cp)
			if err != nil {
				j.cfg.logger.Warn("retry: commit metadata unusable, finished markers above the commit run again", "partition", p, "err", err)
			}
			jp.tracker, jp.committed, jp.next = tr, cp, o.At
		}
		j.parts[p] = jp
	}
	j.cfg.logger.Info("retry: assigned", "retry_topic", j.retryTopic, "partitions", ps)
}

func (j *Job) revoked(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
	j.release(ctx, cl, r[j.retryTopic], true)
}

func (j *Job) lost(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
	j.release(ctx, cl, r[j.retryTopic], false)
}

// release stops work on partitions taken away: markers not running are
// dropped (they stay uncommitted for the next owner), running ones are
// waited for, and, if commit, the final checkpoint is committed.
func (j *Job) release(ctx context.Context, cl *kgo.Client, ps []int32, commit bool) {
	if len(ps) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, j.cfg.shutdownTimeout)
	defer cancel()
	for _, p := range ps {
		if err := j.sched.dropPartition(wctx, p); err != nil {
			j.cfg.logger.Warn("retry: revoked partition still running", "partition", p, "err", err)
		}
	}
	if commit {
		if err := j.commit(wctx, cl, ps); err != nil {
			j.cfg.logger.Warn("retry: commit on revoke", "partitions", ps, "err", err)
		}
	}
	j.mu.Lock()
	for _, p := range ps {
		delete(j.parts, p)
	}
	j.mu.Unlock()
	j.cfg.logger.Info("retry: released", "retry_topic", j.retryTopic, "partitions", ps, "committed", commit)
}

func (j *Job) commitLoop(ctx context.Context) {
	t := time.NewTicker(j.cfg.commitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := j.commit(ctx, j.cl, nil); err != nil && ctx.Err() == nil {
				j.cfg.logger.Warn("retry: commit", "err", err)
			}
		}
	}
}

// commit commits the checkpoint of the given partitions (all if nil) that
// moved since the last commit.
func (j *Job) commit(ctx context.Context, cl *kgo.Client, only []int32) error {
	j.commitMu.Lock()
	defer j.commitMu.Unlock()
	cps := map[int32]ordering.Checkpoint{}
	j.mu.Lock()
	for p, jp := range j.parts {
		if only != nil && !containsPart(only, p) {
			continue
		}
		cp := jp.tracker.Checkpoint(ordering.DefaultMetadataMaxBytes)
		if cp.Offset < 0 || cp == jp.committed {
			continue
		}
		cps[p] = cp
	}
	j.mu.Unlock()
	if len(cps) == 0 {
		return nil
	}
	offsets := map[int32]kgo.EpochOffset{}
	for p, cp := range cps {
		offsets[p] = kgo.EpochOffset{Epoch: -1, Offset: cp.Offset}
	}
	cctx := kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			if req.Topics[i].Topic != j.retryTopic {
				continue
			}
			for k := range req.Topics[i].Partitions {
				rp := &req.Topics[i].Partitions[k]
				if cp, ok := cps[rp.Partition]; ok {
					md := cp.Metadata
					rp.Metadata = &md
				}
			}
		}
		return nil
	})
	var cerr error
	cl.CommitOffsetsSync(cctx, map[string]map[int32]kgo.EpochOffset{j.retryTopic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				clear(cps)
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						cerr = errors.Join(cerr, fmt.Errorf("partition %d: %w", p.Partition, err))
						delete(cps, p.Partition)
					}
				}
			}
		})
	j.mu.Lock()
	for p, cp := range cps {
		if jp := j.parts[p]; jp != nil {
			jp.committed = cp
		}
	}
	j.mu.Unlock()
	for p, cp := range cps {
		j.locks.gc(p, cp.Offset)
	}
	if cerr != nil {
		return fmt.Errorf("retry: committing %s: %w", j.retryTopic, cerr)
	}
	return nil
}

func containsPart(ps []int32, p int32) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
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
