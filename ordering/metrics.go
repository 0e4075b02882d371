package ordering

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafkaguard/kafkaguard/internal/promkit"
)

// Metrics holds the Prometheus collectors Dispatchers count into (see
// ReportMetrics). One Metrics may be shared by every Dispatcher of a
// process; the gauges of a partition that several of them hold are summed.
//
//	name                                          type       labels           meaning
//	kafkaguard_ordering_handled_total             counter    topic            handler runs that returned nil: records done
//	kafkaguard_ordering_handler_failures_total    counter    topic            handler runs that returned an error or panicked
//	kafkaguard_ordering_handler_seconds           histogram  topic            time each handler run took
//	kafkaguard_ordering_in_flight                 gauge      topic,partition  records whose handler is running
//	kafkaguard_ordering_queued                    gauge      topic,partition  records waiting to run, not behind a failure
//	kafkaguard_ordering_keys_blocked              gauge      topic,partition  failed records waiting for Resolve or Retry, each blocking its key (KeyOrder) or partition (PartitionOrder)
//	kafkaguard_ordering_blocked                   gauge      topic,partition  records waiting behind a failed record
//
// Counters and the histogram are counted on the workers with children
// resolved once per assigned partition, so a record costs no allocation;
// the gauges are read from the Dispatchers when Prometheus collects.
// A nil *Metrics counts nothing.
type Metrics struct {
	handled, failures *prometheus.CounterVec
	seconds           *prometheus.HistogramVec
	gauges            *partitionGauges
}

// HandlerBuckets are the buckets of the handler latency histograms, in
// seconds: 0.5 ms to 30 s.
func HandlerBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
}

// NewMetrics creates the collectors and registers them with reg, which
// must not be nil (pass prometheus.DefaultRegisterer for the global
// registry).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, fmt.Errorf("%w: NewMetrics: nil prometheus.Registerer", ErrInvalidOption)
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kafkaguard", Subsystem: "ordering", Name: name, Help: help}, []string{"topic"})
	}
	m := &Metrics{
		handled:  counter("handled_total", "Handler runs that returned nil: records done."),
		failures: counter("handler_failures_total", "Handler runs that returned an error or panicked."),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "kafkaguard", Subsystem: "ordering", Name: "handler_seconds",
			Help: "Time each handler run took, in seconds.", Buckets: HandlerBuckets()}, []string{"topic"}),
		gauges: newPartitionGauges(),
	}
	if err := promkit.Register(reg, m.handled, m.failures, m.seconds, m.gauges); err != nil {
		return nil, fmt.Errorf("ordering: registering metrics: %w", err)
	}
	return m, nil
}

// ReportMetrics makes a Dispatcher count into m (see NewMetrics).
func ReportMetrics(m *Metrics) Opt { return optFunc(func(c *cfg) { c.metrics = m }) }

// partMetrics are the children of one partition's topic, resolved once at
// Assign.
type partMetrics struct {
	handled, failures prometheus.Counter
	seconds           prometheus.Observer
}

func (m *Metrics) forTopic(topic string) *partMetrics {
	if m == nil {
		return nil
	}
	return &partMetrics{
		handled:  m.handled.WithLabelValues(topic),
		failures: m.failures.WithLabelValues(topic),
		seconds:  m.seconds.WithLabelValues(topic),
	}
}

// observe counts one handler run that took d and returned err.
func (pm *partMetrics) observe(d time.Duration, err error) {
	pm.seconds.Observe(d.Seconds())
	if err == nil {
		pm.handled.Inc()
	} else {
		pm.failures.Inc()
	}
}

// partitionLoad is the load of one partition, as the gauges show it.
type partitionLoad struct {
	InFlight, Queued, KeysBlocked, Blocked int
}

// loadSource is a Dispatcher as the gauges see it.
type loadSource interface {
	partitionLoads(fn func(TopicPartition, partitionLoad))
}

// partitionGauges is a prometheus.Collector that reads the per-partition
// load of the registered Dispatchers when collected.
type partitionGauges struct {
	inFlight, queued, keysBlocked, blocked *prometheus.Desc

	sources promkit.Sources[loadSource]
}

func newPartitionGauges() *partitionGauges {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("kafkaguard", "ordering", name), help, []string{"topic", "partition"}, nil)
	}
	return &partitionGauges{
		inFlight:    desc("in_flight", "Records whose handler is running."),
		queued:      desc("queued", "Records waiting to run, not behind a failed record."),
		keysBlocked: desc("keys_blocked", "Failed records waiting for Resolve or Retry, each blocking its key (KeyOrder) or partition (PartitionOrder)."),
		blocked:     desc("blocked", "Records waiting behind a failed record."),
	}
}

// Describe implements prometheus.Collector.
func (g *partitionGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.inFlight
	ch <- g.queued
	ch <- g.keysBlocked
	ch <- g.blocked
}

// Collect implements prometheus.Collector.
func (g *partitionGauges) Collect(ch chan<- prometheus.Metric) {
	loads := map[TopicPartition]partitionLoad{}
	for _, s := range g.sources.Snapshot() {
		s.partitionLoads(func(tp TopicPartition, l partitionLoad) {
			sum := loads[tp]
			sum.InFlight += l.InFlight
			sum.Queued += l.Queued
			sum.KeysBlocked += l.KeysBlocked
			sum.Blocked += l.Blocked
			loads[tp] = sum
		})
	}
	for tp, l := range loads {
		p := strconv.FormatInt(int64(tp.Partition), 10)
		ch <- prometheus.MustNewConstMetric(g.inFlight, prometheus.GaugeValue, float64(l.InFlight), tp.Topic, p)
		ch <- prometheus.MustNewConstMetric(g.queued, prometheus.GaugeValue, float64(l.Queued), tp.Topic, p)
		ch <- prometheus.MustNewConstMetric(g.keysBlocked, prometheus.GaugeValue, float64(l.KeysBlocked), tp.Topic, p)
		ch <- prometheus.MustNewConstMetric(g.blocked, prometheus.GaugeValue, float64(l.Blocked), tp.Topic, p)
	}
}
