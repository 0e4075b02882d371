package retry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/retry"
)

// A Parker is the consume package's retry path.
var (
	_ consume.Parker          = (*retry.Parker)(nil)
	_ consume.AssignmentAware = (*retry.Parker)(nil)
)

// sourceRecord is record i of the source topic: partition 0, offset i.
func sourceRecord(topic string, i int, key string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: 0, Offset: int64(i), Key: []byte(key), Value: []byte(fmt.Sprintf("%s:%d", key, i))}
}

// successLog records the order in which records finished, from the
// consumer and the job alike.
type successLog struct {
	mu   sync.Mutex
	done []*kgo.Record
}

func (l *successLog) add(r *kgo.Record) {
	l.mu.Lock()
	l.done = append(l.done, r)
	l.mu.Unlock()
}

func (l *successLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.done)
}

// keyOrderParker returns key locks following e's retry topic, built with
// lockOpts and closed when the test ends, and a Parker that keeps key order
// with them, with fast backoff and maxAttempts.
func keyOrderParker(t *testing.T, ctx context.Context, e *env, maxAttempts int, lockOpts ...retry.LocksOpt) (*retry.KeyLocks, *retry.Parker) {
	t.Helper()
	locks, err := retry.NewKeyLocks(ctx, append([]retry.LocksOpt{retry.Topic(e.topic), e.clientOpts()}, lockOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(locks.Close)
	p, err := retry.NewParker(e.cl, retry.KeyOrder(locks), retry.RetryBackoff(fastBackoff), retry.MaxAttempts(maxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	return locks, p
}
func TestKeyOrderNoRecordRunsBeforeAnEarlierParkedRecordOfItsKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "ko", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	locks, p := keyOrderParker(t, ctx, e, 10, retry.RefreshInterval(50*time.Millisecond))
	var log successLog
	jobRuns := map[string]int{}
	var runsMu sync.Mutex
	j, err := retry.NewJob(func(_ context.Context, m *retry.Marker) error {
		runsMu.Lock()
		jobRuns[string(m.Value)]++
		n := jobRuns[string(m.Value)]
		runsMu.Unlock()
		if m.Offset%4 == 0 && n <= 2 { // fails its first two job runs
			return errors.New("still failing")
		}
		log.add(m.Record())
		return nil
	}, retry.Topic(e.topic), e.clientOpts(), retry.KeyOrder(locks), retry.RetryBackoff(fastBackoff), retry.MaxAttempts(10),
		retry.Concurrency(8), retry.CommitInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)

	// The consumer: records of five keys in offset order, one at a time.
	// Every seventh record fails in the consumer.
	const n, keys = 60, 5
	handle := p.Wrap(func(_ context.Context, r *kgo.Record) error {
		if r.Offset%7 == 0 {
			return errors.New("consumer failed")
		}
		log.add(r)
		return nil
	})
	for i := 0; i < n; i++ {
		r := sourceRecord(e.topic, i, fmt.Sprintf("k%d", i%keys))
		if err := handle(ctx, r); err != nil {
			if err := p.Park(ctx, r, err); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * time.Millisecond)
	}
	testkit.WaitFor(t, 30*time.Second, "every record to finish", func() bool { return log.len() >= n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	log.mu.Lock()
	defer log.mu.Unlock()
	last := map[string]int64{}
	count := map[int64]int{}
	for _, r := range log.done {
		k := string(r.Key)
		if prev, ok := last[k]; ok && r.Offset <= prev {
			t.Errorf("key %s: offset %d finished after offset %d", k, r.Offset, prev)
		}
		last[k] = r.Offset
		count[r.Offset]++
	}
	for i := int64(0); i < n; i++ {
		if count[i] != 1 {
			t.Errorf("offset %d finished %d times, want once", i, count[i])
		}
	}
	if st := j.Stats(); st.Reparked == 0 || st.Succeeded == 0 {
		t.Errorf("the job never re-parked or succeeded (%+v): the test did not exercise the retry path", st)
	}
}

func TestKeyLocksAreRebuiltFromTheRetryTopicAfterARestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "kl", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := []retry.LocksOpt{retry.Topic(e.topic), e.clientOpts(), retry.RefreshInterval(50 * time.Millisecond)}
	locks, err := retry.NewKeyLocks(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := retry.NewParker(e.cl, retry.KeyOrder(locks), retry.RetryBackoff(fastBackoff))
	if err != nil {
		t.Fatal(err)
	}
	var ran []string
	handle := p.Wrap(func(_ context.Context, r *kgo.Record) error {
		ran = append(ran, string(r.Value))
		if r.Offset == 0 {
			return errors.New("fails")
		}
		return nil
	})
	for i, key := range []string{"a", "a", "b", "a"} {
		r := sourceRecord(e.topic, i, key)
		if err := handle(ctx, r); err != nil {
			if err := p.Park(ctx, r, err); err != nil {
				t.Fatal(err)
			}
		}
	}
	if want := []string{"a:0", "b:2"}; fmt.Sprint(ran) != fmt.Sprint(want) {
		t.Fatalf("the consumer ran %v, want %v: later records of a parked key must not run", ran, want)
	}
	locks.Close() // the consumer process stops

	again, err := retry.NewKeyLocks(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !again.Locked(e.topic, []byte("a")) || again.Locked(e.topic, []byte("b")) || again.LockedKeys() != 1 || again.Pending() != 3 {
		t.Fatalf("rebuilt locks: a locked %v, b locked %v, %d keys, %d pending; want a only, 3 pending",
			again.Locked(e.topic, []byte("a")), again.Locked(e.topic, []byte("b")), again.LockedKeys(), again.Pending())
	}

	var mu sync.Mutex
	var order []int64
	j, err := retry.NewJob(func(_ context.Context, m *retry.Marker) error {
		mu.Lock()
		order = append(order, m.Offset)
		mu.Unlock()
		return nil
	}, retry.Topic(e.topic), e.clientOpts(), retry.KeyOrder(again), retry.RetryBackoff(fastBackoff), retry.CommitInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)
	testkit.WaitFor(t, 20*time.Second, "key a to unlock", func() bool { return !again.Locked(e.topic, []byte("a")) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(order) != "[0 1 3]" {
		t.Errorf("the job ran offsets %v, want [0 1 3]", order)
	}
	third, err := retry.NewKeyLocks(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if third.LockedKeys() != 0 || third.Pending() != 0 {
		t.Errorf("after the job finished, rebuilt locks hold %d keys, %d pending", third.LockedKeys(), third.Pending())
	}
}

// TestKeyStaysLockedWhileItsReparkedMarkerIsUnread parks a record in a
// consumer process whose KeyLocks read the retry topic slowly (each fetch
// waits for data up to its 500ms deadline, as a lagging follower would),
// while a Job in another process fails the record a few times. Each failure
// writes a new marker and commits the old one's offset: that commit does
// not end the record, so the consumer's locks must keep its key locked
// until the record succeeds, and not read the commit as an unlock before
// they have read the marker that replaced the committed one.
func TestKeyStaysLockedWhileItsReparkedMarkerIsUnread(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "klslow", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	locks, p := keyOrderParker(t, ctx, e, 10, retry.KgoOpts(kgo.FetchMinBytes(1<<20)), retry.RefreshInterval(10*time.Millisecond))

	jobLocks, err := retry.NewKeyLocks(ctx, retry.Topic(e.topic), e.clientOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer jobLocks.Close()
	var runs atomic.Int32
	j, err := retry.NewJob(func(context.Context, *retry.Marker) error {
		if runs.Add(1) <= 3 {
			return errors.New("still failing")
		}
		return nil
	}, retry.Topic(e.topic), e.clientOpts(), retry.KeyOrder(jobLocks), retry.RetryBackoff(fastBackoff),
		retry.MaxAttempts(10), retry.CommitInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	key := []byte("a")
	if err := p.Park(ctx, e.original(0, "a"), errors.New("consumer failed")); err != nil {
		t.Fatal(err)
	}
	if !locks.Locked(e.topic, key) {
		t.Fatal("key a is not locked after its record was parked")
	}
	stop := runJob(t, j)
	deadline := time.Now().Add(20 * time.Second)
	for j.Stats().Succeeded == 0 {
		// Succeeded counts before the resolution is written, so a key
		// unlocked by the resolution is seen with Succeeded > 0.
		if !locks.Locked(e.topic, key) && j.Stats().Succeeded == 0 {
			t.Fatalf("key a unlocked while its record is still in the retry path (after %d job runs, %+v)",
				runs.Load(), j.Stats())
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job did not succeed (%+v)", j.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "key a to unlock after the record succeeded", func() bool { return !locks.Locked(e.topic, key) })
}

func TestWrapThatCannotReadTheKeyLocksParksTheRecordWithoutCountingAnAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "notrun", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	locks, p := keyOrderParker(t, ctx, e, 1)
	locks.Close() // the key locks cannot answer any more
	ran := false
	h := p.Wrap(func(context.Context, *kgo.Record) error { ran = true; return nil })
	r := e.original(0, "k")
	herr := h(ctx, r)
	if !errors.Is(herr, retry.ErrNotRun) || ran {
		t.Fatalf("wrapped handler = %v (handler ran: %v), want ErrNotRun without running it", herr, ran)
	}
	// The consumer parks what its handler returned. The record never ran:
	// with MaxAttempts(1) it must still get its one attempt, not a dead letter.
	if err := p.Park(ctx, r, herr); err != nil {
		t.Fatal(err)
	}
	if dl := readAll(t, e.c, e.topic+retry.DeadLetterSuffix); len(dl) != 0 {
		t.Fatalf("%d dead letters for a record that never ran", len(dl))
	}
	markers := readAll(t, e.c, e.topic+retry.RetrySuffix)
	if len(markers) != 1 {
		t.Fatalf("%d markers, want 1", len(markers))
	}
	m, err := retry.ParseMarker(markers[0])
	if err != nil {
		t.Fatal(err)
	}
	if m.Attempts != 0 || m.Offset != 0 {
		t.Fatalf("marker for offset %d with %d attempts, want offset 0 and 0 attempts", m.Offset, m.Attempts)
	}
}
