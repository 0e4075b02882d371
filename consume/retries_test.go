package consume_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/ordering"
	"github.com/kafkaguard/kafkaguard/retry"
)

var errTransient = errors.New("transient")

// fixedBackoff is a backoff of d before every retry, without jitter.
func fixedBackoff(d time.Duration) retry.Backoff {
	return retry.Backoff{Initial: d, Max: d, Multiplier: 1}
}

// counterValue sums the samples of the counter family name in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// runLog records each handler run: the record, its attempt, and when.
type runLog struct {
	mu   sync.Mutex
	runs []logged
}

type logged struct {
	value   string
	attempt int
	start   time.Time
	end     time.Time
}

func (l *runLog) add(v string, attempt int, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs = append(l.runs, logged{value: v, attempt: attempt, start: start, end: time.Now()})
}

// of returns the runs of the record with value v, in the order they ended.
func (l *runLog) of(v string) []logged {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logged
	for _, r := range l.runs {
		if r.value == v {
			out = append(out, r)
		}
	}
	return out
}

// TestRetriesRunATransientFailureAgainInProcessWhileItsKeyWaits: with
// Retries{Attempts: 3}, a record that fails twice is run a third time after
// the backoff, succeeds and is not parked; a record that fails three times
// goes to the Parker; meanwhile the records behind each in its key wait,
// another key goes on, and the retries are counted.
func TestRetriesRunATransientFailureAgainInProcessWhileItsKeyWaits(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "retries", "g-retries"
	newTopic(t, c, topic, 1)
	produce(t, c, topic, keyed(3, 4))
	reg := prometheus.NewRegistry()
	m, err := consume.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}

	const backoff = 100 * time.Millisecond
	var (
		log      runLog
		k002Done = make(chan struct{}) // every record of k002 handled
		k000Fail = make(chan struct{}) // k000:1's first attempt failed
		mu       sync.Mutex
		k002     int
		failures []consume.Failure
	)
	handler := func(ctx context.Context, r *kgo.Record) error {
		startAt := time.Now()
		n := consume.Attempt(ctx)
		defer log.add(string(r.Value), n, startAt)
		switch string(r.Value) {
		case "k000:1": // transient: fails twice, then succeeds
			if n == 2 {
				// k002 is handled while k000:1 waits for its retries.
				select {
				case <-k002Done:
				case <-time.After(10 * time.Second):
					t.Error("k002 was not handled while k000:1 waited for a retry")
				}
			}
			if n == 1 {
				close(k000Fail)
			}
			if n < 3 {
				return errTransient
			}
		case "k001:1": // fails past its attempts
			return errPoison
		}
		if key, seq := parse(t, r.Value); key == "k002" {
			if seq == 0 {
				<-k000Fail // k002 runs while k000:1 is being retried
			}
			mu.Lock()
			if k002++; k002 == 4 {
				close(k002Done)
			}
			mu.Unlock()
		}
		return nil
	}
	p := &memParker{}
	run := start(t, handler, groupOpts(c, group, topic), consume.Concurrency(4),
		consume.CommitInterval(20*time.Millisecond), consume.RetryPath(p), consume.ReportMetrics(m),
		consume.Retries(consume.RetryPolicy{Attempts: 3, Backoff: fixedBackoff(backoff)}),
		consume.OnError(func(f consume.Failure) { mu.Lock(); failures = append(failures, f); mu.Unlock() }))
	waitCommittedAtEnd(t, c, group, topic, 20*time.Second)

	for _, tc := range []struct {
		value, next string
	}{{"k000:1", "k000:2"}, {"k001:1", "k001:2"}} {
		runs := log.of(tc.value)
		var attempts []int
		for _, r := range runs {
			attempts = append(attempts, r.attempt)
		}
		if !slices.Equal(attempts, []int{1, 2, 3}) {
			t.Fatalf("%s ran with attempts %v, want [1 2 3]", tc.value, attempts)
		}
		for i := 1; i < len(runs); i++ {
			if gap := runs[i].start.Sub(runs[i-1].end); gap < backoff {
				t.Errorf("%s: attempt %d started %v after attempt %d ended, want at least the backoff %v",
					tc.value, i+1, gap, i, backoff)
			}
		}
		next := log.of(tc.next)
		if len(next) != 1 || next[0].start.Before(runs[2].end) {
			t.Errorf("%s ran %d times, first at %v, before %s's last attempt ended at %v: its key was not blocked",
				tc.next, len(next), next, tc.value, runs[2].end)
		}
	}
	p.mu.Lock()
	if !slices.Equal(p.parked, []string{"k001:1"}) || !errors.Is(p.errs["k001:1"], errPoison) {
		t.Errorf("parked %v (errors %v), want only k001:1 with its handler's error", p.parked, p.errs)
	}
	p.mu.Unlock()
	mu.Lock()
	if len(failures) != 0 {
		t.Errorf("OnError reported %d failures, want none", len(failures))
	}
	mu.Unlock()
	if got := counterValue(t, reg, "kafkaguard_consume_retries_total"); got != 4 {
		t.Errorf("kafkaguard_consume_retries_total = %v, want 4 (two retries of k000:1, two of k001:1)", got)
	}
	if got := counterValue(t, reg, "kafkaguard_consume_parked_total"); got != 1 {
		t.Errorf("kafkaguard_consume_parked_total = %v, want 1", got)
	}
	if err := run.shutdown(t); err != nil {
		t.Fatal(err)
	}
}

// TestARecordWaitingForARetryRunsAgainAfterACrashOrAShutdown: while a
// record waits for its next attempt, the commit stops at it (naming the
// records done above it), a crash or a shutdown ends the wait at once, and
// the restarted consumer runs it again, first attempt first, and nothing
// done before.
func TestARecordWaitingForARetryRunsAgainAfterACrashOrAShutdown(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	for _, crash := range []bool{true, false} {
		name := map[bool]string{true: "crash", false: "shutdown"}[crash]
		t.Run(name, func(t *testing.T) {
			topic, group := "retry-wait-"+name, "g-retry-wait-"+name
			newTopic(t, c, topic, 1)
			rs := produce(t, c, topic, keyed(2, 5))
			stuck := withValue(rs, "k000:1")

			first := newLedger()
			failed := make(chan struct{})
			var once sync.Once
			var reported []consume.Failure
			var mu sync.Mutex
			h1 := func(ctx context.Context, r *kgo.Record) error {
				exit := first.enter(t, r, string(r.Key))
				if at(r) == at(stuck) {
					exit(false)
					once.Do(func() { close(failed) })
					return errTransient
				}
				exit(true)
				return nil
			}
			run1 := start(t, h1, groupOpts(c, group, topic), consume.Concurrency(4),
				consume.CommitInterval(20*time.Millisecond),
				consume.OnError(func(f consume.Failure) { mu.Lock(); reported = append(reported, f); mu.Unlock() }),
				consume.Retries(consume.RetryPolicy{Attempts: 5, Backoff: fixedBackoff(time.Hour)}))
			<-failed
			// k000:0 and k001:0..4 done; the commit stops at k000:1 and names k001's records.
			testkit.WaitFor(t, 10*time.Second, "the commit to stop at the waiting record and name the rest", func() bool {
				o, ok := committed(t, c, group).Lookup(topic, 0)
				if !ok || o.At != stuck.Offset {
					return false
				}
				s, err := ordering.DecodeMetadata(o.Metadata)
				return err == nil && s.Len() == int64(first.doneCount()-int(stuck.Offset)) && first.doneCount() == 6
			})
			begun := time.Now()
			if crash {
				run1.c.Crash()
			} else if err := run1.shutdown(t); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(begun); d > 5*time.Second {
				t.Errorf("stopping took %v with a record waiting for an hour's backoff", d)
			}
			if o, _ := committed(t, c, group).Lookup(topic, 0); o.At > stuck.Offset {
				t.Fatalf("committed offset %d passed the waiting record at %d", o.At, stuck.Offset)
			}
			mu.Lock()
			if len(reported) != 0 {
				t.Errorf("OnError reported %v; a record whose wait was ended is not a failure", reported[0].Err)
			}
			mu.Unlock()

			second := newLedger()
			attempts := map[string]int{}
			h2 := func(ctx context.Context, r *kgo.Record) error {
				exit := second.enter(t, r, string(r.Key))
				mu.Lock()
				attempts[at(r)] = consume.Attempt(ctx)
				mu.Unlock()
				exit(true)
				return nil
			}
			start(t, h2, groupOpts(c, group, topic), consume.Concurrency(4), consume.CommitInterval(20*time.Millisecond),
				consume.Retries(consume.RetryPolicy{Attempts: 5, Backoff: fixedBackoff(time.Hour)}))
			waitCommittedAtEnd(t, c, group, topic, 20*time.Second)
			second.mu.Lock()
			defer second.mu.Unlock()
			if second.done[at(stuck)] != 1 || attempts[at(stuck)] != 1 {
				t.Errorf("after the restart the waiting record completed %d times (attempt %d), want once at attempt 1",
					second.done[at(stuck)], attempts[at(stuck)])
			}
			for _, r := range rs {
				if first.done[at(r)] > 0 && second.runs[at(r)] > 0 {
					t.Errorf("%s (%s) was done before the stop and ran again", at(r), r.Value)
				}
				if first.done[at(r)]+second.done[at(r)] == 0 {
					t.Errorf("%s (%s) lost", at(r), r.Value)
				}
			}
		})
	}
}

// TestSaramaHandlerRetriesInProcessAndStopsWaitingAtShutdown: Retries
// works on a SaramaHandler as on a Consumer (one engine): a record waiting
// for an hour's backoff holds the commit, and the handler's stop ends the
// wait at once without committing past it.
func TestSaramaHandlerRetriesInProcessAndStopsWaitingAtShutdown(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "sarama-retries", "g-sarama-retries"
	newTopic(t, c, topic, 1)
	rs := produce(t, c, topic, keyed(2, 3))
	stuck := withValue(rs, "k001:1")
	var (
		mu       sync.Mutex
		attempts = map[string][]int{}
		waiting  = make(chan struct{})
	)
	handler := func(ctx context.Context, r *kgo.Record) error {
		n := consume.Attempt(ctx)
		mu.Lock()
		attempts[string(r.Value)] = append(attempts[string(r.Value)], n)
		mu.Unlock()
		if at(r) == at(stuck) {
			close(waiting)
			return errTransient // then waits an hour for attempt 2
		}
		return nil
	}
	run := startSarama(t, c, group, topic, handler, consume.CommitInterval(20*time.Millisecond),
		consume.Retries(consume.RetryPolicy{Attempts: 2, Backoff: fixedBackoff(time.Hour),
			Retryable: func(err error) bool { return errors.Is(err, errTransient) }}))
	<-waiting
	testkit.WaitFor(t, 10*time.Second, "the commit to stop at the waiting record", func() bool {
		o, _ := committed(t, c, group).Lookup(topic, 0)
		return o.At == stuck.Offset
	})
	begun := time.Now()
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begun); d > 5*time.Second {
		t.Errorf("stopping took %v with a record waiting for an hour's backoff", d)
	}
	if o, _ := committed(t, c, group).Lookup(topic, 0); o.At != stuck.Offset {
		t.Errorf("committed %d after the stop, want the waiting record's offset %d", o.At, stuck.Offset)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := attempts["k001:1"]; !slices.Equal(got, []int{1}) {
		t.Errorf("k001:1 ran at attempts %v, want [1] (then waited)", got)
	}
}
