package produce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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

	defaultTopic       string // kgo.DefaultProduceTopic
	defaultTopicAlways bool   // kgo.DefaultProduceTopicAlways
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
}

// New returns a Producer for preset p over a kgo client built from
// ApplyKgo(p, opts), and checks with ctx that a seed broker answers.
//
// New refuses options that contradict p (see [ValidateKgo]) with an error
// joining one [*ConfigError] per setting. Only ExactlyOnce takes a
// TransactionalID (and requires one); its records are sent inside
// [Producer.Transact].
func New(ctx context.Context, p Preset, opts ...kgo.Opt) (*Producer, error) {
	all, s, err := applyKgo(p, opts)
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
// Do not reuse r after that. Being able to return early costs one
// goroutine per Send whose ctx can end; with a ctx that never ends (such as
// context.Background()) Send waits on the caller's goroutine, as kgo's
// ProduceSync does.
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
	w := &waiter{done: make(chan error, 1)}
	// ProduceSync, unlike Produce, cuts the linger short for the record's
	// partition; it runs on its own goroutine so that Send can return when
	// ctx ends while the record is still in flight.
	go func() {
		err := p.cl.ProduceSync(ctx, r).FirstErr()
		if w.state.CompareAndSwap(waiting, delivered) {
			w.done <- err
			return
		}
		p.logLate(r, err)
	}()
	select {
	case err := <-w.done:
		return p.result(r, err)
	case <-ctx.Done():
		if w.state.CompareAndSwap(waiting, abandoned) {
			return &DeliveryError{Topic: topic, Partition: -1, MaybeWritten: true, Err: ctx.Err()}
		}
		return p.result(r, <-w.done)
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
// Passing the same callback value for many records (a function, or a
// closure made once) costs nothing per record; a closure made for each
// record costs one more small allocation, the binding of the callback to
// the Producer.
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
// reused instead of making a closure per record.
func (p *Producer) promiseFor(cb func(*kgo.Record, error)) func(*kgo.Record, error) {
	id := funcIdentity(cb)
	if b := p.bound.Load(); b != nil && b.callback == id {
		return b.promise
	}
	promise := p.wrap(cb)
	// A repeat binds cb. lastCallback is only a hint: if it matches a
	// callback that has since been freed and its memory reused, the cost
	// is one binding too many, never a wrong callback, because bound
	// holds on to the very callback it compares with.
	if p.lastCallback.Swap(uintptr(id)) == uintptr(id) {
		p.bound.Store(&boundPromise{callback: id, promise: promise})
	}
	return promise
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

// waiter hands a promise's outcome to Send, or tells the promise that Send
// has given up waiting.
type waiter struct {
	state atomic.Int32
	done  chan error
}

const (
	waiting int32 = iota
	delivered
	abandoned
)

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
