package retry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/retry"
)

func TestAlwaysFailingRecordsAreDeadLetteredAfterExactlyMaxAttemptsWithHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "pay", 2)
	ctx := context.Background()
	const n, maxAttempts = 12, 4
	p, err := retry.NewParker(e.cl, retry.RetryBackoff(fastBackoff), retry.MaxAttempts(maxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	fails := map[string]int{}
	for i := 0; i < n; i++ {
		r := e.original(i, fmt.Sprintf("k%d", i))
		fails[string(r.Value)] = 1 << 30
		if err := p.Park(ctx, r, errors.New("consumer failed")); err != nil {
			t.Fatal(err)
		}
	}
	h := newRecorder(fails)
	j, err := retry.NewJob(h.handle, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff),
		retry.MaxAttempts(maxAttempts), retry.CommitInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)
	testkit.WaitFor(t, 30*time.Second, "every record dead-lettered", func() bool { return j.Stats().DeadLettered == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	dl := readAll(t, e.c, e.topic+retry.DeadLetterSuffix)
	if len(dl) != n {
		t.Fatalf("%d dead letters, want %d", len(dl), n)
	}
	seen := map[int64]bool{}
	for _, r := range dl {
		m, err := retry.ParseMarker(r)
		if err != nil {
			t.Fatalf("dead letter does not parse: %v", err)
		}
		i := m.Offset
		want := e.original(int(i), fmt.Sprintf("k%d", i))
		if m.Kind != retry.KindDeadLetter || m.Reason != retry.ReasonMaxAttempts {
			t.Errorf("%s: kind %q reason %q", m.Origin, m.Kind, m.Reason)
		}
		if m.Topic != e.topic || m.Partition != want.Partition || string(m.Key) != string(want.Key) ||
			string(m.Value) != string(want.Value) || !m.Timestamp.Equal(want.Timestamp) {
			t.Errorf("dead letter %+v does not carry the original record %+v", m.Record(), want)
		}
		if len(m.Headers) != 1 || m.Headers[0].Key != "trace" || string(m.Headers[0].Value) != fmt.Sprint(i) {
			t.Errorf("%s: original headers %v", m.Origin, m.Headers)
		}
		if m.Attempts != maxAttempts || len(m.History) != maxAttempts {
			t.Errorf("%s: dead-lettered after %d attempts with %d history entries, want %d", m.Origin, m.Attempts, len(m.History), maxAttempts)
		}
		for k, a := range m.History {
			wantErr := fmt.Sprintf("attempt %d of %s fails", k+1, want.Value)
			if k == 0 {
				wantErr = "consumer failed"
			}
			if a.Attempt != k+1 || a.Error != wantErr || a.At.IsZero() {
				t.Errorf("%s: history[%d] = %+v, want attempt %d error %q", m.Origin, k, a, k+1, wantErr)
			}
		}
		seen[i] = true
		if runs := len(h.runs[string(want.Value)]); runs != maxAttempts-1 {
			t.Errorf("%s: the job ran it %d times, want %d", m.Origin, runs, maxAttempts-1)
		}
	}
	if len(seen) != n {
		t.Errorf("dead letters cover %d records, want %d", len(seen), n)
	}
}

func TestPermanentErrorsGoStraightToTheDeadLetterTopic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "perm", 1)
	ctx := context.Background()
	p, err := retry.NewParker(e.cl, retry.RetryBackoff(fastBackoff), retry.MaxAttempts(10))
	if err != nil {
		t.Fatal(err)
	}
	// Permanent in the consumer: no marker at all.
	if err := p.Park(ctx, e.original(0, "a"), retry.Permanent(errors.New("bad schema"))); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, e.c, e.topic+retry.RetrySuffix); len(got) != 0 {
		t.Fatalf("a permanent consumer error wrote %d markers", len(got))
	}
	// Permanent in the job on its first run.
	if err := p.Park(ctx, e.original(1, "b"), errors.New("timeout")); err != nil {
		t.Fatal(err)
	}
	j, err := retry.NewJob(func(context.Context, *retry.Marker) error {
		return fmt.Errorf("wrapped: %w", retry.Permanent(errors.New("unknown customer")))
	}, retry.Topic(e.topic), e.clientOpts(), retry.RetryBackoff(fastBackoff), retry.MaxAttempts(10))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)
	testkit.WaitFor(t, 20*time.Second, "the dead letter", func() bool { return j.Stats().DeadLettered == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	dl := readAll(t, e.c, e.topic+retry.DeadLetterSuffix)
	want := map[int64]struct {
		attempts int
		err      string
	}{0: {1, "bad schema"}, 1: {2, "wrapped: unknown customer"}}
	if len(dl) != len(want) {
		t.Fatalf("%d dead letters, want %d", len(dl), len(want))
	}
	for _, r := range dl {
		m, err := retry.ParseMarker(r)
		if err != nil {
			t.Fatal(err)
		}
		w := want[m.Offset]
		if m.Reason != retry.ReasonPermanent || m.Attempts != w.attempts || m.LastError() != w.err {
			t.Errorf("%s: reason %q attempts %d last error %q, want permanent, %d, %q", m.Origin, m.Reason, m.Attempts, m.LastError(), w.attempts, w.err)
		}
	}
}

func TestMalformedMarkerIsDeadLetteredNotDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "junk", 1)
	ctx := context.Background()
	bad := &kgo.Record{Topic: e.topic + retry.RetrySuffix, Key: []byte("k"), Value: []byte("not a marker"),
		Headers: []kgo.RecordHeader{{Key: retry.HeaderKind, Value: []byte("marker")}, {Key: retry.HeaderTopic, Value: []byte("junk")}}}
	if err := e.cl.ProduceSync(ctx, bad).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{}, 1)
	j, err := retry.NewJob(func(context.Context, *retry.Marker) error { ran <- struct{}{}; return nil },
		retry.Topic(e.topic), e.clientOpts(), retry.CommitInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)
	testkit.WaitFor(t, 20*time.Second, "the dead letter", func() bool { return j.Stats().DeadLettered == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
		t.Fatal("the handler ran a malformed marker")
	default:
	}
	dl := readAll(t, e.c, e.topic+retry.DeadLetterSuffix)
	if len(dl) != 1 || string(dl[0].Value) != "not a marker" {
		t.Fatalf("dead letters %v, want the malformed record", dl)
	}
	var reason, source string
	for _, h := range dl[0].Headers {
		switch h.Key {
		case retry.HeaderReason:
			reason = string(h.Value)
		case retry.HeaderSource:
			source = string(h.Value)
		}
	}
	if !strings.HasPrefix(reason, retry.ReasonInvalidMarker) || source != "junk.retry/0@0" {
		t.Errorf("reason %q source %q", reason, source)
	}
}

func TestParkerRefusesAClientThatDoesNotWaitForAllReplicas(t *testing.T) {
	t.Parallel()
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := retry.NewParker(cl); !errors.Is(err, retry.ErrUnsafeClient) {
		t.Fatalf("NewParker with acks=1: %v, want ErrUnsafeClient", err)
	}
}
