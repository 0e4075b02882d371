package retry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/retry"
)

// run is one handler run the Job made.
type run struct {
	at     time.Time
	marker *retry.Marker
}

// recorder is a handler that fails each record's first fails[value]
// attempts (counting the consumer's own) and records every run.
type recorder struct {
	mu    sync.Mutex
	fails map[string]int
	runs  map[string][]run
	ok    map[string]int
}

func newRecorder(fails map[string]int) *recorder {
	return &recorder{fails: fails, runs: map[string][]run{}, ok: map[string]int{}}
}

func (h *recorder) handle(_ context.Context, m *retry.Marker) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := string(m.Value)
	h.runs[v] = append(h.runs[v], run{time.Now(), m})
	attempt := m.Attempts + 1
	if attempt <= h.fails[v] {
		return fmt.Errorf("attempt %d of %s fails", attempt, v)
	}
	h.ok[v]++
	return nil
}

func (h *recorder) succeeded() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ok)
}

func TestRecordsFailingFirstAttemptsAreAllProcessedWithinTheirBackoffSchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "orders", 3)
	ctx := context.Background()
	p, err := retry.NewParker(e.cl, retry.RetryBackoff(fastBackoff), retry.MaxAttempts(6))
	if err != nil {
		t.Fatal(err)
	}
	fails := map[string]int{}
	const n = 40
	for i := 0; i < n; i++ {
		r := e.original(i, fmt.Sprintf("k%d", i%7))
		fails[string(r.Value)] = 1 + i%5 // 1..5 failed attempts, the first is the consumer's
		if err := p.Park(ctx, r, errors.New("consumer failed")); err != nil {
			t.Fatal(err)
		}
	}
	h := newRecorder(fails)
	j, err := retry.NewJob(h.handle, retry.Topic(e.topic), e.clientOpts(), retry.Logger(testLogger(t)), retry.RetryBackoff(fastBackoff), retry.MaxAttempts(6), retry.CommitInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)
	testkit.WaitFor(t, 30*time.Second, "every record to succeed", func() bool { return h.succeeded() == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	for v, k := range fails {
		runs := h.runs[v]
		if len(runs) != k { // k-1 failed job runs, then the success
			t.Errorf("%s: %d job runs, want %d", v, len(runs), k)
		}
		if h.ok[v] != 1 {
			t.Errorf("%s: succeeded %d times, want once", v, h.ok[v])
		}
		for i, r := range runs {
			m := r.marker
			if m.Attempts != i+1 {
				t.Errorf("%s run %d: marker has %d attempts, want %d", v, i, m.Attempts, i+1)
			}
			if len(m.History) != m.Attempts {
				t.Errorf("%s run %d: %d history entries for %d attempts", v, i, len(m.History), m.Attempts)
			}
			if r.at.Before(m.Due) {
				t.Errorf("%s run %d: ran %v before its due time", v, i, m.Due.Sub(r.at))
			}
			lo, hi := fastBackoff.Bounds(m.Attempts)
			failedAt := m.History[len(m.History)-1].At
			if d := m.Due.Sub(failedAt); d < lo-time.Millisecond || d > hi+time.Millisecond {
				t.Errorf("%s run %d: due %v after the failure, want within [%v, %v]", v, i, d, lo, hi)
			}
		}
	}
	if st := j.Stats(); st.DeadLettered != 0 || st.Held != 0 {
		t.Errorf("stats after all succeeded: %+v", st)
	}
	if dl := readAll(t, e.c, e.topic+retry.DeadLetterSuffix); len(dl) != 0 {
		t.Errorf("%d dead letters, want none", len(dl))
	}
}
