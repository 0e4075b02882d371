package retry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/retry"
)

// A marker whose handler is stuck past the shutdown timeout when its
// partition is revoked must not cost the commit of the markers finished
// below it: the revoking Job commits them, so the partition's next owner
// does not run them again.
func TestRevokeCommitsFinishedMarkersBelowAStuckOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "stuckrevoke", 2)
	ctx := context.Background()
	p, err := retry.NewParker(e.cl, retry.RetryBackoff(fastBackoff))
	if err != nil {
		t.Fatal(err)
	}
	const keys = 8
	for n, prefix := range []string{"ok", "stuck"} { // every key's "ok" marker lies below its "stuck" one
		for i := 0; i < keys; i++ {
			r := e.original(n*keys+i, fmt.Sprint("k", i))
			r.Value = []byte(fmt.Sprint(prefix, i))
			if err := p.Park(ctx, r, errors.New("failed")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// firstStuck is, per retry partition, the offset of its first "stuck" marker.
	firstStuck := map[int32]int64{}
	stuckIn := map[int32]int{}
	for _, r := range readAll(t, e.c, e.topic+retry.RetrySuffix) {
		if strings.HasPrefix(string(r.Value), "stuck") {
			if o, ok := firstStuck[r.Partition]; !ok || r.Offset < o {
				firstStuck[r.Partition] = r.Offset
			}
			stuckIn[r.Partition]++
		}
	}
	if len(firstStuck) != 2 || firstStuck[0] == 0 || firstStuck[1] == 0 {
		t.Fatalf("markers do not fill both retry partitions with ok below stuck: %v", firstStuck)
	}

	var mu sync.Mutex
	var running, succeeded int
	first, err := retry.NewJob(func(ctx context.Context, m *retry.Marker) error {
		if strings.HasPrefix(string(m.Value), "stuck") {
			mu.Lock()
			running++
			mu.Unlock()
			<-ctx.Done() // stuck until the Job's shutdown timeout cancels it
			return ctx.Err()
		}
		mu.Lock()
		succeeded++
		mu.Unlock()
		return nil
	}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.CommitInterval(time.Hour),
		retry.ShutdownTimeout(300*time.Millisecond), retry.Logger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	runJob(t, first)
	testkit.WaitFor(t, 20*time.Second, "the ok markers to succeed and the stuck ones to run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return succeeded == keys && running == keys
	})

	var ran2 []string
	second, err := retry.NewJob(func(_ context.Context, m *retry.Marker) error {
		mu.Lock()
		ran2 = append(ran2, string(m.Value))
		mu.Unlock()
		return nil
	}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.CommitInterval(time.Hour),
		retry.Logger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	runJob(t, second)
	// The second Job takes one partition over; it has run all of that
	// partition's stuck markers once it ran stuckIn[p] of them.
	testkit.WaitFor(t, 20*time.Second, "the second job to run a taken-over partition's stuck markers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, v := range ran2 {
			if strings.HasPrefix(v, "stuck") {
				n++
			}
		}
		return n > 0 && (n == stuckIn[0] || n == stuckIn[1])
	})

	adm, err := kgo.NewClient(kgo.SeedBrokers(e.c.Bootstrap()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	offs, err := kadm.NewClient(adm).FetchOffsets(ctx, retry.DefaultGroup(e.topic+retry.RetrySuffix))
	if err != nil {
		t.Fatal(err)
	}
	var committed []string
	offs.Each(func(o kadm.OffsetResponse) { committed = append(committed, fmt.Sprintf("%d@%d", o.Partition, o.At)) })
	mu.Lock()
	defer mu.Unlock()
	for _, v := range ran2 {
		if strings.HasPrefix(v, "ok") {
			t.Errorf("the second job ran %s again, finished before the revocation (committed: %v; first stuck: %v; second job ran %v)",
				v, committed, firstStuck, ran2)
		}
	}
}
