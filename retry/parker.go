package retry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// Reasons a record is dead-lettered, in the HeaderReason header.
const (
	ReasonMaxAttempts   = "max attempts"
	ReasonPermanent     = "permanent error"
	ReasonInvalidMarker = "invalid marker"
)

// writer writes markers, resolutions and dead letters, each acknowledged by
// every in-sync replica before it returns.
type writer struct {
	cl     *kgo.Client
	cfg    *config
	alerts *alerter
}

type pinKey struct{}

// pinned makes the Job's partitioner put rec on partition p (p >= 0).
func pinned(ctx context.Context, rec *kgo.Record, p int32) *kgo.Record {
	if p >= 0 {
		rec.Context = context.WithValue(ctx, pinKey{}, p)
	}
	return rec
}

func ceilMilli(t time.Time) time.Time {
	if u := t.Truncate(time.Millisecond); !u.Equal(t) {
		return u.Add(time.Millisecond)
	}
	return t
}

// park writes m as a marker on its retry topic, due after the backoff of
// its attempts (at once if !delay or it never ran), on partition pin if
// pin >= 0. It returns the written record.
func (w *writer) park(ctx context.Context, m *Marker, pin int32, delay bool) (*kgo.Record, error) {
	now := time.Now()
	m.Due = now
	if m.FirstFailed.IsZero() {
		m.FirstFailed = now
	}
	if delay && m.Attempts > 0 {
		// The backoff counts from the failure, not from this write.
		base := now
		if n := len(m.History); n > 0 && m.History[n-1].At.Before(now) {
			base = m.History[n-1].At
		}
		m.Due = ceilMilli(base.Add(w.cfg.backoff.Delay(m.Attempts)))
	}
	topic := w.cfg.retryTopicFor(m.Topic)
	if l := w.cfg.locks; l != nil && l.topic != topic {
		return nil, fmt.Errorf("%w: %s goes to %s, locks follow %s", ErrKeyLocksTopic, m.Origin, topic, l.topic)
	}
	ctx, span := startSpan(ctx, w.cfg.tracer, "park", m, trace.SpanContext{}, trace.SpanKindProducer, AttrAttempts.Int(m.Attempts))
	rec := pinned(ctx, m.encodeAs(w.cfg.headers, topic, KindMarker), pin)
	injectTrace(ctx, span, rec)
	if err := w.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		err = fmt.Errorf("retry: parking %s on %s: %w", m.Origin, topic, err)
		endWrite(span, rec, err)
		return nil, err
	}
	endWrite(span, rec, nil)
	if l := w.cfg.locks; l != nil {
		l.observe(rec.Partition, rec.Offset, m)
	}
	afterCommit(ctx, func() { w.cfg.metrics.incParked(m.Topic) })
	w.cfg.logger.Info("retry: parked", "origin", m.Origin.String(), "attempts", m.Attempts, "due", m.Due,
		"retry_topic", topic, "partition", rec.Partition, "offset", rec.Offset, "err", m.LastError())
	return rec, nil
}

// deadLetter writes m to its dead-letter topic with its history.
func (w *writer) deadLetter(ctx context.Context, m *Marker, reason string) error {
	m.Reason = reason
	topic := w.cfg.dlqTopicFor(m.Topic)
	ctx, span := startSpan(ctx, w.cfg.tracer, "dead-letter", m, trace.SpanContext{}, trace.SpanKindProducer,
		AttrAttempts.Int(m.Attempts), AttrReason.String(reason))
	rec := m.encodeAs(w.cfg.headers, topic, KindDeadLetter)
	injectTrace(ctx, span, rec)
	if err := w.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		err = fmt.Errorf("retry: dead-lettering %s on %s: %w", m.Origin, topic, err)
		endWrite(span, rec, err)
		return err
	}
	endWrite(span, rec, nil)
	w.cfg.logger.Error("retry: dead-lettered", "origin", m.Origin.String(), "attempts", m.Attempts, "reason", reason,
		"dlq_topic", topic, "partition", rec.Partition, "offset", rec.Offset, "err", m.LastError())
	afterCommit(ctx, func() {
		w.cfg.metrics.incDeadLettered(m.Topic)
		w.alerts.deadLettered(m)
	})
	return nil
}

// resolved writes m's KindResolved record on retry partition pin and returns
// its offset.
func (w *writer) resolved(ctx context.Context, m *Marker, pin int32) (int64, error) {
	topic := w.cfg.retryTopicFor(m.Topic)
	rec := pinned(ctx, m.encode(topic, KindResolved), pin)
	if err := w.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return 0, fmt.Errorf("retry: resolving %s on %s: %w", m.Origin, topic, err)
	}
	return rec.Offset, nil
}

// Parker is the consumer side of the retry path: it turns a record whose
// handler failed into a failure marker on the retry topic, so that the
// consumer may commit past it. Its Park method satisfies the consume
// package's Parker interface. A Parker is safe for concurrent use.
type Parker struct {
	w      writer
	mu     sync.Mutex
	synced map[Origin]bool // partitions (Offset unused) seen since the locks were synced
}

// NewParker returns a Parker that writes with client, which stays the
// caller's to close. The client must produce with acks=all (franz-go's
// default; see produce.NoLoss), or NewParker returns an error wrapping
// ErrUnsafeClient.
func NewParker(client *kgo.Client, opts ...ParkerOpt) (*Parker, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidOption)
	}
	c := newConfig(opts)
	if err := c.validate(false); err != nil {
		return nil, err
	}
	if err := checkAcks(client); err != nil {
		return nil, err
	}
	p := &Parker{w: writer{cl: client, cfg: &c}, synced: map[Origin]bool{}}
	p.w.alerts = newAlerter(&c, c.fixedRetryTopic())
	return p, nil
}

func checkAcks(cl *kgo.Client) error {
	if acks, ok := cl.OptValue(kgo.RequiredAcks).(kgo.Acks); !ok || acks != kgo.AllISRAcks() {
		return fmt.Errorf("%w: set kgo.RequiredAcks(kgo.AllISRAcks())", ErrUnsafeClient)
	}
	return nil
}

// Park writes the failure marker of r, whose handler returned err: the
// original record, one more failed attempt, the error, and the time of the
// next attempt after the backoff. When the attempts reach MaxAttempts, or err
// is permanent (see Permanent), the record goes to the dead-letter topic
// instead. Park returns nil only once the write is acknowledged by every
// in-sync replica: then, and only then, the consumer may commit r's offset.
// An err wrapping ErrNotRun (see Wrap) parks r as ParkBehind does, due at
// once and with no attempt counted.
//
// A record that the Republish handler wrote back keeps its original origin
// and attempt count.
func (p *Parker) Park(ctx context.Context, r *kgo.Record, err error) error {
	if r == nil {
		return fmt.Errorf("%w: Park of a nil record", ErrInvalidOption)
	}
	if err == nil {
		err = errors.New("retry: parked without an error")
	}
	if errors.Is(err, ErrNotRun) {
		// Wrap gave up before the handler ran: no attempt to count, and
		// nothing to dead-letter yet.
		return p.ParkBehind(ctx, r)
	}
	m := newMarker(r, p.w.cfg.headers).failed(err, time.Now())
	switch {
	case IsPermanent(err):
		return p.w.deadLetter(ctx, m, ReasonPermanent)
	case m.Attempts >= p.w.cfg.maxAttempts:
		return p.w.deadLetter(ctx, m, ReasonMaxAttempts)
	}
	_, perr := p.w.park(ctx, m, -1, true)
	return perr
}

// ParkBehind writes a marker for r without running it, due at once, so that
// it runs in the retry path after the earlier parked records of its key.
// It returns nil once the marker is acknowledged by every in-sync replica.
func (p *Parker) ParkBehind(ctx context.Context, r *kgo.Record) error {
	if r == nil {
		return fmt.Errorf("%w: ParkBehind of a nil record", ErrInvalidOption)
	}
	_, err := p.w.park(ctx, newMarker(r, p.w.cfg.headers), -1, false)
	return err
}

// Locked reports whether r must be parked behind an earlier parked record of
// its key. It is always false without KeyOrder. The first time it sees a
// partition it waits for the key locks to catch up with the retry topic
// (KeyLocks.Sync), so that a partition taken over from another consumer
// sees the keys that consumer parked.
func (p *Parker) Locked(ctx context.Context, r *kgo.Record) (bool, error) {
	l := p.w.cfg.locks
	if l == nil || r.Key == nil {
		return false, nil
	}
	tp := Origin{Topic: r.Topic, Partition: r.Partition}
	p.mu.Lock()
	seen := p.synced[tp]
	p.mu.Unlock()
	if !seen {
		if err := l.Sync(ctx); err != nil {
			return false, err
		}
		p.mu.Lock()
		p.synced[tp] = true
		p.mu.Unlock()
	}
	return l.Locked(r.Topic, r.Key), nil
}

// Forget makes Locked sync the key locks again before answering for the
// given partition. Call it when the consumer is assigned the partition; consume/ does, through
// its AssignmentAware interface.
func (p *Parker) Forget(topic string, partition int32) {
	p.mu.Lock()
	delete(p.synced, Origin{Topic: topic, Partition: partition})
	p.mu.Unlock()
}

// Wrap returns a handler that keeps key order in front of h: a record whose
// key is locked (see Locked) is parked behind the earlier ones with
// ParkBehind and reported handled; any other record runs h. When it can do
// neither (the key locks or the retry topic do not answer), its error wraps
// ErrNotRun, and Park of that error counts no attempt. Without KeyOrder it
// returns h itself. The consumer must run the records of one key one at a
// time and call Park when the handler fails.
func (p *Parker) Wrap(h func(context.Context, *kgo.Record) error) func(context.Context, *kgo.Record) error {
	if p.w.cfg.locks == nil {
		return h
	}
	return func(ctx context.Context, r *kgo.Record) error {
		locked, err := p.Locked(ctx, r)
		if err != nil {
			return fmt.Errorf("%w: key locks: %w", ErrNotRun, err)
		}
		if locked {
			if err := p.ParkBehind(ctx, r); err != nil {
				return fmt.Errorf("%w: park behind its key: %w", ErrNotRun, err)
			}
			return nil
		}
		return h(ctx, r)
	}
}
