package produce

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/promkit"
)

// Metrics counts the outcome of every record a kgo client produces, as
// Prometheus collectors. It is a kgo hook: pass it among the client's
// options with kgo.WithHooks(m), to New (a [Producer]) or to any client
// built from [ApplyKgo]. One Metrics may serve several clients.
//
//	name                                        type       labels       meaning
//	kafkaguard_produce_acked_total              counter    topic        records the broker acknowledged as the preset requires
//	kafkaguard_produce_failed_total             counter    topic,class  records that failed, by error class (see ErrorClass)
//	kafkaguard_produce_outcome_unknown_total    counter    topic        failed records that may have been written all the same (ErrOutcomeUnknown)
//	kafkaguard_produce_ack_latency_seconds      histogram  topic        time from a record's Timestamp to its acknowledgement
//
// The counts are of the client's final outcome for each record: a Send
// that returned early because its context ended counts when the client
// finishes the record. The latency counts from the record's Timestamp,
// which kgo sets when the record is produced (to the millisecond) unless
// the application set it; an application that sets earlier timestamps (of
// the event, say) sees that age counted.
//
// Whether a failure is outcome unknown depends on the client: only an
// idempotent client whose requests are not cancelled knows that the records
// it failed were not written. A Producer tells its Metrics; on a client
// built with ApplyKgo, or shared with a client that lacks that guarantee,
// a failure counts as outcome unknown unless its error proves the record
// was not written.
//
// Each record costs a few atomic operations and no allocation: the
// children of a topic are resolved once. A nil *Metrics counts nothing.
type Metrics struct {
	acked, failed, unknown *prometheus.CounterVec
	latency                *prometheus.HistogramVec

	// safe is 1 while every Producer bound to it fails records only when
	// they were not written, 2 once one does not, 0 before any is bound.
	safe atomic.Int32

	mu     sync.Mutex                               // serialises adding topics
	topics atomic.Pointer[map[string]*topicMetrics] // copied on write
}

// topicMetrics are the children of one topic.
type topicMetrics struct {
	acked, unknown prometheus.Counter
	latency        prometheus.Observer
}

// AckBuckets are the buckets of the ack latency histogram, in seconds:
// 1 ms to 60 s.
func AckBuckets() []float64 {
	return []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
}

// NewMetrics creates the collectors and registers them with reg, which
// must not be nil (pass prometheus.DefaultRegisterer for the global
// registry).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, fmt.Errorf("produce: NewMetrics: nil prometheus.Registerer: %w", ErrInvalidConfig)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kafkaguard", Subsystem: "produce", Name: name, Help: help}, labels)
	}
	m := &Metrics{
		acked:   counter("acked_total", "Records the broker acknowledged as the preset requires.", "topic"),
		failed:  counter("failed_total", "Records that failed, by error class.", "topic", "class"),
		unknown: counter("outcome_unknown_total", "Failed records that may have been written all the same.", "topic"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "kafkaguard", Subsystem: "produce", Name: "ack_latency_seconds",
			Help: "Time from a record's Timestamp to its acknowledgement, in seconds.", Buckets: AckBuckets()}, []string{"topic"}),
	}
	m.topics.Store(&map[string]*topicMetrics{})
	if err := promkit.Register(reg, m.acked, m.failed, m.unknown, m.latency); err != nil {
		return nil, fmt.Errorf("produce: registering metrics: %w", err)
	}
	return m, nil
}

// OnProduceRecordUnbuffered implements kgo.HookProduceRecordUnbuffered: it
// counts r's outcome.
func (m *Metrics) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if m == nil || r == nil {
		return
	}
	t := m.topic(r.Topic)
	if err == nil {
		t.acked.Inc()
		t.latency.Observe(time.Since(r.Timestamp).Seconds())
		return
	}
	m.failed.WithLabelValues(r.Topic, ErrorClass(err)).Inc()
	if kgoMaybeWritten(err, m.safe.Load() == 1) {
		t.unknown.Inc()
	}
}

// topic returns the children of topic, resolving them on first use.
func (m *Metrics) topic(name string) *topicMetrics {
	if t := (*m.topics.Load())[name]; t != nil {
		return t
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.topics.Load()
	if t := old[name]; t != nil {
		return t
	}
	t := &topicMetrics{acked: m.acked.WithLabelValues(name), unknown: m.unknown.WithLabelValues(name), latency: m.latency.WithLabelValues(name)}
	next := make(map[string]*topicMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[name] = t
	m.topics.Store(&next)
	return t
}

// bind tells m whether a Producer that counts into it fails records only
// when they were not written.
func (m *Metrics) bind(idemSafe bool) {
	if idemSafe {
		m.safe.CompareAndSwap(0, 1)
	} else {
		m.safe.Store(2)
	}
}

// bindMetrics binds every Metrics among cl's hooks to idemSafe.
func bindMetrics(cl *kgo.Client, idemSafe bool) {
	hooks := reflect.ValueOf(cl.OptValue(kgo.WithHooks))
	if hooks.Kind() != reflect.Slice {
		return
	}
	for i := range hooks.Len() {
		if m, ok := hooks.Index(i).Interface().(*Metrics); ok && m != nil {
			m.bind(idemSafe)
		}
	}
}

// ErrorClass returns the class of a produce error as the failed_total
// metric labels it: the Kafka error's name (such as
// "NOT_ENOUGH_REPLICAS"), "record_timeout", "record_retries",
// "max_buffered", "client_closed", "aborting", "canceled",
// "deadline_exceeded", "closed" (a closed Producer) or "other".
func ErrorClass(err error) string {
	switch {
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "record_timeout"
	case errors.Is(err, kgo.ErrRecordRetries):
		return "record_retries"
	case errors.Is(err, kgo.ErrMaxBuffered):
		return "max_buffered"
	case errors.Is(err, kgo.ErrClientClosed):
		return "client_closed"
	case errors.Is(err, kgo.ErrAborting):
		return "aborting"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, ErrClosed):
		return "closed"
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return "other"
}
