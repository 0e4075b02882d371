package consume_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// TestStuckKeyKeepsMemoryBoundedAndPausesFetching holds one key's first
// record while the other keys flow: the buffer never exceeds its bound,
// fetching is paused once it is full of the stuck key's records, and when
// the key is released everything is handled in order.
func TestStuckKeyKeepsMemoryBoundedAndPausesFetching(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group, maxBuffered = "stuck", "g-stuck", 20
	newTopic(t, c, topic, 1)
	const keys, perKey = 10, 40
	rs := produce(t, c, topic, keyed(keys, perKey))

	l := newLedger()
	release := make(chan struct{})
	handler := func(ctx context.Context, r *kgo.Record) error {
		exit := l.enter(t, r, string(r.Key))
		if string(r.Value) == "k000:0" {
			select {
			case <-release:
			case <-ctx.Done():
				exit(false)
				return ctx.Err()
			}
		}
		exit(true)
		return nil
	}
	run := start(t, handler, groupOpts(c, group, topic), consume.MaxBuffered(maxBuffered),
		consume.Concurrency(4), consume.CommitInterval(20*time.Millisecond))

	var maxHeld, sawPaused atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			st := run.c.Stats()
			held := int64(st.Queued + st.Running + st.Failed + st.Blocked)
			if held > maxHeld.Load() {
				maxHeld.Store(held)
			}
			if st.Paused > 0 {
				sawPaused.Store(1)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()

	// The buffer fills with k000's records (the stuck one and those behind
	// it): fetching pauses, and stays paused while more than half of the
	// buffer is held. Every other key's records fetched meanwhile are done.
	var st consume.Stats
	testkit.WaitFor(t, 20*time.Second, "the buffer to hold only the stuck key, paused", func() bool {
		st = run.c.Stats()
		return st.Running == 1 && st.Queues == 1 && st.Paused == 1 && st.Queued+1 > maxBuffered/2
	})
	time.Sleep(100 * time.Millisecond)
	if again := run.c.Stats(); again.Queued != st.Queued || again.Processed != st.Processed {
		t.Errorf("stats moved while the key was stuck and fetching paused: %+v then %+v", st, again)
	}
	flowed := l.doneCount()
	// k000:0..Queued are fetched, so every round of keys before the last
	// of them was fetched too, and its other keys' records handled.
	if want := st.Queued * (keys - 1); flowed < want {
		t.Errorf("only %d records of other keys handled while k000 was stuck, want at least %d", flowed, want)
	}
	if flowed >= len(rs)-perKey {
		t.Errorf("%d records handled while stuck: the buffer did not bound fetching", flowed)
	}

	close(release)
	testkit.WaitFor(t, 20*time.Second, "every record", func() bool { return l.doneCount() == len(rs) })
	close(stopSampling)
	<-sampled
	if got := maxHeld.Load(); got > maxBuffered {
		t.Errorf("the buffer held %d records, bound %d", got, maxBuffered)
	}
	if sawPaused.Load() == 0 {
		t.Error("fetching was never paused")
	}
	// The poll loop resumes fetching on its next turn after the last
	// handler returned, not at the same instant.
	testkit.WaitFor(t, 20*time.Second, "fetching to resume once the buffer drained", func() bool { return run.c.Stats().Paused == 0 })
	if err := run.shutdown(t); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, seqs := range l.order {
		for i, s := range seqs {
			if s != i {
				t.Fatalf("key %s ran %v", key, seqs)
			}
		}
	}
}

// TestSaramaStuckKeyKeepsMemoryBounded: with sarama the claim stops
// reading its Messages channel while the buffer is full.
func TestSaramaStuckKeyKeepsMemoryBounded(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group, maxBuffered = "sarama-stuck", "g-sarama-stuck", 20
	newTopic(t, c, topic, 1)
	const keys, perKey = 10, 40
	rs := produce(t, c, topic, keyed(keys, perKey))

	l := newLedger()
	release := make(chan struct{})
	handler := func(ctx context.Context, r *kgo.Record) error {
		exit := l.enter(t, r, string(r.Key))
		if string(r.Value) == "k000:0" {
			<-release
		}
		exit(true)
		return nil
	}
	run := startSarama(t, c, group, topic, handler, consume.MaxBuffered(maxBuffered), consume.Concurrency(4))
	testkit.WaitFor(t, 20*time.Second, "the buffer to fill with the stuck key", func() bool {
		st := run.h.Stats()
		return st.Running == 1 && st.Queued == maxBuffered-1 && st.Paused == 1
	})
	time.Sleep(100 * time.Millisecond)
	st := run.h.Stats()
	if held := st.Queued + st.Running + st.Failed + st.Blocked; held != maxBuffered {
		t.Errorf("the buffer holds %d records, bound %d: %+v", held, maxBuffered, st)
	}
	if flowed, want := l.doneCount(), (maxBuffered-1)*(keys-1); flowed < want || flowed >= len(rs)-perKey {
		t.Errorf("%d records of other keys handled while k000 was stuck, want between %d and %d", flowed, want, len(rs)-perKey)
	}
	close(release)
	testkit.WaitFor(t, 20*time.Second, "every record", func() bool { return l.doneCount() == len(rs) })
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
}
