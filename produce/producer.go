package produce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Producer sends records through a *kgo.Client configured by a preset. It
// is safe for concurrent use.
//
// A send succeeds only once the broker acknowledged the record as the
// preset requires (for NoLoss: every in-sync replica has it). Every other
// outcome is a [*DeliveryError] saying whether the record may have been
// written. Close flushes first, so nothing buffered is dropped without its
// sender hearing of it.
//
// Under ExactlyOnce records are sent inside [Producer.Transact]; a send
// that succeeded there is written but read_committed consumers see it only
// once Transact returned nil. Do not Close while a Transact runs: the
// broker then aborts the open transaction when it times out.
type Producer struct {
	cl     *kgo.Client
	preset Preset
	// idemSafe is true when kgo fails a record only if it knows the
	// record was not written: idempotent writes without
	// AllowIdempotentProduceCancellation.
	idemSafe bool
	logger   kgo.Logger // the application's kgo logger, or nil for slog.Default

	// txnID is the transactional id (ExactlyOnce), or "". txnMu runs
	// one Transact at a time; txnFailed counts the sends that failed
	// since the current transaction began.
	txnID     string
	txnMu     sync.Mutex
	txnFailed atomic.Int64

	linger             time.Duration // kgo.ProducerLinger
	defaultTopic       string        // kgo.DefaultProduceTopic
	defaultTopicAlways bool          // kgo.DefaultProduceTopicAlways
	closed             atomic.Bool

	// logCallback and logPromise are the callback of a SendAsync without
	// one and its promise, bound once so that such a send allocates
	// nothing.
	logCallback, logPromise func(*kgo.Record, error)
	// bound is the promise of the callback most recently passed to
	// SendAsync twice in a row, and lastCallback that callback's identity
	// (see promiseFor).
	bound        atomic.Pointer[boundPromise]
	lastCallback atomic.Uintptr
	// sends holds the *sendOp of Sends with a context that can end.
	sends sync.Pool
}

// New returns a Producer for preset p over a kgo client built from
// ApplyKgo(p, opts), and checks with ctx that a seed broker answers.
//
// The client does not linger (kgo.ProducerLinger(0), where kgo's default
// is 10 ms) unless opts set a linger: [Producer.Send] waits for each
// record, which a linger only delays, and with a linger a Send whose
// context can end costs a goroutine (see Send). Records sent while a
// request is in flight still leave together in the next one.
//
// New refuses options that contradict p (see [ValidateKgo]) with an error
// joining one [*ConfigError] per setting. Only ExactlyOnce takes a
// TransactionalID (and requires one); its records are sent inside
// [Producer.Transact].
func New(ctx context.Context, p Preset, opts ...kgo.Opt) (*Producer, error) {
	all, s, err := applyKgo(p, append([]kgo.Opt{kgo.ProducerLinger(0)}, opts...))
	if err != nil {
		return nil, err
	}
	if s.transactional && p != ExactlyOnce {
		return nil, &ConfigError{Preset: p, Setting: "TransactionalID", Value: "set",
			Problem: "only the ExactlyOnce preset runs transactions (Producer.Transact); every record sent outside one fails",
			Fix:     "remove kgo.TransactionalID, or use the ExactlyOnce preset",
			Err:     ErrInvalidConfig}
	}
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("produce: %w: %w", ErrInvalidConfig, err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("produce: no seed broker answered: %w", err)
	}
	pr := &Producer{
		cl:       cl,
		preset:   p,
		idemSafe: s.idempotent && !s.allowCancel,
		logger:   s.logger,
		txnID:    s.txnID,
	}
	bindMetrics(cl, pr.idemSafe)
	pr.logCallback = pr.logFailure
	pr.logPromise = pr.wrap(pr.logCallback)
	pr.defaultTopic, _ = cl.OptValue(kgo.DefaultProduceTopic).(string)
	pr.linger, _ = cl.OptValue(kgo.ProducerLinger).(time.Duration)
	pr.defaultTopicAlways, _ = cl.OptValue(kgo.DefaultProduceTopicAlways).(bool)
	return pr, nil
}

// topicOf returns the topic the client will produce r to.
func (p *Producer) topicOf(r *kgo.Record) string {
	if r.Topic == "" || p.defaultTopicAlways {
		return p.defaultTopic
	}
	return r.Topic
}

// Preset returns the preset the Producer was built with.
func (p *Producer) Preset() Preset { return p.preset }

// Client returns the underlying client, for metadata or admin requests.
// Records produced through it directly keep the preset's configuration but
// bypass the Producer's error reporting and Close's flush.
func (p *Producer) Client() *kgo.Client { return p.cl }

// Send produces r and waits for the outcome. It returns nil once the broker
// acknowledged r as the preset requires; r's Partition and Offset are then
// set. Otherwise it returns a [*DeliveryError] matching [ErrNotWritten] or,
// if r may have been written, [ErrOutcomeUnknown].
//
// If ctx ends first, Send returns at once with ErrOutcomeUnknown (and
// ctx's error) unless the client already failed r; r then still belongs to
// the client, which finishes it in the background and logs the outcome.
// Do not reuse r after that. With a ctx that never ends (such as
// context.Background()) Send waits on the caller's goroutine, as kgo's
// ProduceSync does. With one that can end, Send allocates nothing of its
// own and waits for the record's promise; only if the options given to
// [New] set a linger (kgo.ProducerLinger) does being able to return early
// cost one goroutine per Send, which runs ProduceSync (the only way to cut
// the linger short for the record's partition).
//
// A full buffer blocks Send until there is room or ctx ends.
func (p *Producer) Send(ctx context.Context, r *kgo.Record) error {
	err := p.send(ctx, r)
	if err != nil {
		p.txnFailed.Add(1)
	}
	return err
}

func (p *Producer) send(ctx context.Context, r *kgo.Record) error {
	if r == nil {
		return &DeliveryError{Partition: -1, Err: errNilRecord}
	}
	// r belongs to the client once handed over; keep what an abandoned
	// send reports.
	topic := p.topicOf(r)
	if p.closed.Load() {
		return &DeliveryError{Topic: topic, Partition: -1, Err: ErrClosed}
	}
	if err := ctx.Err(); err != nil {
		return &DeliveryError{Topic: topic, Partition: -1, Err: err}
	}
	if ctx.Done() == nil {
		// ctx never ends, so Send never gives up: wait on this goroutine.
		return p.result(r, p.cl.ProduceSync(ctx, r).FirstErr())
	}
	op, _ := p.sends.Get().(*sendOp)
	if op == nil {
		op = &sendOp{p: p, done: make(chan error, 1)}
		op.run, op.promise = op.produceSync, op.deliver
	}
	op.ctx, op.r = ctx, r
	if p.linger > 0 {
		// ProduceSync, unlike Produce, cuts the linger short for the
		// record's partition; it runs on its own goroutine so that Send
		// can return when ctx ends while the record is in flight.
		go op.run()
	} else {
		// Without a linger Produce is ProduceSync without the wait: the
		// promise answers this goroutine directly.
		p.cl.Produce(ctx, r, op.promise)
	}
	select {
	case err := <-op.done:
		op.release()
		return p.result(r, err)
	case <-ctx.Done():
		if op.state.CompareAndSwap(waiting, abandoned) {
			// op now belongs to the promise, which logs the outcome.
			return &DeliveryError{Topic: topic, Partition: -1, MaybeWritten: true, Err: ctx.Err()}
		}
		err := <-op.done
		op.release()
		return p.result(r, err)
	}
}

// SendAsync produces r and calls cb with r and nil once the broker
// acknowledged it as the preset requires, or with a [*DeliveryError]. cb is
// called exactly once: from SendAsync itself if r is refused before it is
// buffered, otherwise from the client's promise goroutine, serially with
// other callbacks. cb must not block and must not call Send, Flush or Close
// of the same Producer. A nil cb logs failures.
//
// A full buffer blocks SendAsync until there is room or ctx ends.
//
// The same callback value passed for many records (a function, or a
// closure made once) is bound to the Producer once, allocating nothing
// per record; a closure made for each record costs one small allocation
// more, its binding.
func (p *Producer) SendAsync(ctx context.Context, r *kgo.Record, cb func(*kgo.Record, error)) {
	var promise func(*kgo.Record, error)
	if cb == nil {
		cb, promise = p.logCallback, p.logPromise
	}
	if r == nil {
		p.txnFailed.Add(1)
		cb(nil, &DeliveryError{Partition: -1, Err: errNilRecord})
		return
	}
	if p.closed.Load() {
		p.txnFailed.Add(1)
		cb(r, &DeliveryError{Topic: p.topicOf(r), Partition: -1, Err: ErrClosed})
		return
	}
	if promise == nil {
		promise = p.promiseFor(cb)
	}
	p.cl.Produce(ctx, r, promise)
}

// boundPromise is a callback bound to its Producer as a kgo promise.
type boundPromise struct {
	callback unsafe.Pointer // the callback's identity, see funcIdentity
	promise  func(*kgo.Record, error)
}

// promiseFor returns the kgo promise that hands cb the outcome as the
// sender sees it. An application usually passes one callback for every
// record, so the binding of the callback seen twice in a row is kept and
// reused. Any other callback (a closure made for each record) gets a
// binding of its own, one small allocation: pooling those bindings
// measured slower (BenchmarkNoLossProduce/async-closure-per-record, 0.81
// to 0.84x raw kgo against 0.98 to 1.09x), as the promise goroutine puts
// them back on another P than the sender's and thousands are in flight.
func (p *Producer) promiseFor(cb func(*kgo.Record, error)) func(*kgo.Record, error) {
	id := funcIdentity(cb)
	if b := p.bound.Load(); b != nil && b.callback == id {
		return b.promise
	}
	// A repeat binds cb. lastCallback is only a hint: if it matches a
	// callback that has since been freed and its memory reused, the cost
	// is one binding too many, never a wrong callback, because bound
	// holds on to the very callback it compares with.
	if p.lastCallback.Load() == uintptr(id) {
		promise := p.wrap(cb)
		p.bound.Store(&boundPromise{callback: id, promise: promise})
		return promise
	}
	p.lastCallback.Store(uintptr(id))
	return p.wrap(cb)
}

// funcIdentity returns the pointer a func value is made of. Two func values
// with the same identity are the same function with the same captured
// variables: Go represents a func value as a pointer to its code and
// closure context, which reflect and the runtime rely on. Different
// identities may still be equal functions; that only costs a binding.
func funcIdentity(f func(*kgo.Record, error)) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&f))
}

// wrap returns the kgo promise that calls cb with r and p.result.
func (p *Producer) wrap(cb func(*kgo.Record, error)) func(*kgo.Record, error) {
	return func(r *kgo.Record, err error) { cb(r, p.result(r, err)) }
}

// Flush waits until every record buffered so far has its outcome, or ctx
// ends; then it returns ctx's error together with the number of records
// still buffered. Records keep being retried after Flush returns early.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("produce: flush: %d records still buffered: %w", p.cl.BufferedProduceRecords(), err)
	}
	return nil
}

// Close stops new sends (they fail with [ErrClosed]), flushes until ctx
// ends, and closes the client. Records still buffered when ctx ends are
// failed, each reported to its sender as outcome unknown, and Close returns
// an error counting them. Calling Close again returns nil.
func (p *Producer) Close(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	ferr := p.cl.Flush(ctx)
	left := p.cl.BufferedProduceRecords()
	p.cl.Close()
	if ferr != nil {
		return fmt.Errorf("produce: close: %d records were still buffered and were failed as outcome unknown: %w", left, ferr)
	}
	return nil
}

var errNilRecord = errors.New("produce: nil record")

// sendOp is one Send with a context that can end: it hands the record's
// outcome to Send, or, once Send has given up waiting, logs it. A sendOp
// is reused (Producer.sends) so that such a Send allocates nothing.
type sendOp struct {
	p     *Producer
	ctx   context.Context
	r     *kgo.Record
	state atomic.Int32 // waiting, then delivered or abandoned
	done  chan error   // the outcome, once delivered

	run     func()                   // produceSync, bound once
	promise func(*kgo.Record, error) // deliver, bound once
}

const (
	waiting int32 = iota
	delivered
	abandoned
)

// produceSync produces op's record with ProduceSync and delivers the
// outcome.
func (op *sendOp) produceSync() {
	op.deliver(op.r, op.p.cl.ProduceSync(op.ctx, op.r).FirstErr())
}

// deliver hands err to the waiting Send; if Send has given up, op's last
// user is this call, which logs the outcome and puts op back.
func (op *sendOp) deliver(r *kgo.Record, err error) {
	if op.state.CompareAndSwap(waiting, delivered) {
		op.done <- err
		return
	}
	p := op.p
	op.release()
	p.logLate(r, err)
}

// release resets op and puts it back in the pool.
func (op *sendOp) release() {
	op.ctx, op.r = nil, nil
	op.state.Store(waiting)
	op.p.sends.Put(op)
}

// result turns a promise's error into the error a sender sees.
func (p *Producer) result(r *kgo.Record, err error) error {
	if err == nil {
		return nil
	}
	p.txnFailed.Add(1)
	return &DeliveryError{Topic: r.Topic, Partition: r.Partition, MaybeWritten: kgoMaybeWritten(err, p.idemSafe), Err: err}
}

// kgoMaybeWritten reports whether a record that kgo failed with err may
// nevertheless have been written. idemSafe is true when kgo only fails
// records it knows were not written (idempotent writes without
// AllowIdempotentProduceCancellation).
func kgoMaybeWritten(err error, idemSafe bool) bool {
	switch {
	case errors.Is(err, kerr.NotEnoughReplicasAfterAppend), errors.Is(err, kerr.RequestTimedOut):
		// The leader appended the batch and then waited for replicas in
		// vain: the record is in its log and may still be committed.
		return true
	case errors.Is(err, kgo.ErrClientClosed):
		// Closing cuts requests in flight.
		return true
	case errors.Is(err, kgo.ErrMaxBuffered), errors.Is(err, ErrClosed), errors.Is(err, errNilRecord):
		return false
	}
	var ke *kerr.Error
	if errors.As(err, &ke) && !ke.Retriable {
		return false // the broker rejected the batch
	}
	return !idemSafe
}

func (p *Producer) logLate(r *kgo.Record, err error) {
	if err == nil {
		p.log(slog.LevelWarn, "produce: a send abandoned as outcome unknown was written",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
		return
	}
	p.log(slog.LevelWarn, "produce: a send abandoned as outcome unknown failed",
		"topic", r.Topic, "partition", r.Partition, "err", p.result(r, err))
}

func (p *Producer) logFailure(r *kgo.Record, err error) {
	if err != nil {
		p.log(slog.LevelError, "produce: send failed", "err", err)
	}
}

// log writes through the application's kgo logger if it set one, else
// through slog.Default.
func (p *Producer) log(level slog.Level, msg string, kv ...any) {
	if p.logger != nil {
		kl := kgo.LogLevelWarn
		if level >= slog.LevelError {
			kl = kgo.LogLevelError
		}
		p.logger.Log(kl, msg, kv...)
		return
	}
	slog.Default().Log(context.Background(), level, msg, kv...)
}
