package retry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/retry"
)

// TestGracefulShutdownLosesNoMarkerAndRunsNoneTwice stops a job while
// handlers run, then starts another: every marker succeeds exactly once.
// The first job runs a quarter of the markers, then holds its handlers
// until the shutdown has begun; handlers it starts after that hang until
// the shutdown timeout interrupts them, so the first job cannot finish
// everything, however the machine schedules it.
func TestGracefulShutdownLosesNoMarkerAndRunsNoneTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "grace", 3)
	ctx := context.Background()
	p, err := retry.NewParker(e.cl, retry.RetryBackoff(fastBackoff))
	if err != nil {
		t.Fatal(err)
	}
	const n, concurrency = 40, 4
	for i := 0; i < n; i++ {
		if err := p.Park(ctx, e.original(i, fmt.Sprint("k", i)), errors.New("failed")); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	ok := map[string]int{}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ok)
	}
	succeed := func(m *retry.Marker) error {
		mu.Lock()
		ok[string(m.Value)]++
		mu.Unlock()
		return nil
	}
	var (
		stopping atomic.Bool
		held     atomic.Int32
		release  = make(chan struct{})
	)
	first, err := retry.NewJob(func(ctx context.Context, m *retry.Marker) error {
		if stopping.Load() {
			<-ctx.Done() // started during the shutdown: interrupted, runs again later
			return ctx.Err()
		}
		if count() >= n/4 {
			held.Add(1)
			<-release // running when the shutdown begins
		}
		return succeed(m)
	}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.Concurrency(concurrency),
		retry.CommitInterval(time.Hour), retry.ShutdownTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, first)
	testkit.WaitFor(t, 20*time.Second, "a quarter of the markers to succeed and every handler to be held",
		func() bool { return held.Load() == concurrency })
	stopping.Store(true)
	close(release)
	if err := stop(); err != nil { // graceful: waits for running handlers, commits
		t.Fatal(err)
	}
	before := count()
	if before == n {
		t.Fatalf("the first job finished everything before the shutdown; the test proves nothing")
	}

	// The second job commits often: once its commit is at the end of the
	// retry topic, it has run every marker it was going to, so a marker
	// run twice cannot come later.
	second, err := retry.NewJob(func(_ context.Context, m *retry.Marker) error { return succeed(m) },
		retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.Concurrency(concurrency),
		retry.CommitInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop = runJob(t, second)
	testkit.WaitFor(t, 20*time.Second, "every record to succeed", func() bool { return count() == n })
	waitCommittedAtEnd(t, e, retry.DefaultGroup(e.topic+retry.RetrySuffix), e.topic+retry.RetrySuffix)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for v, c := range ok {
		if c != 1 {
			t.Errorf("%s ran %d times, want once: a finished marker was not committed at shutdown", v, c)
		}
	}
	t.Logf("first job finished %d of %d before stopping", before, n)
}

func TestHandlerInterruptedByShutdownRunsAgainWithoutCountingAnAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "intr", 1)
	ctx := context.Background()
	p, err := retry.NewParker(e.cl, retry.RetryBackoff(fastBackoff))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Park(ctx, e.original(0, "k"), errors.New("failed")); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	j, err := retry.NewJob(func(ctx context.Context, m *retry.Marker) error {
		started <- struct{}{}
		<-ctx.Done() // hangs until the shutdown timeout cancels it
		return ctx.Err()
	}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.ShutdownTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler never ran")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	got := make(chan *retry.Marker, 1)
	again, err := retry.NewJob(func(_ context.Context, m *retry.Marker) error { got <- m; return nil },
		retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff))
	if err != nil {
		t.Fatal(err)
	}
	stop = runJob(t, again)
	select {
	case m := <-got:
		if m.Attempts != 1 {
			t.Errorf("after the interrupted run the marker has %d attempts, want 1", m.Attempts)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the interrupted marker was lost")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st := j.Stats(); st.Reparked != 0 || st.DeadLettered != 0 {
		t.Errorf("the interrupted run was counted as a failure: %+v", st)
	}
}

// A Job whose context ends while it is still starting (SIGTERM just after retry-job printed ready)
// has been shut down by its caller: Run returns nil, as after a shutdown once running, and not the
// canceled request of the start.
func TestJobRunReturnsNilWhenItsContextEndsWhileItStarts(t *testing.T) {
	e := newEnv(t, "starting", 1)
	j, err := retry.NewJob(func(context.Context, *retry.Marker) error { return nil },
		retry.Topic(e.topic), e.clientOpts(), retry.Logger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := j.Run(ctx); err != nil {
		t.Fatalf("Run with a context that ended while it started: %v, want nil", err)
	}
}
