package ordering

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testTimeout bounds waits that only end if the code under test works; it
// is a deadlock guard, not a speed expectation.
const testTimeout = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func msg(tp TopicPartition, off int64, key string) Message[string] {
	return Message[string]{Topic: tp.Topic, Partition: tp.Partition, Offset: off, Key: []byte(key), Value: key}
}

func newDispatcher(t *testing.T, h Handler[string], opts ...Opt) *Dispatcher[string] {
	t.Helper()
	return newFailureDispatcher(t, h, nil, opts...)
}

func newFailureDispatcher(t *testing.T, h Handler[string], onFailure func(Failure[string]), opts ...Opt) *Dispatcher[string] {
	t.Helper()
	d, err := NewWithFailureFunc(h, onFailure, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func assign(t *testing.T, d *Dispatcher[string], tps ...TopicPartition) {
	t.Helper()
	for _, tp := range tps {
		if err := d.Assign(tp, Checkpoint{}); err != nil {
			t.Fatal(err)
		}
	}
}

// concurrencyMeter records the highest number of handlers running at once.
type concurrencyMeter struct {
	now, max atomic.Int64
}

func (c *concurrencyMeter) enter() {
	n := c.now.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (c *concurrencyMeter) exit() { c.now.Add(-1) }

func TestOrderIsKeptUnderRandomLatency(t *testing.T) {
	t.Parallel()
	tps := []TopicPartition{{"t", 0}, {"t", 1}, {"u", 0}}
	tests := []struct {
		mode Mode
		// group names the sequence a record must keep its place in ("" for none).
		group func(m Message[string]) string
	}{
		{KeyOrder, func(m Message[string]) string { return m.TopicPartition().String() + "|" + string(m.Key) }},
		{PartitionOrder, func(m Message[string]) string { return m.TopicPartition().String() }},
		{Unordered, func(Message[string]) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			var (
				mu      sync.Mutex
				seen    = map[string][]int64{}
				running = map[string]bool{}
				ran     = map[TopicPartition]map[int64]int{}
				overlap error
			)
			var seq atomic.Uint64
			h := func(_ context.Context, m Message[string]) error {
				g := tt.group(m)
				mu.Lock()
				if g != "" {
					if running[g] && overlap == nil {
						overlap = fmt.Errorf("two records of %q ran at once", g)
					}
					running[g] = true
					seen[g] = append(seen[g], m.Offset)
				}
				if ran[m.TopicPartition()] == nil {
					ran[m.TopicPartition()] = map[int64]int{}
				}
				ran[m.TopicPartition()][m.Offset]++
				mu.Unlock()
				rng := rand.New(rand.NewPCG(seq.Add(1), 0))
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
				mu.Lock()
				running[g] = false
				mu.Unlock()
				return nil
			}
			d := newDispatcher(t, h, OrderBy(tt.mode), Concurrency(16), MaxBuffered(256))
			assign(t, d, tps...)

			ctx := testCtx(t)
			rng := rand.New(rand.NewPCG(1, 2))
			want := map[string][]int64{}
			next := map[TopicPartition]int64{}
			const n = 3000
			for range n {
				tp := tps[rng.IntN(len(tps))]
				next[tp] += int64(1 + rng.IntN(2)) // some gaps
				m := msg(tp, next[tp], fmt.Sprintf("k%d", rng.IntN(50)))
				if g := tt.group(m); g != "" {
					want[g] = append(want[g], m.Offset)
				}
				if err := d.Submit(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if overlap != nil {
				t.Fatal(overlap)
			}
			for g, offs := range want {
				if fmt.Sprint(seen[g]) != fmt.Sprint(offs) {
					t.Fatalf("%s ran in order %v, want %v", g, seen[g], offs)
				}
			}
			total := 0
			for tp, offs := range ran {
				for off, times := range offs {
					if times != 1 {
						t.Fatalf("%s offset %d ran %d times", tp, off, times)
					}
					total++
				}
			}
			if total != n {
				t.Fatalf("%d records ran, want %d", total, n)
			}
			for _, tp := range tps {
				cp, err := d.Checkpoint(tp)
				if err != nil {
					t.Fatal(err)
				}
				if cp.Offset != next[tp]+1 || cp.Metadata != "" {
					t.Errorf("%s checkpoint %+v, want offset %d and no metadata", tp, cp, next[tp]+1)
				}
			}
			if s := d.Stats(); s.Queues != 0 || s.Queued != 0 || s.Running != 0 || s.Processed != n {
				t.Errorf("stats after drain %+v: want no queue left and %d processed", s, n)
			}
		})
	}
}

// TestConcurrencyReachesTheLimit makes handlers wait for each other: with
// enough independent records, all workers must be busy at once; with records
// that must run in sequence, never more than one.
func TestConcurrencyReachesTheLimit(t *testing.T) {
	t.Parallel()
	const limit = 8
	tests := []struct {
		name    string
		mode    Mode
		keys    int
		records int
		want    int64
	}{
		{"many keys in KeyOrder", KeyOrder, 100, 400, limit},
		{"Unordered", Unordered, 1, 400, limit},
		{"one key in KeyOrder", KeyOrder, 1, 200, 1},
		{"one partition in PartitionOrder", PartitionOrder, 100, 200, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var meter concurrencyMeter
			full := make(chan struct{})
			var once sync.Once
			h := func(ctx context.Context, _ Message[string]) error {
				meter.enter()
				defer meter.exit()
				if meter.now.Load() >= limit {
					once.Do(func() { close(full) })
				}
				if tt.want == limit {
					// Hold every record until all workers are busy at once.
					select {
					case <-full:
					case <-ctx.Done():
						return ctx.Err()
					}
				} else {
					time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
				}
				return nil
			}
			d := newDispatcher(t, h, OrderBy(tt.mode), Concurrency(limit), MaxBuffered(1000))
			tp := TopicPartition{"t", 0}
			assign(t, d, tp)
			ctx := testCtx(t)
			for i := range tt.records {
				if err := d.Submit(ctx, msg(tp, int64(i), fmt.Sprint(i%tt.keys))); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.Drain(ctx); err != nil {
				t.Fatalf("%v (max concurrency seen %d)", err, meter.max.Load())
			}
			if got := meter.max.Load(); got != tt.want {
				t.Errorf("max concurrency %d, want %d", got, tt.want)
			}
		})
	}
}

// TestSubmitBlocksWhenOneStuckKeyFillsTheBuffer: a stuck key holds its
// records; other keys keep completing until the stuck key's records fill
// the buffer, then Submit blocks until the key moves again.
func TestSubmitBlocksWhenOneStuckKeyFillsTheBuffer(t *testing.T) {
	t.Parallel()
	const bound = 5
	release := make(chan struct{})
	var (
		mu       sync.Mutex
		stuckRan []int64
		others   sync.WaitGroup
	)
	h := func(ctx context.Context, m Message[string]) error {
		if string(m.Key) != "stuck" {
			others.Done()
			return nil
		}
		mu.Lock()
		stuckRan = append(stuckRan, m.Offset)
		mu.Unlock()
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d := newDispatcher(t, h, OrderBy(KeyOrder), Concurrency(2), MaxBuffered(bound))
	tp := TopicPartition{"t", 0}
	assign(t, d, tp)
	ctx := testCtx(t)

	var stuck []int64
	off := int64(0)
	for len(stuck) < bound {
		key := "stuck"
		if off%3 != 0 {
			key = fmt.Sprint("other", off)
			others.Add(1)
		} else {
			stuck = append(stuck, off)
		}
		if err := d.Submit(ctx, msg(tp, off, key)); err != nil {
			t.Fatalf("submit %d: %v", off, err)
		}
		off++
	}
	others.Wait() // every other key completed although the buffer was nearly full

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := d.Submit(short, msg(tp, off, "fresh"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit with the buffer full of a stuck key: err = %v, want DeadlineExceeded", err)
	}
	if s := d.Stats(); s.Queued+s.Running != bound {
		t.Fatalf("stats %+v, want %d records held", s, bound)
	}

	close(release)
	others.Add(1)
	if err := d.Submit(ctx, msg(tp, off, "fresh")); err != nil {
		t.Fatalf("Submit after the key moved: %v", err)
	}
	if err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(stuckRan) != fmt.Sprint(stuck) {
		t.Errorf("stuck key ran %v, want %v", stuckRan, stuck)
	}
	if cp, _ := d.Checkpoint(tp); cp.Offset != off+1 {
		t.Errorf("checkpoint %d, want %d", cp.Offset, off+1)
	}
}

// failingHandler fails the first run of every record whose key is "bad" and
// records the order of successful runs per key.
type failingHandler struct {
	mu    sync.Mutex
	tries map[string]int
	order map[string][]int64
}

func newFailingHandler() *failingHandler {
	return &failingHandler{tries: map[string]int{}, order: map[string][]int64{}}
}

var errBad = errors.New("bad record")

func (f *failingHandler) handle(_ context.Context, m Message[string]) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprint(m.TopicPartition(), "@", m.Offset)
	f.tries[id]++
	if string(m.Key) == "bad" && f.tries[id] == 1 {
		return fmt.Errorf("offset %d: %w", m.Offset, errBad)
	}
	f.order[string(m.Key)] = append(f.order[string(m.Key)], m.Offset)
	return nil
}

func (f *failingHandler) ran(key string) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.order[key]...)
}

func TestFailureBlocksOnlyWhatTheModeOrdersBehindIt(t *testing.T) {
	t.Parallel()
	tp0, tp1 := TopicPartition{"t", 0}, TopicPartition{"t", 1}
	tests := []struct {
		mode    Mode
		resolve bool // Resolve (skip, handed over elsewhere) rather than Retry
		// wantGood is how many of the 10 "good" records on tp0 run while the failure is pending.
		wantGood int
	}{
		{KeyOrder, true, 10},
		{KeyOrder, false, 10},
		{PartitionOrder, true, 0},
		{PartitionOrder, false, 0},
		{Unordered, true, 10},
		{Unordered, false, 10},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/resolve=%v", tt.mode, tt.resolve), func(t *testing.T) {
			fh := newFailingHandler()
			failures := make(chan Failure[string], 10)
			d := newFailureDispatcher(t, fh.handle, func(f Failure[string]) { failures <- f }, OrderBy(tt.mode), Concurrency(4))
			assign(t, d, tp0, tp1)
			ctx := testCtx(t)

			// tp0: offset 0 is "bad" (fails once), then 1..10 good, 11 "bad" again.
			if err := d.Submit(ctx, msg(tp0, 0, "bad")); err != nil {
				t.Fatal(err)
			}
			var f Failure[string]
			select {
			case f = <-failures:
			case <-ctx.Done():
				t.Fatal("no failure reported")
			}
			if !errors.Is(f.Err, errBad) || f.Message.Offset != 0 || f.Attempts != 1 {
				t.Fatalf("failure %+v", f)
			}
			for i := int64(1); i <= 10; i++ {
				if err := d.Submit(ctx, msg(tp0, i, "good")); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.Submit(ctx, msg(tp0, 11, "bad")); err != nil {
				t.Fatal(err)
			}
			// Another partition is never held up.
			if err := d.Submit(ctx, msg(tp1, 0, "bad")); err != nil {
				t.Fatal(err)
			}
			// tp1's own failure (in Unordered, tp0's offset 11 fails too).
			for tp1Failed := false; !tp1Failed; {
				select {
				case f := <-failures:
					tp1Failed = f.Message.TopicPartition() == tp1
				case <-ctx.Done():
					t.Fatal("tp1 failure not reported")
				}
			}
			if err := d.Resolve(tp1, 0); err != nil {
				t.Fatal(err)
			}
			if err := d.Drain(ctx); err != nil {
				t.Fatal(err)
			}

			if got := len(fh.ran("good")); got != tt.wantGood {
				t.Fatalf("%d good records ran while the failure was pending, want %d", got, tt.wantGood)
			}
			if got := fh.ran("bad"); len(got) != 0 && tt.mode != Unordered {
				t.Fatalf("records behind the failure ran: %v", got)
			}
			if fs := d.Failures(); len(fs) == 0 || fs[0].Message.Offset != 0 || !errors.Is(fs[0].Err, errBad) {
				t.Fatalf("Failures() = %+v, want offset 0 first", fs)
			}
			if cp, _ := d.Checkpoint(tp0); cp.Offset != 0 {
				t.Fatalf("checkpoint passed the failed record: %+v", cp)
			}
			if cp, _ := d.Checkpoint(tp1); cp.Offset != 1 {
				t.Fatalf("tp1 checkpoint %+v, want 1", cp)
			}

			if tt.resolve {
				err := d.Resolve(tp0, 0)
				if err != nil {
					t.Fatal(err)
				}
			} else if err := d.Retry(tp0, 0); err != nil {
				t.Fatal(err)
			}
			// In Unordered, offset 11 failed on its own; deal with it the same way.
			for {
				if err := d.Drain(ctx); err != nil {
					t.Fatal(err)
				}
				fs := d.Failures()
				if len(fs) == 0 {
					break
				}
				for _, f := range fs {
					if err := d.Retry(tp0, f.Message.Offset); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := d.Resolve(tp0, 0); !errors.Is(err, ErrNotFailed) {
				t.Errorf("second Resolve: err = %v, want ErrNotFailed", err)
			}
			wantBad := "[0 11]"
			if tt.resolve {
				wantBad = "[11]"
			}
			if got := fmt.Sprint(fh.ran("bad")); got != wantBad && tt.mode != Unordered {
				t.Errorf("bad key ran %s, want %s", got, wantBad)
			}
			if got := len(fh.ran("good")); got != 10 {
				t.Errorf("%d good records ran in the end, want 10", got)
			}
			if cp, _ := d.Checkpoint(tp0); cp.Offset != 12 {
				t.Errorf("final checkpoint %+v, want 12", cp)
			}
		})
	}
}

func TestHandlerPanicBecomesAFailure(t *testing.T) {
	t.Parallel()
	failures := make(chan Failure[string], 1)
	d := newFailureDispatcher(t, func(context.Context, Message[string]) error { panic(errBad) },
		func(f Failure[string]) { failures <- f })
	tp := TopicPartition{"t", 0}
	assign(t, d, tp)
	if err := d.Submit(testCtx(t), msg(tp, 0, "k")); err != nil {
		t.Fatal(err)
	}
	var f Failure[string]
	select {
	case f = <-failures:
	case <-time.After(testTimeout):
		t.Fatal("no failure reported")
	}
	var pe *PanicError
	if !errors.As(f.Err, &pe) || !errors.Is(f.Err, errBad) || len(pe.Stack) == 0 {
		t.Fatalf("failure err = %v, want a PanicError wrapping errBad", f.Err)
	}
	if cp, _ := d.Checkpoint(tp); cp.Offset != 0 {
		t.Errorf("checkpoint %+v passed a panicking record", cp)
	}
}

// gate is a handler that blocks records with key "slow" until released.
type gate struct {
	release  chan struct{}
	started  chan int64
	released atomic.Bool
}

func newGate() *gate { return &gate{release: make(chan struct{}), started: make(chan int64, 100)} }

func (g *gate) handle(ctx context.Context, m Message[string]) error {
	if string(m.Key) != "slow" {
		return nil
	}
	g.started <- m.Offset
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) open() {
	g.released.Store(true)
	close(g.release)
}

func TestRevokeWaitsForRunningRecordsAndReportsTheFinalCheckpoint(t *testing.T) {
	t.Parallel()
	g := newGate()
	d := newDispatcher(t, g.handle, OrderBy(KeyOrder), Concurrency(4))
	tp, other := TopicPartition{"t", 0}, TopicPartition{"t", 1}
	assign(t, d, tp, other)
	ctx := testCtx(t)

	// 0: slow (running at revoke), 1..3 fast, 4: slow (queued behind 0), 5: fast.
	for i, key := range []string{"slow", "a", "b", "c", "slow", "d"} {
		if err := d.Submit(ctx, msg(tp, int64(i), key)); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-g.started; got != 0 {
		t.Fatalf("offset %d started first", got)
	}
	// Wait for the fast ones: everything but 0 and 4 done.
	for {
		if s := d.Stats(); s.Processed == 4 {
			break
		}
		runtime.Gosched()
	}

	done := make(chan struct{})
	var (
		cp        Checkpoint
		revokeErr error
		early     bool
	)
	go func() {
		defer close(done)
		cp, revokeErr = d.Revoke(ctx, tp)
		early = !g.released.Load()
	}()
	// Revoke must stop new submissions at once, even while it waits.
	for d.Stats().Partitions != 1 {
		runtime.Gosched()
	}
	if err := d.Submit(ctx, msg(tp, 6, "e")); !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("Submit while Revoke waits: err = %v, want ErrNotAssigned", err)
	}
	g.open()
	<-done
	if revokeErr != nil {
		t.Fatal(revokeErr)
	}
	if early {
		t.Fatal("Revoke returned before the running record finished")
	}
	// 0 finished during the wait; 4 was dropped, never ran: commit 4 and name 5.
	if cp.Offset != 4 {
		t.Fatalf("checkpoint offset %d, want 4", cp.Offset)
	}
	set, err := DecodeMetadata(cp.Metadata)
	if err != nil || !set.Skip(5) || set.Len() != 1 {
		t.Fatalf("metadata %q decodes to %v (len %d), want {5}", cp.Metadata, err, set.Len())
	}
	select {
	case off := <-g.started:
		t.Fatalf("dropped record %d ran", off)
	default:
	}
	if _, err := d.Checkpoint(tp); !errors.Is(err, ErrNotAssigned) {
		t.Errorf("Checkpoint after Revoke: err = %v", err)
	}
	// The other partition is untouched and the partition can come back.
	if err := d.Submit(ctx, msg(other, 0, "x")); err != nil {
		t.Fatal(err)
	}
	if err := d.Assign(tp, cp); err != nil {
		t.Fatal(err)
	}
	if err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if s := d.Stats(); s.Queues != 0 || s.Queued != 0 || s.Failed != 0 {
		t.Errorf("stats after revoke %+v: records of the revoked partition still held", s)
	}
}

func TestRevokeGivesUpWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	g := newGate()
	d := newDispatcher(t, g.handle, Concurrency(2))
	tp := TopicPartition{"t", 0}
	assign(t, d, tp)
	ctx := testCtx(t)
	for i, key := range []string{"a", "slow", "b"} {
		if err := d.Submit(ctx, msg(tp, int64(i), key)); err != nil {
			t.Fatal(err)
		}
	}
	<-g.started
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	cp, err := d.Revoke(short, tp)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if cp.Offset > 1 {
		t.Fatalf("checkpoint %+v passes the record still running", cp)
	}
	if set, _ := DecodeMetadata(cp.Metadata); set.Skip(1) {
		t.Fatalf("metadata claims the running record done")
	}
	// The running handler saw its context cancelled and returned.
	if err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRestartSkipsRecordsThatCompletedAboveTheCommit runs a crash and
// restart: one key fails, the rest complete; the next session resumes from
// the checkpoint and runs only the records that had not completed.
func TestRestartSkipsRecordsThatCompletedAboveTheCommit(t *testing.T) {
	t.Parallel()
	tp := TopicPartition{"t", 0}
	const n = 100
	key := func(i int64) string { return fmt.Sprint("k", i%10) }
	ctx := testCtx(t)

	d1 := newDispatcher(t, func(_ context.Context, m Message[string]) error {
		if m.Value == "k3" {
			return errBad
		}
		return nil
	})
	assign(t, d1, tp)
	for i := range int64(n) {
		if err := d1.Submit(ctx, msg(tp, i, key(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := d1.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	cp, err := d1.Revoke(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}
	if cp.Offset != 3 {
		t.Fatalf("session 1 checkpoint %d, want 3 (the failed record)", cp.Offset)
	}

	var mu sync.Mutex
	var ran []int64
	d2 := newDispatcher(t, func(_ context.Context, m Message[string]) error {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, m.Offset)
		return nil
	})
	if err := d2.Assign(tp, cp); err != nil {
		t.Fatal(err)
	}
	for i := cp.Offset; i < n; i++ {
		if err := d2.Submit(ctx, msg(tp, i, key(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := d2.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []int64{3, 13, 23, 33, 43, 53, 63, 73, 83, 93}
	if fmt.Sprint(ran) != fmt.Sprint(want) {
		t.Fatalf("session 2 ran %v, want only the failed key %v", ran, want)
	}
	if s := d2.Stats(); s.Skipped != n-3-int64(len(want)) {
		t.Errorf("skipped %d, want %d", s.Skipped, n-3-len(want))
	}
	if cp2, _ := d2.Checkpoint(tp); cp2.Offset != n || cp2.Metadata != "" {
		t.Errorf("session 2 checkpoint %+v, want %d", cp2, n)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	t.Parallel()
	before := runtime.NumGoroutine()
	g := newGate()
	d, err := New(g.handle, Concurrency(32))
	if err != nil {
		t.Fatal(err)
	}
	tp := TopicPartition{"t", 0}
	assign(t, d, tp)
	ctx := testCtx(t)
	for i, key := range []string{"slow", "a", "slow", "b"} {
		if err := d.Submit(ctx, msg(tp, int64(i), key)); err != nil {
			t.Fatal(err)
		}
	}
	<-g.started
	// A Submit blocked on a full buffer is released by Close too.
	small, err := New(g.handle, MaxBuffered(1))
	if err != nil {
		t.Fatal(err)
	}
	assign(t, small, tp)
	if err := small.Submit(ctx, msg(tp, 0, "slow")); err != nil {
		t.Fatal(err)
	}
	<-g.started
	blocked := make(chan error)
	go func() { blocked <- small.Submit(ctx, msg(tp, 1, "x")) }()

	if err := d.Close(); err != nil { // cancels the slow handler
		t.Fatal(err)
	}
	if err := small.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; !errors.Is(err, ErrClosed) {
		t.Errorf("blocked Submit: err = %v, want ErrClosed", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := d.Submit(ctx, msg(tp, 9, "a")); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close: err = %v, want ErrClosed", err)
	}
	if cp, err := d.Checkpoint(tp); err != nil || cp.Offset != 0 {
		t.Errorf("Checkpoint after Close = %+v, %v; want offset 0", cp, err)
	}
	deadline := time.Now().Add(testTimeout)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

func TestDispatcherRejectsMisuse(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, func(context.Context, Message[string]) error { return nil })
	tp := TopicPartition{"t", 0}
	ctx := testCtx(t)
	if err := d.Submit(ctx, msg(tp, 0, "a")); !errors.Is(err, ErrNotAssigned) {
		t.Errorf("Submit to an unassigned partition: err = %v", err)
	}
	if err := d.Assign(tp, Checkpoint{Offset: 10}); err != nil {
		t.Fatal(err)
	}
	if err := d.Assign(tp, Checkpoint{Offset: 10}); !errors.Is(err, ErrAssigned) {
		t.Errorf("second Assign: err = %v", err)
	}
	if err := d.Submit(ctx, msg(tp, 9, "a")); !errors.Is(err, ErrOffsetOrder) {
		t.Errorf("Submit below the assigned offset: err = %v", err)
	}
	if err := d.Submit(ctx, msg(tp, 10, "a")); err != nil {
		t.Fatal(err)
	}
	if err := d.Submit(ctx, msg(tp, 10, "a")); !errors.Is(err, ErrOffsetOrder) {
		t.Errorf("Submit of a repeated offset: err = %v", err)
	}
	if err := d.Retry(tp, 10); !errors.Is(err, ErrNotFailed) {
		t.Errorf("Retry of a record that did not fail: err = %v", err)
	}
	if _, err := d.Revoke(ctx, TopicPartition{"t", 1}); !errors.Is(err, ErrNotAssigned) {
		t.Errorf("Revoke of an unassigned partition: err = %v", err)
	}
	if err := d.Assign(TopicPartition{"t", 2}, Checkpoint{Offset: 3, Metadata: "junk"}); !errors.Is(err, ErrInvalidMetadata) {
		t.Errorf("Assign with junk metadata: err = %v", err)
	}
	if err := d.Submit(ctx, msg(TopicPartition{"t", 2}, 3, "a")); err != nil {
		t.Errorf("partition assigned with junk metadata does not take records: %v", err)
	}
}

func TestNewReportsEveryInvalidOption(t *testing.T) {
	t.Parallel()
	_, err := New[string](nil, OrderBy(Mode(7)), Concurrency(0), MaxBuffered(-1), MetadataMaxBytes(-1))
	if !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("err = %v, want ErrInvalidOption", err)
	}
	for _, want := range []string{"OrderBy", "Concurrency", "MaxBuffered", "MetadataMaxBytes", "handler is nil"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if d, err := New(func(context.Context, Message[string]) error { return nil }); err != nil {
		t.Errorf("defaults: %v", err)
	} else {
		_ = d.Close()
	}
}

// TestSubmitWaitingForRoomAcrossRevokeAndReassignIsRefused submits a record
// that waits for buffer room while its partition is revoked and assigned
// again (a rebalance that gives the partition back to the same member, with
// the consumer's poll goroutine blocked in Submit). The record belongs to
// the revoked assignment: it must be refused, not slipped into the new one,
// where it would make the new assignment refuse the lower offsets it starts
// from and let the checkpoint pass records that never ran.
func TestSubmitWaitingForRoomAcrossRevokeAndReassignIsRefused(t *testing.T) {
	t.Parallel()
	release, running := make(chan struct{}), make(chan struct{})
	var (
		mu  sync.Mutex
		ran []int64
	)
	d := newDispatcher(t, func(_ context.Context, m Message[string]) error {
		if m.Value == "first" {
			close(running)
			<-release // ignores its context: it outlives the revocation
		}
		mu.Lock()
		ran = append(ran, m.Offset)
		mu.Unlock()
		return nil
	}, OrderBy(PartitionOrder), MaxBuffered(1), Concurrency(1))
	tp := TopicPartition{"t", 0}
	assign(t, d, tp)
	ctx := testCtx(t)
	if err := d.Submit(ctx, msg(tp, 0, "first")); err != nil {
		t.Fatal(err)
	}
	<-running // the revocation below waits for it
	// Offset 5 of the first assignment waits for the slot offset 0 holds.
	// Submit looks at its context only once it waits for room: when it
	// asks for Done, it has taken the first assignment's partition.
	wctx := &waitingCtx{Context: ctx, waiting: make(chan struct{})}
	blocked := make(chan error, 1)
	go func() { blocked <- d.Submit(wctx, msg(tp, 5, "old")) }()
	select {
	case <-wctx.waiting:
	case err := <-blocked:
		t.Fatalf("Submit returned %v without waiting for room", err)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	cp, err := d.Revoke(short, tp)
	if !errors.Is(err, context.DeadlineExceeded) || cp.Offset != 0 {
		t.Fatalf("Revoke = %+v, %v; want offset 0 and DeadlineExceeded", cp, err)
	}
	// The partition comes back at its commit, and offset 0 frees the slot.
	if err := d.Assign(tp, cp); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-blocked; !errors.Is(err, ErrNotAssigned) {
		t.Errorf("Submit of the revoked assignment's record returned %v, want ErrNotAssigned", err)
	}

	// The new assignment reads the partition again from its commit.
	for i := cp.Offset; i < 6; i++ {
		if err := d.Submit(ctx, msg(tp, i, "new")); err != nil {
			t.Fatalf("new assignment, offset %d: %v", i, err)
		}
	}
	if err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Checkpoint(tp); got.Offset != 6 {
		t.Errorf("checkpoint %+v, want 6", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(ran) != "[0 0 1 2 3 4 5]" {
		t.Errorf("ran %v, want [0 0 1 2 3 4 5] (offset 0 of each assignment, then 1..5)", ran)
	}
}

// waitingCtx is a context that closes waiting the first time Done is
// called: a barrier for a goroutine about to block on it.
type waitingCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

// TestDroppedFiresWhenTheRecordsPartitionIsRevokedOrTheDispatcherCloses:
// a handler waiting on Dropped stops when its partition is revoked (and
// its record is not done), or when the Dispatcher closes; the records of
// other partitions are not disturbed; a context from elsewhere never fires.
func TestDroppedFiresWhenTheRecordsPartitionIsRevokedOrTheDispatcherCloses(t *testing.T) {
	t.Parallel()
	if Dropped(context.Background()) != nil {
		t.Fatal("Dropped of a context from outside a handler is not nil")
	}
	a, b := TopicPartition{Topic: "t", Partition: 0}, TopicPartition{Topic: "t", Partition: 1}
	waiting := make(chan TopicPartition, 2)
	stopped := make(chan TopicPartition, 2)
	d, err := New(func(ctx context.Context, m Message[string]) error {
		waiting <- m.TopicPartition()
		select {
		case <-Dropped(ctx):
			stopped <- m.TopicPartition()
			return errors.New("dropped")
		case <-time.After(testTimeout):
			return errors.New("never dropped")
		}
	}, Concurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []TopicPartition{a, b} {
		if err := d.Assign(tp, Checkpoint{Offset: 0}); err != nil {
			t.Fatal(err)
		}
		if err := d.Submit(testCtx(t), msg(tp, 0, "k")); err != nil {
			t.Fatal(err)
		}
	}
	<-waiting
	<-waiting
	cp, err := d.Revoke(testCtx(t), a)
	if err != nil || cp.Offset != 0 {
		t.Fatalf("Revoke = %+v, %v; want offset 0 (the record was not done) and no error", cp, err)
	}
	if got := <-stopped; got != a {
		t.Fatalf("%v stopped waiting on Revoke of %v", got, a)
	}
	select {
	case got := <-stopped:
		t.Fatalf("%v stopped waiting though only %v was revoked", got, a)
	default:
	}
	_ = d.Close()
	if got := <-stopped; got != b {
		t.Fatalf("%v stopped waiting on Close, want %v", got, b)
	}
}

// TestABatchMessageIsDoneAsAWhole: a message standing for offsets 5..9
// (Last) holds the checkpoint at 5 while it runs, moves it past 9 when
// done, is named whole in the metadata when done above a pending record,
// and is skipped after a restart only when the metadata covers all of it.
func TestABatchMessageIsDoneAsAWhole(t *testing.T) {
	t.Parallel()
	tp := TopicPartition{Topic: "t", Partition: 0}
	release := make(chan struct{})
	started := make(chan int64, 4)
	d, err := New(func(ctx context.Context, m Message[string]) error {
		started <- m.Offset
		if m.Offset == 5 {
			<-release
		}
		return nil
	}, OrderBy(Unordered), Concurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before Close, even on a failure
	if err := d.Assign(tp, Checkpoint{Offset: 5}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for _, m := range []Message[string]{{Topic: "t", Offset: 5, Last: 9}, {Topic: "t", Offset: 10, Last: 12}} {
		if err := d.Submit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	<-started
	waitCheckpoint := func(want int64) Checkpoint {
		t.Helper()
		for {
			cp, err := d.Checkpoint(tp)
			if err != nil {
				t.Fatal(err)
			}
			if cp.Offset == want {
				if s, _ := DecodeMetadata(cp.Metadata); want == 5 && s.Len() != 3 {
					continue // 10..12 not done yet
				}
				return cp
			}
			if ctx.Err() != nil {
				t.Fatalf("checkpoint %+v, want offset %d", cp, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	cp := waitCheckpoint(5)
	if s, _ := DecodeMetadata(cp.Metadata); !s.Skip(10) || !s.Skip(12) || s.Skip(9) {
		t.Fatalf("checkpoint %+v while 5..9 runs: want offset 5 naming 10..12 done", cp)
	}

	// A restart from that checkpoint skips a batch inside 10..12, and runs
	// one that straddles it.
	d2, err := New(func(ctx context.Context, m Message[string]) error { started <- m.Offset; return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Assign(tp, cp); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message[string]{{Topic: "t", Offset: 5, Last: 9}, {Topic: "t", Offset: 10, Last: 11}, {Topic: "t", Offset: 12, Last: 14}} {
		if err := d2.Submit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := d2.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	var ran []int64 // Drain returned: every batch that runs has run
	for len(started) > 0 {
		ran = append(ran, <-started)
	}
	slices.Sort(ran)
	if !slices.Equal(ran, []int64{5, 12}) {
		t.Fatalf("after the restart the batches at %v ran, want 5 and 12 (10..11 is inside the done 10..12)", ran)
	}
	if cp2, _ := d2.Checkpoint(tp); cp2.Offset != 15 {
		t.Fatalf("checkpoint %+v after every batch, want offset 15", cp2)
	}

	free()
	if cp := waitCheckpoint(13); cp.Metadata != "" {
		if s, _ := DecodeMetadata(cp.Metadata); s.Len() != 0 {
			t.Fatalf("checkpoint %+v once all is done, want offset 13 naming nothing", cp)
		}
	}
}
