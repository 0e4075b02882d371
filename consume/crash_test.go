package consume_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/ordering"
)

// TestRestartAfterCrashRerunsOnlyTheRecordInFlight kills a consumer while
// one record runs and the commit names every record done above it, then
// restarts: nothing is lost, the in-flight record runs again, the records
// queued behind it run for the first time, and no record that completed
// above the committed offset runs twice.
func TestRestartAfterCrashRerunsOnlyTheRecordInFlight(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "crash", "g-crash"
	newTopic(t, c, topic, 1)
	rs := produce(t, c, topic, keyed(10, 30))
	var stuck *kgo.Record
	for _, r := range rs {
		if string(r.Value) == "k000:10" {
			stuck = r
		}
	}

	first := newLedger()
	running := make(chan struct{})
	var once sync.Once
	h1 := func(ctx context.Context, r *kgo.Record) error {
		exit := first.enter(t, r, at(r))
		if at(r) == at(stuck) {
			once.Do(func() { close(running) })
			<-ctx.Done() // in flight until the crash
			exit(false)
			return ctx.Err()
		}
		time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond))))
		exit(true)
		return nil
	}
	run1 := start(t, h1, groupOpts(c, group, topic), consume.Concurrency(8),
		consume.CommitInterval(20*time.Millisecond))
	<-running
	const behind = 30 - 11 // k000:11..29 wait behind the stuck record
	testkit.WaitFor(t, 20*time.Second, "every record not behind the stuck one",
		func() bool { return first.doneCount() == len(rs)-1-behind })

	// Wait for a commit at the stuck record that names every record done
	// above it.
	var skips ordering.SkipSet
	testkit.WaitFor(t, 10*time.Second, "the commit to name every done record", func() bool {
		o, ok := committed(t, c, group).Lookup(topic, 0)
		if !ok || o.At != stuck.Offset {
			return false
		}
		s, err := ordering.DecodeMetadata(o.Metadata)
		if err != nil {
			t.Fatalf("committed metadata %q: %v", o.Metadata, err)
		}
		skips = s
		return s.Len() == int64(first.doneCount()-int(stuck.Offset))
	})
	run1.c.Crash()

	second := newLedger()
	h2 := func(_ context.Context, r *kgo.Record) error {
		exit := second.enter(t, r, at(r))
		exit(true)
		return nil
	}
	start(t, h2, groupOpts(c, group, topic), consume.Concurrency(8), consume.CommitInterval(20*time.Millisecond))
	// Once the commit is at the end, every record the restarted consumer
	// was going to run has run: a record run twice cannot come later.
	waitCommittedAtEnd(t, c, group, topic, 20*time.Second)
	if n := second.doneCount(); n != 1+behind {
		t.Errorf("the restarted consumer completed %d records, want %d (the one in flight and those behind it)", n, 1+behind)
	}

	first.mu.Lock()
	second.mu.Lock()
	defer first.mu.Unlock()
	defer second.mu.Unlock()
	for _, r := range rs {
		a := at(r)
		switch {
		case first.done[a]+second.done[a] == 0:
			t.Errorf("record %s (%s) lost: never handled", a, r.Value)
		case first.done[a] > 0 && second.runs[a] > 0:
			t.Errorf("record %s (%s) completed before the crash ran again (skip set has it: %v)", a, r.Value, skips.Skip(r.Offset))
		}
	}
	if second.runs[at(stuck)] != 1 {
		t.Errorf("the record in flight at the crash ran %d times after the restart, want 1", second.runs[at(stuck)])
	}
	if got := second.order["k000"]; len(got) != 1+behind || got[0] != 10 || got[len(got)-1] != 29 {
		t.Errorf("after the restart k000 ran %v, want 10..29 in order", got)
	}
}

// TestCrashAtARandomPointLosesNothing kills a consumer at a random moment
// and restarts it: every record is handled, and no record the last commit
// names as done (below the offset or in the metadata) runs again.
func TestCrashAtARandomPointLosesNothing(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "crash-random", "g-crash-random"
	newTopic(t, c, topic, 3)
	rs := produce(t, c, topic, keyed(30, 20))

	first := newLedger()
	h1 := func(ctx context.Context, r *kgo.Record) error {
		exit := first.enter(t, r, string(r.Key))
		select {
		case <-time.After(time.Duration(rand.Int64N(int64(3 * time.Millisecond)))):
			exit(true)
			return nil
		case <-ctx.Done():
			exit(false)
			return ctx.Err()
		}
	}
	run1 := start(t, h1, groupOpts(c, group, topic), consume.Concurrency(16),
		consume.CommitInterval(15*time.Millisecond))
	killAt := len(rs)/4 + rand.IntN(len(rs)/2)
	testkit.WaitFor(t, 20*time.Second, "part of the stream", func() bool { return first.doneCount() >= killAt })
	run1.c.Crash()

	offs := committed(t, c, group)
	claimed := map[string]bool{} // records the commit says are done
	for _, r := range rs {
		o, ok := offs.Lookup(topic, r.Partition)
		if !ok {
			continue
		}
		s, err := ordering.DecodeMetadata(o.Metadata)
		if err != nil {
			t.Fatalf("partition %d metadata %q: %v", r.Partition, o.Metadata, err)
		}
		if r.Offset < o.At || s.Skip(r.Offset) {
			claimed[at(r)] = true
		}
	}
	first.mu.Lock()
	for a := range claimed {
		if first.done[a] == 0 {
			t.Errorf("the commit claims %s done but it never completed", a)
		}
	}
	first.mu.Unlock()

	second := newLedger()
	h2 := func(_ context.Context, r *kgo.Record) error {
		exit := second.enter(t, r, string(r.Key))
		exit(true)
		return nil
	}
	start(t, h2, groupOpts(c, group, topic), consume.Concurrency(16), consume.CommitInterval(20*time.Millisecond))
	waitCommittedAtEnd(t, c, group, topic, 20*time.Second)
	if n := second.doneCount(); n != len(rs)-len(claimed) {
		t.Errorf("the restarted consumer completed %d records, want the %d the commit did not claim", n, len(rs)-len(claimed))
	}

	first.mu.Lock()
	second.mu.Lock()
	defer first.mu.Unlock()
	defer second.mu.Unlock()
	for _, r := range rs {
		a := at(r)
		if first.done[a]+second.done[a] == 0 {
			t.Errorf("record %s (%s) lost", a, r.Value)
		}
		if claimed[a] && second.runs[a] > 0 {
			t.Errorf("record %s was committed as done and ran again", a)
		}
	}
	for key, seqs := range second.order {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]+1 {
				t.Fatalf("after the restart key %s ran %v: out of order", key, seqs)
			}
		}
	}
	t.Logf("killed after at least %d of %d records; the commit covered %d; %d completed after the last commit and ran again",
		killAt, len(rs), len(claimed), len(first.done)-len(claimed))
}
