package consume

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafkaguard/kafkaguard/internal/promkit"
	"github.com/kafkaguard/kafkaguard/ordering"
)

// Metrics holds the Prometheus collectors Consumers and SaramaHandlers
// count into (see ReportMetrics): the dispatcher's metrics of package
// ordering (see ordering.Metrics), which NewMetrics registers too, and the
// consumer's own. One Metrics may be shared by every consumer of a process.
//
//	name                                       type       labels                 meaning
//	kafkaguard_ordering_handled_total          counter    topic                  records the handler finished: it returned nil, or it failed and the record was parked
//	kafkaguard_ordering_handler_failures_total counter    topic                  handler runs that failed and were not parked (the record blocks its key or partition)
//	kafkaguard_ordering_handler_seconds        histogram  topic                  time each record took: the handler (every in-process attempt and backoff, with Retries), and Park after a failure
//	kafkaguard_ordering_in_flight              gauge      topic,partition        records being handled
//	kafkaguard_ordering_queued                 gauge      topic,partition        records waiting to run, not behind a failure
//	kafkaguard_ordering_keys_blocked           gauge      topic,partition        failed records waiting for Resolve or Retry, each blocking its key (KeyOrder) or partition (PartitionOrder)
//	kafkaguard_ordering_blocked                gauge      topic,partition        records waiting behind a failed record
//	kafkaguard_consume_parked_total            counter    topic                  records whose handler failed and that were parked on the retry path (RetryPath)
//	kafkaguard_consume_retries_total           counter    topic                  handler runs that failed and were run again in-process after a backoff (Retries)
//	kafkaguard_consume_rebalances_total        counter    group,event            partition assignments ("assigned") and revocations or losses ("released") this process took part in
//	kafkaguard_consume_committed_offset        gauge      group,topic,partition  the last offset committed (or found committed at assignment), of the partitions held
//	kafkaguard_consume_lag                     gauge      group,topic,partition  high watermark of the last fetch minus the committed offset: records not yet committed
//
// committed_offset and lag are reported by a Consumer (not a SaramaHandler)
// for each partition it holds once it knows a committed offset and, for lag,
// has fetched from the partition. A nil *Metrics counts nothing.
type Metrics struct {
	ordering   *ordering.Metrics
	parked     *prometheus.CounterVec
	retries    *prometheus.CounterVec
	rebalances *prometheus.CounterVec
	offsets    *offsetGauges
}

// NewMetrics creates the collectors, those of package ordering included,
// and registers them with reg, which must not be nil (pass
// prometheus.DefaultRegisterer for the global registry).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, fmt.Errorf("%w: NewMetrics: nil prometheus.Registerer", ErrInvalidOption)
	}
	om, err := ordering.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	m := &Metrics{
		ordering: om,
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kafkaguard", Subsystem: "consume", Name: "parked_total",
			Help: "Records whose handler failed and that were parked on the retry path."}, []string{"topic"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kafkaguard", Subsystem: "consume", Name: "retries_total",
			Help: "Handler runs that failed and were run again in-process after a backoff (Retries)."}, []string{"topic"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kafkaguard", Subsystem: "consume", Name: "rebalances_total",
			Help: `Partition assignments ("assigned") and revocations or losses ("released").`}, []string{"group", "event"}),
		offsets: newOffsetGauges(),
	}
	if err := promkit.Register(reg, m.parked, m.retries, m.rebalances, m.offsets); err != nil {
		return nil, fmt.Errorf("consume: registering metrics: %w", err)
	}
	return m, nil
}

// ReportMetrics makes a Consumer or SaramaHandler count into m (see
// NewMetrics).
func ReportMetrics(m *Metrics) Opt { return bothOpt(func(c *config) { c.metrics = m }) }

func (m *Metrics) orderingMetrics() *ordering.Metrics {
	if m == nil {
		return nil
	}
	return m.ordering
}

func (m *Metrics) incParked(topic string) {
	if m != nil {
		m.parked.WithLabelValues(topic).Inc()
	}
}

func (m *Metrics) incRetries(topic string) {
	if m != nil {
		m.retries.WithLabelValues(topic).Inc()
	}
}

func (m *Metrics) offsetGauges() *offsetGauges {
	if m == nil {
		return nil
	}
	return m.offsets
}

// rebalanced counts an assignment or a release of group's partitions.
func (m *Metrics) rebalanced(group, event string) {
	if m != nil {
		m.rebalances.WithLabelValues(group, event).Inc()
	}
}

// offsetSource is a Consumer as the offset gauges see it.
type offsetSource interface {
	// partitionOffsets calls fn for every partition held, with its
	// committed offset and the high watermark last fetched (-1: unknown).
	partitionOffsets(fn func(group string, tp ordering.TopicPartition, committed, hwm int64))
}

// offsetGauges is a prometheus.Collector that reads the committed offsets
// and high watermarks of the running Consumers when collected.
type offsetGauges struct {
	committed, lag *prometheus.Desc

	sources promkit.Sources[offsetSource]
}

func newOffsetGauges() *offsetGauges {
	labels := []string{"group", "topic", "partition"}
	return &offsetGauges{
		committed: prometheus.NewDesc("kafkaguard_consume_committed_offset",
			"The last offset committed, or found committed at assignment, of a partition held.", labels, nil),
		lag: prometheus.NewDesc("kafkaguard_consume_lag",
			"High watermark of the last fetch minus the committed offset: records not yet committed.", labels, nil),
	}
}

func (g *offsetGauges) add(s offsetSource) {
	if g != nil {
		g.sources.Add(s)
	}
}

func (g *offsetGauges) remove(s offsetSource) {
	if g != nil {
		g.sources.Remove(s)
	}
}

// Describe implements prometheus.Collector.
func (g *offsetGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.committed
	ch <- g.lag
}

// Collect implements prometheus.Collector. A partition two consumers of one
// group hold at once (for a moment during a rebalance) is reported once.
func (g *offsetGauges) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		group string
		tp    ordering.TopicPartition
	}
	seen := map[key]bool{}
	for _, s := range g.sources.Snapshot() {
		s.partitionOffsets(func(group string, tp ordering.TopicPartition, committed, hwm int64) {
			k := key{group, tp}
			if committed < 0 || seen[k] {
				return
			}
			seen[k] = true
			p := strconv.FormatInt(int64(tp.Partition), 10)
			ch <- prometheus.MustNewConstMetric(g.committed, prometheus.GaugeValue, float64(committed), group, tp.Topic, p)
			if hwm >= 0 {
				ch <- prometheus.MustNewConstMetric(g.lag, prometheus.GaugeValue, float64(max(0, hwm-committed)), group, tp.Topic, p)
			}
		})
	}
}
