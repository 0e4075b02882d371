package consume_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// startBatch starts a batch Consumer in the background.
func startBatch(t testing.TB, handler consume.BatchHandler, opts ...consume.BatchOpt) *running {
	t.Helper()
	c, err := consume.NewBatch(handler, opts...)
	return runConsumer(t, c, err)
}

func offsets(rs []*kgo.Record) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.Offset
	}
	return out
}

// TestABatchIsCommittedOnlyWhenWholeAndACrashMidBatchRerunsIt: the
// batches of a partition run in order, at most BatchSize records each;
// while a batch runs the commit stays at its first offset, and after a
// crash in the middle of it the restarted consumer runs every record of it
// again and none of the batches done before.
func TestABatchIsCommittedOnlyWhenWholeAndACrashMidBatchRerunsIt(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "batches", "g-batches"
	newTopic(t, c, topic, 1)
	rs := produce(t, c, topic, keyed(2, 10))
	const size = 5

	var (
		mu      sync.Mutex
		batches [][]int64 // as handled by the first consumer, in order
		stuck   []int64
	)
	running := make(chan struct{})
	h1 := func(ctx context.Context, b []*kgo.Record) error {
		offs := offsets(b)
		mu.Lock()
		batches = append(batches, offs)
		mu.Unlock()
		if len(b) > size {
			t.Errorf("a batch of %d records, BatchSize is %d", len(b), size)
		}
		if slices.Contains(offs, 12) {
			mu.Lock()
			stuck = offs
			mu.Unlock()
			close(running)
			<-ctx.Done() // half handled, say, until the crash
			return ctx.Err()
		}
		return nil
	}
	run1 := startBatch(t, h1, groupOpts(c, group, topic), consume.BatchSize(size),
		consume.CommitInterval(20*time.Millisecond))
	<-running
	testkit.WaitFor(t, 10*time.Second, "the commit to reach the running batch", func() bool {
		o, ok := committed(t, c, group).Lookup(topic, 0)
		return ok && o.At == stuck[0]
	}, func() string {
		o, _ := committed(t, c, group).Lookup(topic, 0)
		return fmt.Sprintf("committed %d while the batch %v runs", o.At, stuck)
	})
	run1.c.Crash()
	// Every commit up to the crash came while the batch ran.
	if o, _ := committed(t, c, group).Lookup(topic, 0); o.At != stuck[0] {
		t.Fatalf("committed offset %d while the batch %v ran, want its first offset", o.At, stuck)
	}

	mu.Lock()
	var prev int64 = -1
	for _, b := range batches {
		if b[0] != prev+1 || !slices.IsSorted(b) {
			t.Errorf("batches ran as %v: not one partition's records in offset order, one batch after the other", batches)
			break
		}
		prev = b[len(b)-1]
	}
	mu.Unlock()

	second := newLedger()
	h2 := func(_ context.Context, b []*kgo.Record) error {
		for _, r := range b {
			second.enter(t, r, at(r))(true)
		}
		return nil
	}
	startBatch(t, h2, groupOpts(c, group, topic), consume.BatchSize(size), consume.CommitInterval(20*time.Millisecond))
	waitCommittedAtEnd(t, c, group, topic, 20*time.Second)
	second.mu.Lock()
	defer second.mu.Unlock()
	for _, r := range rs {
		ran := second.runs[at(r)]
		switch {
		case r.Offset < stuck[0] && ran > 0:
			t.Errorf("offset %d, of a batch done before the crash, ran again", r.Offset)
		case r.Offset >= stuck[0] && ran != 1:
			t.Errorf("offset %d (the crashed batch %v or later) ran %d times after the restart, want 1", r.Offset, stuck, ran)
		}
	}
}

// TestAFailedBatchIsRetriedAsAUnitThenParkedRecordByRecord: with Retries
// a batch that fails twice runs a third time, whole, and is not parked; a
// batch that fails every attempt has each of its records parked in offset
// order, and the partition goes on.
func TestAFailedBatchIsRetriedAsAUnitThenParkedRecordByRecord(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "batch-fail", "g-batch-fail"
	newTopic(t, c, topic, 1)
	produce(t, c, topic, keyed(1, 15))

	var (
		mu   sync.Mutex
		runs = map[int64][]int{} // a batch's first offset -> attempts
		done []int64
	)
	h := func(ctx context.Context, b []*kgo.Record) error {
		offs := offsets(b)
		mu.Lock()
		runs[offs[0]] = append(runs[offs[0]], consume.Attempt(ctx))
		mu.Unlock()
		switch {
		case slices.Contains(offs, 2) && consume.Attempt(ctx) < 3:
			return errTransient
		case slices.Contains(offs, 7):
			return errPoison
		}
		mu.Lock()
		done = append(done, offs...)
		mu.Unlock()
		return nil
	}
	p := &memParker{}
	var reported []consume.Failure
	run := startBatch(t, h, groupOpts(c, group, topic), consume.BatchSize(5), consume.RetryPath(p),
		consume.CommitInterval(20*time.Millisecond),
		consume.Retries(consume.RetryPolicy{Attempts: 3, Backoff: fixedBackoff(20 * time.Millisecond)}),
		consume.OnError(func(f consume.Failure) { mu.Lock(); reported = append(reported, f); mu.Unlock() }))
	waitCommittedAtEnd(t, c, group, topic, 20*time.Second)

	mu.Lock()
	defer mu.Unlock()
	var transient, poison int64 = -1, -1
	for first := range runs {
		switch {
		case first <= 2 && 2 < first+5:
			transient = first
		case first <= 7 && 7 < first+5:
			poison = first
		}
	}
	if transient < 0 || poison < 0 || transient == poison {
		t.Fatalf("batches %v: offsets 2 and 7 are not in two batches", runs)
	}
	if got := runs[transient]; !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("the batch with offset 2 ran with attempts %v, want [1 2 3]", got)
	}
	if got := runs[poison]; !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("the batch with offset 7 ran with attempts %v, want [1 2 3]", got)
	}
	p.mu.Lock()
	parked := slices.Clone(p.parked)
	p.mu.Unlock()
	var want []string // the poison batch's records in offset order (keyed(1, 15): k000:<offset>)
	for off := poison; off < 15 && !slices.Contains(done, off); off++ {
		want = append(want, string(value("k000", int(off))))
	}
	if !slices.Equal(parked, want) {
		t.Errorf("parked %v, want the poison batch's records %v in order", parked, want)
	}
	if len(done)+len(parked) != 15 || len(reported) != 0 {
		t.Errorf("%d records handled and %d parked of 15, %d failures reported; want all 15 and none", len(done), len(parked), len(reported))
	}
	if err := run.shutdown(t); err != nil {
		t.Fatal(err)
	}
}

func TestNewBatchRefusesBadOptions(t *testing.T) {
	t.Parallel()
	base := consume.KgoOpts(kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"))
	_, err := consume.NewBatch(nil, base, consume.BatchSize(0), consume.Concurrency(0))
	if !errors.Is(err, consume.ErrInvalidOption) || !strings.Contains(err.Error(), "BatchSize must be >= 1, got 0") {
		t.Errorf("NewBatch(BatchSize(0)) = %v, want ErrInvalidOption naming BatchSize", err)
	}
	_, err = consume.NewBatch(nil, base)
	if !errors.Is(err, consume.ErrInvalidOption) || !strings.Contains(err.Error(), "handler is nil") {
		t.Errorf("NewBatch(nil) = %v, want ErrInvalidOption naming the handler", err)
	}
	c, err := consume.NewBatch(func(context.Context, []*kgo.Record) error { return nil }, base, consume.BatchSize(10))
	if err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	c.Close()
}
