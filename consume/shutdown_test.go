package consume_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/ordering"
)

// TestShutdownDrainsAndCommitsWhatWasHandled stops a consumer mid-stream:
// the records it holds finish (or, past the drain timeout, are cancelled
// and reported), and the final commit covers exactly the handled records.
func TestShutdownDrainsAndCommitsWhatWasHandled(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	for _, tc := range []struct {
		name    string
		topic   string
		stuck   string // value of a record that never finishes by itself
		wantErr error
	}{
		{"drained", "shutdown-drained", "", nil},
		{"drain timeout", "shutdown-timeout", "k002:3", consume.ErrDrainTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := tc.topic, "g-"+tc.topic
			newTopic(t, c, topic, 1)
			rs := produce(t, c, topic, keyed(5, 100))

			l := newLedger()
			handler := func(ctx context.Context, r *kgo.Record) error {
				exit := l.enter(t, r, at(r))
				d := 2 * time.Millisecond
				if string(r.Value) == tc.stuck {
					d = time.Hour
				}
				select {
				case <-time.After(d):
					exit(true)
					return nil
				case <-ctx.Done():
					exit(false)
					return ctx.Err()
				}
			}
			run := start(t, handler, groupOpts(c, group, topic), consume.Concurrency(4),
				consume.MaxBuffered(200), consume.DrainTimeout(300*time.Millisecond),
				consume.CommitInterval(time.Hour)) // only the shutdown commits
			testkit.WaitFor(t, 20*time.Second, "part of the stream", func() bool { return l.doneCount() >= 50 })
			before, doneBefore := run.c.Stats(), l.doneCount()
			if err := run.shutdown(t); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Run returned %v, want %v", err, tc.wantErr)
			}

			o, ok := committed(t, c, group).Lookup(topic, 0)
			if !ok {
				t.Fatal("nothing committed on shutdown")
			}
			skips, err := ordering.DecodeMetadata(o.Metadata)
			if err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, r := range rs {
				claimed := r.Offset < o.At || skips.Skip(r.Offset)
				if done := l.done[at(r)] > 0; claimed != done {
					t.Errorf("record %s: handled %v, committed as done %v", r.Value, done, claimed)
				}
			}
			if tc.stuck == "" {
				if l.total != len(l.done) {
					t.Errorf("%d runs, %d completed: shutdown cancelled records instead of draining them", l.total, len(l.done))
				}
				if len(l.done) < doneBefore+before.Queued {
					t.Errorf("%d records done after shutdown, %d before with %d queued: the queue was not drained",
						len(l.done), doneBefore, before.Queued)
				}
			}
		})
	}
}
