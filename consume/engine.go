package consume

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/ordering"
)

// engine is what the franz-go Consumer and the sarama adapter share: the
// dispatcher, the handler wrapper that hands failures to the retry path,
// failure reporting, and the signal that buffer room was freed. T is the
// client's record type.
type engine[T any] struct {
	cfg      config
	log      *slog.Logger
	d        *ordering.Dispatcher[T]
	handle   func(context.Context, T) error
	toRecord func(T) *kgo.Record
	room     chan struct{} // gets a value whenever a record may have left the buffer
	stopping chan struct{} // closed by stopRetries
	stopOnce sync.Once
}

func newEngine[T any](cfg config, handle func(context.Context, T) error, toRecord func(T) *kgo.Record) (*engine[T], error) {
	e := &engine[T]{
		cfg:      cfg,
		log:      cfg.log(),
		handle:   handle,
		toRecord: toRecord,
		room:     make(chan struct{}, 1),
		stopping: make(chan struct{}),
	}
	d, err := ordering.NewWithFailureFunc(e.run, e.onFailure,
		ordering.OrderBy(cfg.order),
		ordering.Concurrency(cfg.concurrency),
		ordering.MaxBuffered(cfg.maxBuffered),
		ordering.MetadataMaxBytes(cfg.metadataMax),
		ordering.Logger(e.log),
		ordering.ReportMetrics(cfg.metrics.orderingMetrics()),
	)
	if err != nil {
		return nil, err
	}
	e.d = d
	return e, nil
}

// run is the dispatcher's handler: the application's handler, then the
// retry path for a failure. A handler that panics has failed like one that
// returned an error (an *ordering.PanicError): with a retry path its record
// is parked, not left to block its key.
func (e *engine[T]) run(ctx context.Context, m ordering.Message[T]) error {
	defer e.signalRoom()
	ctx, ht := e.startHandle(ctx, m)
	err := e.handleRetrying(ctx, m)
	if err == nil || e.cfg.parker == nil || ctx.Err() != nil || errors.Is(err, ErrRetryAbandoned) {
		// A record whose partition was revoked or whose consumer stopped
		// is not parked: its next owner runs it again.
		ht.end(err, outcome(err))
		return err
	}
	if perr := e.park(ctx, m, err); perr != nil {
		ht.end(err, OutcomeFailed)
		return &ParkError{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, HandlerErr: err, Err: perr}
	}
	ht.end(err, OutcomeParked)
	e.log.Info("consume: record parked for retry", "topic", m.Topic, "partition", m.Partition,
		"offset", m.Offset, "err", err)
	return nil
}

// park hands m's record, or each record of m's batch (NewBatch) in offset
// order, to the retry path.
func (e *engine[T]) park(ctx context.Context, m ordering.Message[T], err error) error {
	r := e.toRecord(m.Value)
	rs := []*kgo.Record{r}
	if e.cfg.batch {
		rs = batchOf(r)
	}
	for _, r := range rs {
		if perr := e.cfg.parker.Park(ctx, r, err); perr != nil {
			return perr
		}
		e.cfg.metrics.incParked(m.Topic)
	}
	return nil
}

// failure is f as the application sees it.
func (e *engine[T]) failure(f ordering.Failure[T]) Failure {
	r := e.toRecord(f.Message.Value)
	out := Failure{Record: r, Err: f.Err, Attempts: f.Attempts}
	if e.cfg.batch {
		out.Batch = batchOf(r)
	}
	return out
}

func (e *engine[T]) onFailure(f ordering.Failure[T]) {
	if errors.Is(f.Err, ErrRetryAbandoned) {
		e.log.Info("consume: record left for the next start: the consumer stopped while it waited for a retry",
			"topic", f.Message.Topic, "partition", f.Message.Partition, "offset", f.Message.Offset, "err", f.Err)
		return
	}
	e.log.Error("consume: record failed; its key or partition waits", "topic", f.Message.Topic,
		"partition", f.Message.Partition, "offset", f.Message.Offset, "order", e.cfg.order.String(),
		"attempts", f.Attempts, "err", f.Err)
	if e.cfg.onError != nil {
		e.cfg.onError(e.failure(f))
	}
}

func (e *engine[T]) signalRoom() {
	select {
	case e.room <- struct{}{}:
	default:
	}
}

// held returns the number of records in the buffer.
func (e *engine[T]) held() int {
	s := e.d.Stats()
	return s.Queued + s.Running + s.Failed + s.Blocked
}

// waitRoom waits until a record may have left the buffer, at most a short
// while (the signal can come a moment before the slot is free), or until
// ctx is done.
func (e *engine[T]) waitRoom(ctx context.Context) {
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-e.room:
	case <-t.C:
	case <-ctx.Done():
	}
}

func (e *engine[T]) failures() []Failure {
	fs := e.d.Failures()
	out := make([]Failure, len(fs))
	for i, f := range fs {
		out[i] = e.failure(f)
	}
	return out
}

func (e *engine[T]) resolve(topic string, partition int32, offset int64) error {
	err := e.d.Resolve(ordering.TopicPartition{Topic: topic, Partition: partition}, offset)
	if err == nil {
		e.signalRoom()
	}
	return err
}

func (e *engine[T]) retry(topic string, partition int32, offset int64) error {
	return e.d.Retry(ordering.TopicPartition{Topic: topic, Partition: partition}, offset)
}
