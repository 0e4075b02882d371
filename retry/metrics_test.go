package retry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/retry"
)

// scrape returns the kafkaguard_retry_ samples of a /metrics page.
func scrape(t *testing.T, url string) map[string]string {
	t.Helper()
	return testkit.Scrape(t, url, "kafkaguard_retry_")
}

func TestMetricsEndpointShowsTheCounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "met", 2)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := retry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := testkit.ServeMetrics(t, reg)

	const maxAttempts = 3
	p, err := retry.NewParker(e.cl, retry.ReportMetrics(m), retry.RetryBackoff(fastBackoff), retry.MaxAttempts(maxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	// Three records succeed on their first job run, two on their second,
	// two never (dead-lettered after two job runs).
	fails := map[string]int{}
	for i, k := range []int{1, 1, 1, 2, 2, 99, 99} {
		r := e.original(i, fmt.Sprint("k", i))
		fails[string(r.Value)] = k
		if err := p.Park(ctx, r, errors.New("consumer failed")); err != nil {
			t.Fatal(err)
		}
	}
	h := newRecorder(fails)
	var alerts []retry.Alert
	var alertsMu sync.Mutex
	j, err := retry.NewJob(h.handle, retry.Topic(e.topic), e.clientOpts(), retry.ReportMetrics(m), retry.RetryBackoff(fastBackoff),
		retry.MaxAttempts(maxAttempts), retry.CommitInterval(20*time.Millisecond),
		retry.OnAlert(retry.Thresholds{DeadLetters: 2, Interval: 20 * time.Millisecond}, func(a retry.Alert) {
			alertsMu.Lock()
			alerts = append(alerts, a)
			alertsMu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)
	testkit.WaitFor(t, 20*time.Second, "all records to finish", func() bool {
		st := j.Stats()
		return st.Succeeded == 5 && st.DeadLettered == 2
	})
	testkit.WaitFor(t, 5*time.Second, "the backlog gauge to reach zero", func() bool {
		return scrape(t, metricsURL)[`kafkaguard_retry_backlog{retry_topic="met.retry"}`] == "0"
	})
	got := scrape(t, metricsURL)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		// 7 first parks + 2 re-parks of the twice-failing + 2 of the never-succeeding
		`kafkaguard_retry_parked_total{topic="met"}`:                          "11",
		`kafkaguard_retry_retried_total{topic="met"}`:                         "11", // 3×1 + 2×2 + 2×2
		`kafkaguard_retry_succeeded_total{topic="met"}`:                       "5",
		`kafkaguard_retry_dead_lettered_total{topic="met"}`:                   "2",
		`kafkaguard_retry_backlog{retry_topic="met.retry"}`:                   "0",
		`kafkaguard_retry_oldest_marker_age_seconds{retry_topic="met.retry"}`: "0",
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %q, want %s", name, got[name], v)
		}
	}
	alertsMu.Lock()
	defer alertsMu.Unlock()
	if len(alerts) != 1 || alerts[0].Kind != retry.AlertDeadLetter || alerts[0].Value != 2 || alerts[0].Marker == nil {
		t.Errorf("alerts %+v, want one dead-letter alert at the second dead letter", alerts)
	}
}

// TestBacklogAndAgeAlertsFireAboveTheirThresholdsAndClearBelow holds every
// handler until both alerts have fired, so the markers stay pending however
// slowly the job reads them, then lets them succeed and waits for both
// alerts to clear. The job is stopped (its gauge loop with it) before the
// alerts are checked, so none can arrive after the check.
func TestBacklogAndAgeAlertsFireAboveTheirThresholdsAndClearBelow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "alrt", 1)
	ctx := context.Background()
	p, err := retry.NewParker(e.cl, retry.RetryBackoff(fastBackoff))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		if err := p.Park(ctx, e.original(i, "k"), errors.New("failed")); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var alerts []retry.Alert
	// last returns the latest alert of each kind.
	last := func() map[retry.AlertKind]retry.Alert {
		mu.Lock()
		defer mu.Unlock()
		out := map[retry.AlertKind]retry.Alert{}
		for _, a := range alerts {
			out[a.Kind] = a
		}
		return out
	}
	release := make(chan struct{})
	j, err := retry.NewJob(func(ctx context.Context, _ *retry.Marker) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff),
		retry.CommitInterval(20*time.Millisecond),
		retry.OnAlert(retry.Thresholds{Backlog: 4, Age: 100 * time.Millisecond, Interval: 10 * time.Millisecond}, func(a retry.Alert) {
			mu.Lock()
			alerts = append(alerts, a)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)
	testkit.WaitFor(t, 20*time.Second, "the backlog and age alerts to fire", func() bool {
		l := last()
		return l[retry.AlertBacklog].Firing && l[retry.AlertAge].Firing
	})
	close(release)
	testkit.WaitFor(t, 20*time.Second, "every record to succeed and both alerts to clear", func() bool {
		l := last()
		return j.Stats().Succeeded == 6 && len(l) == 2 && !l[retry.AlertBacklog].Firing && !l[retry.AlertAge].Firing
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	state := map[retry.AlertKind][]bool{}
	for _, a := range alerts {
		state[a.Kind] = append(state[a.Kind], a.Firing)
		if a.Firing && a.Value <= a.Threshold {
			t.Errorf("%v alert fired at %v, threshold %v", a.Kind, a.Value, a.Threshold)
		}
	}
	for _, k := range []retry.AlertKind{retry.AlertBacklog, retry.AlertAge} {
		if fmt.Sprint(state[k]) != "[true false]" {
			t.Errorf("%v alerts: firing states %v, want [true false]", k, state[k])
		}
	}
	if len(alerts) != 4 {
		t.Errorf("%d alerts, want 4: %+v", len(alerts), alerts)
	}
}
