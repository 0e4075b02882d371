package retry

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafkaguard/kafkaguard/internal/promkit"
)

// Metrics holds the Prometheus collectors a Parker and a Job count into.
// One Metrics may be shared by every Parker and Job of a process. Counters
// carry the original topic as label "topic", gauges the retry topic as
// label "retry_topic":
//
//	kafkaguard_retry_parked_total            markers written (first parks and re-parks)
//	kafkaguard_retry_retried_total           handler runs by the Job
//	kafkaguard_retry_succeeded_total         handler runs that succeeded
//	kafkaguard_retry_dead_lettered_total     records written to the dead-letter topic
//	kafkaguard_retry_backlog                 markers not yet finished (held or not yet read)
//	kafkaguard_retry_oldest_marker_age_seconds  time since the oldest held marker first failed
//
// An ExactlyOnce Job counts a marker written, a success and a dead letter
// (and raises its dead-letter alert) once the transaction that wrote it
// commits, never for a transaction that aborts. A nil *Metrics counts
// nothing.
type Metrics struct {
	parked, retried, succeeded, deadLettered *prometheus.CounterVec
	backlog, oldestAge                       *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them with reg
// (prometheus.DefaultRegisterer if nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kafkaguard", Subsystem: "retry", Name: name, Help: help}, []string{"topic"})
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "kafkaguard", Subsystem: "retry", Name: name, Help: help}, []string{"retry_topic"})
	}
	m := &Metrics{
		parked:       counter("parked_total", "Failure markers written to the retry topic, first parks and re-parks."),
		retried:      counter("retried_total", "Handler runs by the retry job."),
		succeeded:    counter("succeeded_total", "Retried records whose handler succeeded."),
		deadLettered: counter("dead_lettered_total", "Records written to the dead-letter topic."),
		backlog:      gauge("backlog", "Failure markers not yet finished: held by the job or not yet read."),
		oldestAge:    gauge("oldest_marker_age_seconds", "Seconds since the oldest marker the job holds first failed."),
	}
	if err := promkit.Register(reg, m.parked, m.retried, m.succeeded, m.deadLettered, m.backlog, m.oldestAge); err != nil {
		return nil, fmt.Errorf("retry: registering metrics: %w", err)
	}
	return m, nil
}

func (m *Metrics) incParked(topic string) {
	if m != nil {
		m.parked.WithLabelValues(topic).Inc()
	}
}

func (m *Metrics) incRetried(topic string) {
	if m != nil {
		m.retried.WithLabelValues(topic).Inc()
	}
}

func (m *Metrics) incSucceeded(topic string) {
	if m != nil {
		m.succeeded.WithLabelValues(topic).Inc()
	}
}

func (m *Metrics) incDeadLettered(topic string) {
	if m != nil {
		m.deadLettered.WithLabelValues(topic).Inc()
	}
}

func (m *Metrics) setGauges(retryTopic string, backlog int, age time.Duration) {
	if m != nil {
		m.backlog.WithLabelValues(retryTopic).Set(float64(backlog))
		m.oldestAge.WithLabelValues(retryTopic).Set(age.Seconds())
	}
}

// AlertKind says which threshold an Alert is about.
type AlertKind int

const (
	// AlertBacklog: more markers are unfinished than Thresholds.Backlog.
	AlertBacklog AlertKind = iota + 1
	// AlertAge: the oldest held marker first failed longer ago than
	// Thresholds.Age.
	AlertAge
	// AlertDeadLetter: a record was dead-lettered and at least
	// Thresholds.DeadLetters have been since the process started.
	AlertDeadLetter
)

// String returns the kind's name.
func (k AlertKind) String() string {
	switch k {
	case AlertBacklog:
		return "backlog"
	case AlertAge:
		return "age"
	case AlertDeadLetter:
		return "dead-letter"
	}
	return fmt.Sprintf("AlertKind(%d)", int(k))
}

// Thresholds configures alerts. A zero threshold turns its alert off.
type Thresholds struct {
	// Backlog fires AlertBacklog while more markers than this are unfinished.
	Backlog int
	// Age fires AlertAge while the oldest held marker first failed longer
	// ago than this.
	Age time.Duration
	// DeadLetters fires AlertDeadLetter for every dead letter once this many
	// have been written since the process started (1: every dead letter).
	DeadLetters int
	// Interval is how often backlog and age are checked. The default is
	// DefaultAlertInterval.
	Interval time.Duration
}

// Alert is passed to the OnAlert hook. Backlog and age alerts are
// edge-triggered: one with Firing set when the value goes above the
// threshold, one with Firing unset when it is back at or below it.
// Dead-letter alerts always fire.
type Alert struct {
	Kind       AlertKind
	Firing     bool
	RetryTopic string
	Value      float64 // markers, seconds, or dead letters so far
	Threshold  float64
	Marker     *Marker // the dead letter (AlertDeadLetter only)
}

// alerter turns measurements into edge-triggered alerts and log lines.
type alerter struct {
	t      Thresholds
	fn     func(Alert)
	log    *slog.Logger
	topic  string
	mu     sync.Mutex
	firing map[AlertKind]bool
	dead   int
}

func newAlerter(c *config, retryTopic string) *alerter {
	return &alerter{t: c.thresholds, fn: c.onAlert, log: c.logger, topic: retryTopic, firing: map[AlertKind]bool{}}
}

func (a *alerter) emit(al Alert) {
	level := slog.LevelWarn
	if !al.Firing {
		level = slog.LevelInfo
	}
	a.log.Log(context.Background(), level, "retry: alert", "kind", al.Kind.String(), "firing", al.Firing, "retry_topic", al.RetryTopic, "value", al.Value, "threshold", al.Threshold)
	if a.fn != nil {
		a.fn(al)
	}
}

// observe checks backlog and age against their thresholds.
func (a *alerter) observe(backlog int, age time.Duration) {
	a.mu.Lock()
	var out []Alert
	check := func(kind AlertKind, value, threshold float64) {
		if threshold <= 0 {
			return
		}
		over := value > threshold
		if over != a.firing[kind] {
			a.firing[kind] = over
			out = append(out, Alert{Kind: kind, Firing: over, RetryTopic: a.topic, Value: value, Threshold: threshold})
		}
	}
	check(AlertBacklog, float64(backlog), float64(a.t.Backlog))
	check(AlertAge, age.Seconds(), a.t.Age.Seconds())
	a.mu.Unlock()
	for _, al := range out {
		a.emit(al)
	}
}

// deadLettered counts a dead letter and alerts if the threshold is reached.
func (a *alerter) deadLettered(m *Marker) {
	a.mu.Lock()
	a.dead++
	n := a.dead
	a.mu.Unlock()
	if a.t.DeadLetters > 0 && n >= a.t.DeadLetters {
		a.emit(Alert{Kind: AlertDeadLetter, Firing: true, RetryTopic: a.topic, Value: float64(n), Threshold: float64(a.t.DeadLetters), Marker: m})
	}
}
