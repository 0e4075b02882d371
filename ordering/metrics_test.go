package ordering

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// TestMetricsShowHandledFailedRunningQueuedAndBlocked runs, in KeyOrder, one
// key whose handler holds (its second record queued behind it), one key
// whose first record fails (its second blocked behind it) and one key that
// succeeds, and reads every gauge and counter from /metrics while they
// stand so, then after the held handler returns.
func TestMetricsShowHandledFailedRunningQueuedAndBlocked(t *testing.T) {
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := testkit.ServeMetrics(t, reg)
	release := make(chan struct{})
	d, err := New(func(ctx context.Context, m Message[string]) error {
		switch m.Value {
		case "held":
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		case "bad":
			time.Sleep(time.Millisecond) // the histogram sees a run of at least 1 ms
			return errors.New("bad record")
		}
		return nil
	}, ReportMetrics(m), Concurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tp := TopicPartition{Topic: "met", Partition: 3}
	if err := d.Assign(tp, Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"held", "held", "bad", "bad", "ok", "ok"} {
		if err := d.Submit(ctx, msg(tp, int64(i), key)); err != nil {
			t.Fatal(err)
		}
	}
	scrape := func() map[string]string { return testkit.Scrape(t, metricsURL, "kafkaguard_ordering_") }
	testkit.WaitFor(t, testTimeout, "two records handled and one failed", func() bool {
		s := scrape()
		return s[`kafkaguard_ordering_handled_total{topic="met"}`] == "2" && s[`kafkaguard_ordering_handler_failures_total{topic="met"}`] == "1"
	})
	check := func(want map[string]string) {
		t.Helper()
		got := scrape()
		for name, v := range want {
			if got[name] != v {
				t.Errorf("%s = %q, want %s", name, got[name], v)
			}
		}
	}
	check(map[string]string{
		`kafkaguard_ordering_in_flight{partition="3",topic="met"}`:    "1",
		`kafkaguard_ordering_queued{partition="3",topic="met"}`:       "1",
		`kafkaguard_ordering_keys_blocked{partition="3",topic="met"}`: "1",
		`kafkaguard_ordering_blocked{partition="3",topic="met"}`:      "1",
		`kafkaguard_ordering_handler_seconds_count{topic="met"}`:      "3",
	})
	if sum, _ := strconv.ParseFloat(scrape()[`kafkaguard_ordering_handler_seconds_sum{topic="met"}`], 64); sum < 0.001 {
		t.Errorf("handler_seconds_sum = %v, want at least the failed run's 1 ms", sum)
	}
	close(release)
	testkit.WaitFor(t, testTimeout, "the held key's records to be handled", func() bool {
		return scrape()[`kafkaguard_ordering_handled_total{topic="met"}`] == "4"
	})
	check(map[string]string{
		`kafkaguard_ordering_in_flight{partition="3",topic="met"}`:    "0",
		`kafkaguard_ordering_queued{partition="3",topic="met"}`:       "0",
		`kafkaguard_ordering_keys_blocked{partition="3",topic="met"}`: "1",
		`kafkaguard_ordering_handler_seconds_count{topic="met"}`:      "5",
	})
	if err := d.Resolve(tp, 2); err != nil {
		t.Fatal(err)
	}
	// The record behind it runs and fails too: it blocks its key in turn.
	testkit.WaitFor(t, testTimeout, "the blocked record to run and fail after Resolve", func() bool {
		return scrape()[`kafkaguard_ordering_handler_failures_total{topic="met"}`] == "2"
	})
	check(map[string]string{
		`kafkaguard_ordering_keys_blocked{partition="3",topic="met"}`: "1",
		`kafkaguard_ordering_blocked{partition="3",topic="met"}`:      "0",
		`kafkaguard_ordering_handled_total{topic="met"}`:              "4",
	})
	if _, err := NewMetrics(nil); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("NewMetrics(nil): %v, want ErrInvalidOption (never the global registry unless asked)", err)
	}
}

// TestMetricsCountAHandlerRunWithoutAllocating: what a worker does per
// record when metrics are on costs no allocation.
func TestMetricsCountAHandlerRunWithoutAllocating(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pm := m.forTopic("t")
	fail := errors.New("failed")
	if allocs := testing.AllocsPerRun(100, func() {
		start := time.Now()
		pm.observe(time.Since(start), nil)
		pm.observe(time.Since(start), fail)
	}); allocs != 0 {
		t.Errorf("counting a handler run costs %v allocations, want 0", allocs)
	}
}
