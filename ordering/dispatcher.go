package ordering

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// String returns "topic/partition".
func (tp TopicPartition) String() string {
	return tp.Topic + "/" + strconv.FormatInt(int64(tp.Partition), 10)
}

// Message is a record as the Dispatcher sees it: where it comes from, its
// key, and the caller's own record (for example a *kgo.Record or a
// *sarama.ConsumerMessage) in Value, handed to the Handler untouched.
type Message[T any] struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     T
	// Last is the last offset of a message that stands for a batch of
	// records, Offset to Last: the batch is done as a whole, and no
	// checkpoint passes Offset until it is. A Last at or below Offset
	// (the zero value included) means the message is one record.
	Last int64
}

// last returns the last offset m covers.
func (m Message[T]) last() int64 { return max(m.Offset, m.Last) }

// TopicPartition returns the partition the message belongs to.
func (m Message[T]) TopicPartition() TopicPartition {
	return TopicPartition{Topic: m.Topic, Partition: m.Partition}
}

// Handler processes one record. A nil error marks the record done; an error
// makes it a Failure that blocks what the mode orders behind it until it is
// resolved or retried. The context is cancelled when the record's partition
// is revoked and its wait runs out, or when the Dispatcher is closed.
type Handler[T any] func(ctx context.Context, m Message[T]) error

// Failure is a record whose handler returned an error (or panicked, see
// PanicError). The record is not done: in KeyOrder later records of its key
// wait, in PartitionOrder later records of its partition wait, until
// Dispatcher.Resolve or Dispatcher.Retry is called for it.
type Failure[T any] struct {
	Message  Message[T]
	Err      error
	Attempts int // times the handler ran for this record
}

// Stats is a snapshot of a Dispatcher's load.
type Stats struct {
	Partitions int   // assigned partitions
	Queues     int   // keys (KeyOrder), partitions (PartitionOrder) or records (Unordered) holding records
	Queued     int   // records waiting to run
	Running    int   // records whose handler is running
	Failed     int   // failed records waiting for Resolve or Retry
	Blocked    int   // records waiting behind a failed record
	Processed  int64 // records marked done by their handler or by Resolve
	Skipped    int64 // records skipped because the commit metadata named them done
}

type qstate uint8

const (
	qGone    qstate = iota // holds no record: new, emptied or dropped
	qReady                 // in the run queue
	qRunning               // its head is running
	qFailed                // its head failed; the rest wait
)

// queue holds the records that must run one after another: one key, one
// partition, or (Unordered) one record. It exists only while it holds
// records.
type queue[T any] struct {
	p        *partition[T]
	key      string
	msgs     []Message[T] // msgs[0] is next, running, or failed
	state    qstate
	attempts int
	err      error // the head's last failure
	dead     bool  // dropped by Revoke or Close
}

type partition[T any] struct {
	tp      TopicPartition
	tracker *Tracker
	ctx     context.Context
	cancel  context.CancelFunc
	keys    map[string]*queue[T] // KeyOrder
	whole   *queue[T]            // PartitionOrder
	failed  map[int64]*queue[T]  // by the failed record's offset
	running int
	queued  int           // records waiting to run (the Dispatcher's counts, per partition)
	nFailed int           // failed records waiting for Resolve or Retry
	blocked int           // records waiting behind them
	m       *partMetrics  // nil without ReportMetrics
	dropped bool          // revoked, or the Dispatcher closed
	gone    chan struct{} // closed when dropped (Dropped)
	drained chan struct{} // set by Revoke while records run; closed when running reaches 0
}

// Dispatcher runs a Handler over submitted records on a fixed pool of
// worker goroutines, keeping the order its Mode asks for, and tracks the
// committable offset of every assigned partition.
//
// Records of one partition must be submitted in offset order, from one
// goroutine at a time. Apart from that a Dispatcher is safe for concurrent
// use.
type Dispatcher[T any] struct {
	handle    Handler[T]
	cfg       cfg
	onFailure func(Failure[T])
	log       *slog.Logger
	slots     chan struct{} // one per record held
	closing   chan struct{} // closed by Close
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu        sync.Mutex
	wake      sync.Cond // signalled when ready gains a queue, broadcast on Close
	closed    bool
	parts     map[TopicPartition]*partition[T]
	ready     []*queue[T] // FIFO of queues whose next record may run
	queues    int         // queues holding records
	active    int         // queues ready or running
	queued    int
	running   int
	failed    int
	blocked   int
	processed int64
	skipped   int64
	idle      chan struct{} // closed while active == 0
}

// New returns a Dispatcher that runs handle, with its workers started. Every
// invalid option is reported at once, each wrapping ErrInvalidOption. Close
// the Dispatcher to stop its workers.
func New[T any](handle Handler[T], opts ...Opt) (*Dispatcher[T], error) {
	return NewWithFailureFunc(handle, nil, opts...)
}

// NewWithFailureFunc is New with onFailure (nil: none) called for every
// failed record, after the failure is recorded and the record's key (or
// partition) is blocked. It runs on a worker goroutine, so it should return
// promptly; it may call Dispatcher.Resolve or Dispatcher.Retry, also later
// from another goroutine. Its record type is the Dispatcher's, checked at
// compile time.
func NewWithFailureFunc[T any](handle Handler[T], onFailure func(Failure[T]), opts ...Opt) (*Dispatcher[T], error) {
	c := defaultCfg()
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	err := c.validate()
	if handle == nil {
		err = errors.Join(err, fmt.Errorf("%w: handler is nil", ErrInvalidOption))
	}
	if err != nil {
		return nil, err
	}
	log := c.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	idle := make(chan struct{})
	close(idle)
	d := &Dispatcher[T]{
		handle:    handle,
		cfg:       c,
		onFailure: onFailure,
		log:       log,
		slots:     make(chan struct{}, c.maxBuffered),
		closing:   make(chan struct{}),
		parts:     make(map[TopicPartition]*partition[T]),
		idle:      idle,
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wake.L = &d.mu
	if c.metrics != nil {
		c.metrics.gauges.sources.Add(d)
	}
	d.wg.Add(c.concurrency)
	for range c.concurrency {
		go d.work()
	}
	return d, nil
}

// Assign starts tracking a partition from its committed checkpoint: records
// from cp.Offset on may be submitted, and records cp.Metadata names as done
// are skipped by Submit (marked done without running). For a partition with
// no commit, pass the offset consumption starts at and empty metadata.
//
// If the metadata cannot be used the partition is still assigned, without
// skips, and the error wraps ErrInvalidMetadata or ErrMetadataMismatch; the
// only consequence is that those records run again.
func (d *Dispatcher[T]) Assign(tp TopicPartition, cp Checkpoint) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if _, ok := d.parts[tp]; ok {
		return fmt.Errorf("%w: %s", ErrAssigned, tp)
	}
	t, err := ResumeTracker(cp)
	p := &partition[T]{tp: tp, tracker: t, failed: make(map[int64]*queue[T]), m: d.cfg.metrics.forTopic(tp.Topic)}
	if d.cfg.mode == KeyOrder {
		p.keys = make(map[string]*queue[T])
	}
	p.gone = make(chan struct{})
	p.ctx, p.cancel = context.WithCancel(context.WithValue(d.ctx, droppedKey{}, p.gone))
	d.parts[tp] = p
	if err != nil {
		d.log.Warn("ordering: ignoring commit metadata", "partition", tp.String(), "offset", cp.Offset, "err", err)
		return fmt.Errorf("ordering: assign %s: %w", tp, err)
	}
	return nil
}

// Submit hands a record to the Dispatcher. It blocks while MaxBuffered
// records are held, until one finishes, ctx is done, or the Dispatcher is
// closed. Records of one partition must be submitted in offset order; an
// offset at or below one already submitted returns an error wrapping
// ErrOffsetOrder. A record the partition's commit metadata names as done is
// marked done without running. A partition that is not assigned returns an
// error wrapping ErrNotAssigned, and so does a record whose partition was
// revoked while it waited for room, even if the partition was assigned again
// meanwhile: the record belongs to the revoked assignment.
func (d *Dispatcher[T]) Submit(ctx context.Context, m Message[T]) error {
	tp := m.TopicPartition()
	d.mu.Lock()
	p, err := d.partitionLocked(tp)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	if p.tracker.skipRange(m.Offset, m.last()) {
		defer d.mu.Unlock()
		if err := p.tracker.addRange(m.Offset, m.last()); err != nil {
			return fmt.Errorf("ordering: submit %s: %w", tp, err)
		}
		_ = p.tracker.Done(m.Offset) // just added, so pending
		d.skipped++
		return nil
	}
	if err := p.tracker.canAdd(m.Offset); err != nil {
		d.mu.Unlock()
		return fmt.Errorf("ordering: submit %s: %w", tp, err)
	}
	select {
	case d.slots <- struct{}{}:
	default:
		d.mu.Unlock()
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("ordering: submit %s offset %d: %w", tp, m.Offset, context.Cause(ctx))
		case <-d.closing:
			return ErrClosed
		}
		d.mu.Lock()
		again, err := d.partitionLocked(tp)
		if err == nil && again != p {
			// Revoked and assigned again while m waited: m belongs to
			// the revoked assignment. Added to the new one, it would
			// make it refuse the lower offsets it starts from.
			err = fmt.Errorf("ordering: submit %s offset %d: %w (revoked while it waited for room)", tp, m.Offset, ErrNotAssigned)
		}
		if err != nil {
			<-d.slots
			d.mu.Unlock()
			return err
		}
	}
	defer d.mu.Unlock()
	if err := p.tracker.addRange(m.Offset, m.last()); err != nil {
		<-d.slots
		return fmt.Errorf("ordering: submit %s: %w", tp, err)
	}
	d.enqueueLocked(p, m)
	return nil
}

func (d *Dispatcher[T]) partitionLocked(tp TopicPartition) (*partition[T], error) {
	if d.closed {
		return nil, ErrClosed
	}
	p := d.parts[tp]
	if p == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotAssigned, tp)
	}
	return p, nil
}

func (d *Dispatcher[T]) enqueueLocked(p *partition[T], m Message[T]) {
	var q *queue[T]
	switch d.cfg.mode {
	case KeyOrder:
		q = p.keys[string(m.Key)]
		if q == nil {
			q = &queue[T]{p: p, key: string(m.Key), state: qGone}
			p.keys[q.key] = q
		}
	case PartitionOrder:
		if p.whole == nil {
			p.whole = &queue[T]{p: p, state: qGone}
		}
		q = p.whole
	default:
		q = &queue[T]{p: p, state: qGone}
	}
	d.uncountLocked(q)
	q.msgs = append(q.msgs, m)
	if q.state == qGone {
		d.queues++
		d.pushLocked(q)
	}
	d.countLocked(q)
}

// pushLocked makes q ready and appends it to the run queue. The caller
// brackets the change with uncountLocked and countLocked.
func (d *Dispatcher[T]) pushLocked(q *queue[T]) {
	q.state = qReady
	d.ready = append(d.ready, q)
	d.wake.Signal()
}

// uncountLocked takes q out of the load counts before a change to its
// records or state; countLocked puts it back after, and updates the idle
// signal.
func (d *Dispatcher[T]) uncountLocked(q *queue[T]) { d.addCountsLocked(q, -1) }

func (d *Dispatcher[T]) countLocked(q *queue[T]) {
	d.addCountsLocked(q, +1)
	switch idle := isClosed(d.idle); {
	case d.active == 0 && !idle:
		close(d.idle)
	case d.active > 0 && idle:
		d.idle = make(chan struct{})
	}
}

func (d *Dispatcher[T]) addCountsLocked(q *queue[T], sign int) {
	n, p := len(q.msgs), q.p
	switch q.state {
	case qReady:
		d.active += sign
		d.queued += sign * n
		p.queued += sign * n
	case qRunning:
		d.active += sign
		d.running += sign
		d.queued += sign * (n - 1)
		p.queued += sign * (n - 1)
	case qFailed:
		d.failed += sign
		d.blocked += sign * (n - 1)
		p.nFailed += sign
		p.blocked += sign * (n - 1)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (d *Dispatcher[T]) work() {
	defer d.wg.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		for len(d.ready) == 0 && !d.closed {
			d.wake.Wait()
		}
		if d.closed {
			return
		}
		q := d.ready[0]
		d.ready[0] = nil
		d.ready = d.ready[1:]
		if q.state != qReady {
			continue
		}
		d.uncountLocked(q)
		q.state = qRunning
		q.attempts++
		d.countLocked(q)
		p, m := q.p, q.msgs[0]
		p.running++
		d.mu.Unlock()
		var err error
		if p.m == nil {
			err = d.run(p.ctx, m)
		} else {
			start := time.Now()
			err = d.run(p.ctx, m)
			p.m.observe(time.Since(start), err)
		}
		d.mu.Lock()
		f, failed := d.finishLocked(q, m, err)
		if failed && d.onFailure != nil {
			d.mu.Unlock()
			d.onFailure(f)
			d.mu.Lock()
		}
	}
}

// droppedKey is the context key of a partition's gone channel (Dropped).
type droppedKey struct{}

// Dropped returns, for the context a Handler runs with, a channel closed when
// the record's partition is revoked or the Dispatcher closed. From then on
// the record's outcome no longer counts (it stays not done and runs again on
// the partition's next owner), so a handler that waits (a backoff between
// attempts, say) can stop at once instead of holding up the revocation. For
// any other context it returns nil, which never fires.
func Dropped(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(droppedKey{}).(chan struct{})
	return ch
}

func (d *Dispatcher[T]) run(ctx context.Context, m Message[T]) error {
	return Guard(func() error { return d.handle(ctx, m) })
}

// finishLocked records the outcome of a run of q's head record m. It reports
// the failure to hand to the failure func (NewWithFailureFunc), if any.
func (d *Dispatcher[T]) finishLocked(q *queue[T], m Message[T], err error) (Failure[T], bool) {
	p := q.p
	q.dead = q.dead || p.dropped // an Unordered queue is in no list while it runs
	defer func() {
		p.running--
		if p.running == 0 && p.drained != nil {
			close(p.drained)
			p.drained = nil
		}
	}()
	switch {
	case err == nil:
		if derr := p.tracker.Done(m.Offset); derr != nil {
			d.log.Error("ordering: tracker out of step", "partition", p.tp.String(), "offset", m.Offset, "err", derr)
		}
		d.processed++
		d.popLocked(q)
		return Failure[T]{}, false
	case q.dead:
		// Revoked or closed while running: the record stays not done, and
		// whoever consumes the partition next runs it again.
		d.log.Debug("ordering: record failed after its partition was dropped",
			"partition", p.tp.String(), "offset", m.Offset, "err", err)
		d.popLocked(q)
		return Failure[T]{}, false
	}
	d.uncountLocked(q)
	q.state = qFailed
	q.err = err
	p.failed[m.Offset] = q
	d.countLocked(q)
	d.log.Warn("ordering: record failed", "partition", p.tp.String(), "offset", m.Offset,
		"attempts", q.attempts, "err", err)
	return Failure[T]{Message: m, Err: err, Attempts: q.attempts}, true
}

// popLocked removes q's head record, which is done or dropped, and lets the
// next one run.
func (d *Dispatcher[T]) popLocked(q *queue[T]) {
	d.uncountLocked(q)
	defer d.countLocked(q)
	<-d.slots
	q.msgs[0] = Message[T]{}
	q.msgs = q.msgs[1:]
	q.attempts, q.err = 0, nil
	if len(q.msgs) > 0 && !q.dead {
		d.pushLocked(q)
		return
	}
	q.msgs = nil
	q.state = qGone
	d.queues--
	if !q.dead {
		d.forgetLocked(q)
	}
}

// forgetLocked removes an empty queue from its partition.
func (d *Dispatcher[T]) forgetLocked(q *queue[T]) {
	switch d.cfg.mode {
	case KeyOrder:
		delete(q.p.keys, q.key)
	case PartitionOrder:
		q.p.whole = nil
	}
}

// Resolve marks a failed record done, as if its handler had succeeded, and
// lets the records behind it run. Call it once the failure has been dealt
// with durably, for example written to a retry topic. A record that is not
// a pending failure returns an error wrapping ErrNotFailed.
func (d *Dispatcher[T]) Resolve(tp TopicPartition, offset int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	q, err := d.takeFailedLocked(tp, offset)
	if err != nil {
		return err
	}
	if err := q.p.tracker.Done(offset); err != nil {
		d.log.Error("ordering: tracker out of step", "partition", tp.String(), "offset", offset, "err", err)
	}
	d.processed++
	d.popLocked(q)
	return nil
}

// Retry runs a failed record's handler again; the records behind it keep
// waiting. A record that is not a pending failure returns an error wrapping
// ErrNotFailed.
func (d *Dispatcher[T]) Retry(tp TopicPartition, offset int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	q, err := d.takeFailedLocked(tp, offset)
	if err != nil {
		return err
	}
	d.uncountLocked(q)
	d.pushLocked(q)
	d.countLocked(q)
	return nil
}

func (d *Dispatcher[T]) takeFailedLocked(tp TopicPartition, offset int64) (*queue[T], error) {
	p, err := d.partitionLocked(tp)
	if err != nil {
		return nil, err
	}
	q := p.failed[offset]
	if q == nil {
		return nil, fmt.Errorf("%w: %s offset %d", ErrNotFailed, tp, offset)
	}
	delete(p.failed, offset)
	return q, nil
}

// Failures returns the records waiting for Resolve or Retry, by partition
// and offset.
func (d *Dispatcher[T]) Failures() []Failure[T] {
	d.mu.Lock()
	defer d.mu.Unlock()
	var fs []Failure[T]
	for _, p := range d.parts {
		for _, q := range p.failed {
			fs = append(fs, Failure[T]{Message: q.msgs[0], Err: q.err, Attempts: q.attempts})
		}
	}
	slices.SortFunc(fs, func(a, b Failure[T]) int {
		return cmp.Or(cmp.Compare(a.Message.Topic, b.Message.Topic),
			cmp.Compare(a.Message.Partition, b.Message.Partition),
			cmp.Compare(a.Message.Offset, b.Message.Offset))
	})
	return fs
}

// Checkpoint returns what to commit for an assigned partition now (see
// Tracker.Checkpoint). It keeps working after Close, so the final
// checkpoints can be committed once Close has returned.
func (d *Dispatcher[T]) Checkpoint(tp TopicPartition) (Checkpoint, error) {
	d.mu.Lock()
	p := d.parts[tp]
	d.mu.Unlock()
	if p == nil {
		return Checkpoint{}, fmt.Errorf("%w: %s", ErrNotAssigned, tp)
	}
	return p.tracker.Checkpoint(d.cfg.maxMetadata), nil
}

// Checkpoints returns the checkpoint of every assigned partition.
func (d *Dispatcher[T]) Checkpoints() map[TopicPartition]Checkpoint {
	d.mu.Lock()
	parts := make([]*partition[T], 0, len(d.parts))
	for _, p := range d.parts {
		parts = append(parts, p)
	}
	d.mu.Unlock()
	cps := make(map[TopicPartition]Checkpoint, len(parts))
	for _, p := range parts {
		cps[p.tp] = p.tracker.Checkpoint(d.cfg.maxMetadata)
	}
	return cps
}

// Revoke stops a partition: its queued records and pending failures are
// dropped (they stay not done), Submit rejects it from now on, and Revoke
// waits for its running records until ctx is done. It returns the final
// checkpoint to commit. If ctx ends first, the running records' context is
// cancelled and Revoke returns the checkpoint as it stands (still safe to
// commit: it never passes a record that has not finished) with an error
// wrapping the context's.
func (d *Dispatcher[T]) Revoke(ctx context.Context, tp TopicPartition) (Checkpoint, error) {
	d.mu.Lock()
	p := d.parts[tp]
	if p == nil {
		d.mu.Unlock()
		return Checkpoint{}, fmt.Errorf("%w: %s", ErrNotAssigned, tp)
	}
	delete(d.parts, tp)
	d.dropLocked(p)
	var wait chan struct{}
	if p.running > 0 {
		p.drained = make(chan struct{})
		wait = p.drained
	}
	d.mu.Unlock()

	var err error
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			err = fmt.Errorf("ordering: revoke %s: records still running: %w", tp, context.Cause(ctx))
		}
	}
	p.cancel()
	cp := p.tracker.Checkpoint(d.cfg.maxMetadata)
	d.log.Debug("ordering: revoked", "partition", tp.String(), "offset", cp.Offset, "err", err)
	return cp, err
}

// dropLocked drops every record of p that is not running.
func (d *Dispatcher[T]) dropLocked(p *partition[T]) {
	if !p.dropped {
		close(p.gone)
	}
	p.dropped = true
	var qs []*queue[T]
	kept := d.ready[:0]
	for _, q := range d.ready {
		if q.p == p {
			qs = append(qs, q)
		} else {
			kept = append(kept, q)
		}
	}
	clear(d.ready[len(kept):])
	d.ready = kept
	for _, q := range p.keys {
		qs = append(qs, q)
	}
	if p.whole != nil {
		qs = append(qs, p.whole)
	}
	for _, q := range p.failed {
		qs = append(qs, q)
	}
	for _, q := range qs {
		if q.dead {
			continue
		}
		q.dead = true
		d.uncountLocked(q)
		keep := 0
		if q.state == qRunning {
			keep = 1 // the worker running the head pops it when it returns
		}
		for range len(q.msgs) - keep {
			<-d.slots
		}
		clear(q.msgs[keep:])
		q.msgs = q.msgs[:keep]
		if keep == 0 {
			q.msgs = nil
			q.state = qGone
			d.queues--
		}
		d.countLocked(q)
	}
	p.keys, p.whole, p.failed = nil, nil, nil
}

// Drain waits until no record is queued or running: every submitted record
// is done, a pending failure, or waiting behind one. It returns early with the context's error.
func (d *Dispatcher[T]) Drain(ctx context.Context) error {
	d.mu.Lock()
	idle := d.idle
	d.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ordering: drain: %w", context.Cause(ctx))
	}
}

// Stats returns a snapshot of the Dispatcher's load.
func (d *Dispatcher[T]) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{
		Partitions: len(d.parts),
		Queues:     d.queues,
		Queued:     d.queued,
		Running:    d.running,
		Failed:     d.failed,
		Blocked:    d.blocked,
		Processed:  d.processed,
		Skipped:    d.skipped,
	}
}

// Close stops the Dispatcher: queued records and pending failures are
// dropped (they stay not done), running handlers see their context
// cancelled, and Close waits for them to return and for the workers to
// exit. Assigned partitions stay readable through Checkpoint. To finish
// queued work first, call Drain; to hand partitions over, Revoke them.
// Close is idempotent and always returns nil.
func (d *Dispatcher[T]) Close() error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.closing)
		for _, p := range d.parts {
			d.dropLocked(p)
		}
		d.cancel()
		d.wake.Broadcast()
	}
	d.mu.Unlock()
	d.wg.Wait()
	if d.cfg.metrics != nil {
		d.cfg.metrics.gauges.sources.Remove(d)
	}
	return nil
}

// partitionLoads calls fn with the load of every assigned partition.
func (d *Dispatcher[T]) partitionLoads(fn func(TopicPartition, partitionLoad)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for tp, p := range d.parts {
		fn(tp, partitionLoad{InFlight: p.running, Queued: p.queued, KeysBlocked: p.nFailed, Blocked: p.blocked})
	}
}
