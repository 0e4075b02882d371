package consume_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/ordering"
)

var errPoison = errors.New("poison record")

func TestFailingHandlerBlocksOnlyWhatItsOrderKeepsBehind(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	for _, tc := range []struct {
		order  consume.Order
		behind func(r, failed *kgo.Record) bool // whether r must wait for failed
	}{
		{consume.KeyOrder, func(r, f *kgo.Record) bool {
			return r.Partition == f.Partition && string(r.Key) == string(f.Key) && r.Offset > f.Offset
		}},
		{consume.PartitionOrder, func(r, f *kgo.Record) bool { return r.Partition == f.Partition && r.Offset > f.Offset }},
	} {
		t.Run(tc.order.String(), func(t *testing.T) {
			topic, group := "fail-"+tc.order.String(), "g-fail-"+tc.order.String()
			newTopic(t, c, topic, 2)
			rs := produce(t, c, topic, keyed(10, 20))
			var failed *kgo.Record
			for _, r := range rs {
				if string(r.Value) == "k003:5" {
					failed = r
				}
			}
			var want, blocked []*kgo.Record
			for _, r := range rs {
				if r != failed && !tc.behind(r, failed) {
					want = append(want, r)
				} else if r != failed {
					blocked = append(blocked, r)
				}
			}

			l := newLedger()
			var (
				mu       sync.Mutex
				reported []consume.Failure
				resolved bool
			)
			handler := func(_ context.Context, r *kgo.Record) error {
				exit := l.enter(t, r, at(r))
				mu.Lock()
				fail := at(r) == at(failed) && !resolved
				mu.Unlock()
				if fail {
					exit(false)
					return errPoison
				}
				exit(true)
				return nil
			}
			onError := func(f consume.Failure) {
				mu.Lock()
				defer mu.Unlock()
				reported = append(reported, f)
			}
			run := start(t, handler, groupOpts(c, group, topic), consume.OrderBy(tc.order),
				consume.Concurrency(8), consume.CommitInterval(20*time.Millisecond), consume.OnError(onError))

			// Wait until the consumer holds every record and none is queued
			// or running: each is done, failed or blocked, so a blocked
			// record that was going to run has run by now. A blocked record
			// that ran ends the wait at once.
			testkit.WaitFor(t, 30*time.Second, "every record done, failed or blocked", func() bool {
				l.mu.Lock()
				for _, r := range blocked {
					if l.runs[at(r)] != 0 {
						l.mu.Unlock()
						return true
					}
				}
				l.mu.Unlock()
				st := run.c.Stats()
				return st.Queued == 0 && st.Running == 0 && st.Processed+int64(st.Failed+st.Blocked) == int64(len(rs))
			})
			if n := l.doneCount(); n != len(want) {
				t.Errorf("%d records completed, want the %d not behind the failure", n, len(want))
			}
			testkit.WaitFor(t, 10*time.Second, "the commit to reach the failed record", func() bool {
				o, ok := committed(t, c, group).Lookup(topic, failed.Partition)
				return ok && o.At == failed.Offset
			})

			l.mu.Lock()
			for _, r := range blocked {
				if l.runs[at(r)] != 0 {
					t.Errorf("record %s (%s) ran although it waits behind the failed %s", at(r), r.Value, failed.Value)
				}
			}
			if n := l.runs[at(failed)]; n != 1 {
				t.Errorf("failed record ran %d times, want 1 (no silent retry)", n)
			}
			l.mu.Unlock()
			mu.Lock()
			if len(reported) != 1 || at(reported[0].Record) != at(failed) || !errors.Is(reported[0].Err, errPoison) {
				t.Errorf("OnError got %v, want one failure of %s with the handler's error", reported, at(failed))
			}
			mu.Unlock()
			fs := run.c.Failures()
			if len(fs) != 1 || at(fs[0].Record) != at(failed) || fs[0].Attempts != 1 {
				t.Fatalf("Failures() = %+v, want the one failed record", fs)
			}
			if st := run.c.Stats(); st.Failed != 1 || st.Blocked != len(blocked) {
				t.Errorf("Stats: %d failed, %d blocked; want 1 and %d", st.Failed, st.Blocked, len(blocked))
			}

			// Resolving the failure lets the records behind it run and the
			// commit reach the end.
			mu.Lock()
			resolved = true
			mu.Unlock()
			if err := run.c.Resolve(topic, failed.Partition, failed.Offset); err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, 10*time.Second, "the records behind the failure",
				func() bool { return l.doneCount() == len(want)+len(blocked) })
			if err := run.shutdown(t); err != nil {
				t.Fatal(err)
			}
			offs := committed(t, c, group)
			for p, end := range endOffsets(t, c, topic) {
				if o, _ := offs.Lookup(topic, p); o.At != end {
					t.Errorf("partition %d committed %d after Resolve, want %d", p, o.At, end)
				}
			}
		})
	}
}

// memParker parks records in memory, or fails for the keys in refuse. With
// want set, it refuses to park a record for any other error.
type memParker struct {
	mu     sync.Mutex
	parked []string
	errs   map[string]error // by value: the error each parked record failed with
	refuse map[string]bool
	want   error
}

var errParkDown = errors.New("retry topic unavailable")

func (p *memParker) Park(_ context.Context, r *kgo.Record, err error) error {
	if p.want != nil && !errors.Is(err, p.want) {
		return fmt.Errorf("parked with the wrong error: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse[string(r.Key)] {
		return errParkDown
	}
	p.parked = append(p.parked, string(r.Value))
	if p.errs == nil {
		p.errs = map[string]error{}
	}
	p.errs[string(r.Value)] = err
	return nil
}

func TestRetryPathTakesFailedRecordsAndTheRestGoesOn(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "parked", "g-parked"
	newTopic(t, c, topic, 1)
	rs := produce(t, c, topic, keyed(5, 20))

	p := &memParker{refuse: map[string]bool{"k004": true}, want: errPoison}
	var (
		mu       sync.Mutex
		reported []consume.Failure
		handled  = map[string]bool{}
	)
	handler := func(_ context.Context, r *kgo.Record) error {
		_, seq := parse(t, r.Value)
		if seq%7 == 3 {
			return errPoison
		}
		mu.Lock()
		handled[string(r.Value)] = true
		mu.Unlock()
		return nil
	}
	run := start(t, handler, groupOpts(c, group, topic), consume.RetryPath(p), consume.Concurrency(4),
		consume.CommitInterval(20*time.Millisecond),
		consume.OnError(func(f consume.Failure) { mu.Lock(); reported = append(reported, f); mu.Unlock() }))

	// k000..k003 fail at seq 3, 10 and 17, are parked and go on; k004's
	// park fails at seq 3, so k004 stops there.
	var wantParked []string
	for _, r := range rs {
		key, seq := parse(t, r.Value)
		if seq%7 == 3 && key != "k004" {
			wantParked = append(wantParked, string(r.Value))
		}
	}
	wantHandled := 4*(20-3) + 3
	testkit.WaitFor(t, 20*time.Second, "the records not behind k004:3", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == wantHandled && len(reported) == 1
	})
	p.mu.Lock()
	slices.Sort(p.parked)
	slices.Sort(wantParked)
	if !slices.Equal(p.parked, wantParked) {
		t.Errorf("parked %v, want %v", p.parked, wantParked)
	}
	p.mu.Unlock()

	mu.Lock()
	f := reported[0]
	mu.Unlock()
	var pe *consume.ParkError
	if string(f.Record.Value) != "k004:3" || !errors.As(f.Err, &pe) || !errors.Is(f.Err, errParkDown) || !errors.Is(f.Err, errPoison) {
		t.Fatalf("failure %s: %v; want k004:3 with a ParkError matching both errors", f.Record.Value, f.Err)
	}
	var failedAt *kgo.Record
	for _, r := range rs {
		if string(r.Value) == "k004:3" {
			failedAt = r
		}
	}
	testkit.WaitFor(t, 10*time.Second, "the commit to stop at the unparked failure", func() bool {
		o, _ := committed(t, c, group).Lookup(topic, 0)
		return o.At == failedAt.Offset
	})
	if err := run.shutdown(t); err != nil {
		t.Fatal(err)
	}
}

func TestAPanickingHandlerIsParkedLikeAFailingOne(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "panics", "g-panics"
	newTopic(t, c, topic, 1)
	rs := produce(t, c, topic, keyed(2, 5))
	p := &memParker{}
	var mu sync.Mutex
	handled := map[string]bool{}
	handler := func(_ context.Context, r *kgo.Record) error {
		if string(r.Value) == "k001:2" {
			panic("nil map in the handler")
		}
		mu.Lock()
		handled[string(r.Value)] = true
		mu.Unlock()
		return nil
	}
	run := start(t, handler, groupOpts(c, group, topic), consume.RetryPath(p), consume.CommitInterval(20*time.Millisecond))
	// Its key goes on past it, and the commit passes every record.
	last := rs[len(rs)-1]
	testkit.WaitFor(t, 20*time.Second, "every record handled or parked, and committed", func() bool {
		o, _ := committed(t, c, group).Lookup(topic, 0)
		return o.At == last.Offset+1
	})
	if err := run.shutdown(t); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != len(rs)-1 || !handled["k001:3"] || !handled["k001:4"] {
		t.Fatalf("handled %d records (%v), want all but the panicking one", len(handled), handled)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var pe *ordering.PanicError
	if err := p.errs["k001:2"]; len(p.parked) != 1 || !errors.As(err, &pe) || pe.Value != "nil map in the handler" {
		t.Fatalf("parked %v, want k001:2 with its PanicError", p.parked)
	}
}
