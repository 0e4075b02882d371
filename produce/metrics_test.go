package produce_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/produce"
)

// TestMetricsClassifyFailuresAndCountAcksWithoutAllocating feeds the hook
// outcomes as kgo reports them: acks cost no allocation, failures are
// counted by class, and on a client no Producer vouched for a retriable
// failure counts as outcome unknown.
func TestMetricsClassifyFailuresAndCountAcksWithoutAllocating(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := produce.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := testkit.ServeMetrics(t, reg)
	r := &kgo.Record{Topic: "t", Timestamp: time.Now().Add(-3 * time.Millisecond)}
	m.OnProduceRecordUnbuffered(r, nil) // resolves the topic's children; AllocsPerRun runs once more than asked
	if allocs := testing.AllocsPerRun(100, func() { m.OnProduceRecordUnbuffered(r, nil) }); allocs != 0 {
		t.Errorf("an ack costs %v allocations, want 0", allocs)
	}
	m.OnProduceRecordUnbuffered(r, kerr.InvalidRecord)                                               // rejected: not written
	m.OnProduceRecordUnbuffered(r, kerr.NotEnoughReplicasAfterAppend)                                // appended, may be committed
	m.OnProduceRecordUnbuffered(r, fmt.Errorf("%w: %w", kgo.ErrRecordTimeout, kerr.RequestTimedOut)) // in flight when it timed out
	got := testkit.Scrape(t, metricsURL, "kafkaguard_produce_")
	want := map[string]string{
		`kafkaguard_produce_acked_total{topic="t"}`:                                           "102",
		`kafkaguard_produce_ack_latency_seconds_count{topic="t"}`:                             "102",
		`kafkaguard_produce_ack_latency_seconds_bucket{topic="t",le="0.001"}`:                 "0",
		`kafkaguard_produce_failed_total{class="INVALID_RECORD",topic="t"}`:                   "1",
		`kafkaguard_produce_failed_total{class="NOT_ENOUGH_REPLICAS_AFTER_APPEND",topic="t"}`: "1",
		`kafkaguard_produce_failed_total{class="record_timeout",topic="t"}`:                   "1",
		`kafkaguard_produce_outcome_unknown_total{topic="t"}`:                                 "2",
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %q, want %s", name, got[name], v)
		}
	}
	if _, err := produce.NewMetrics(nil); !errors.Is(err, produce.ErrInvalidConfig) {
		t.Errorf("NewMetrics(nil): %v, want ErrInvalidConfig (never the global registry unless asked)", err)
	}
}
