package retry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/retry"
)

// deadLetter parks n records straight into the dead-letter topic (one
// attempt allowed), record i with key ki and error errs(i).
func (e *env) deadLetter(t *testing.T, n int, errs func(i int) string) {
	t.Helper()
	p, err := retry.NewParker(e.cl, retry.MaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := p.Park(context.Background(), e.original(i, fmt.Sprintf("k%d", i)), errors.New(errs(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) deadLetters(t *testing.T, opts ...retry.DeadLettersOpt) *retry.DeadLetters {
	t.Helper()
	d, err := retry.NewDeadLetters(append([]retry.DeadLettersOpt{retry.Topic(e.topic), retry.KgoOpts(kgo.SeedBrokers(e.c.Bootstrap()...))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestDeadLettersReadSelectsAndSummarizesByErrorAndAge(t *testing.T) {
	e := newEnv(t, "dl", 1)
	e.deadLetter(t, 6, func(i int) string {
		if i < 4 {
			return "db down"
		}
		return "bad json"
	})
	d := e.deadLetters(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all, err := d.Read(ctx, retry.Filter{})
	if err != nil || len(all) != 6 {
		t.Fatalf("Read = %d dead letters, %v; want 6", len(all), err)
	}
	groups := retry.Summarize(all, time.Now())
	if len(groups) != 2 || groups[0].Cause != "db down" || groups[0].Count != 4 || groups[0].ByAge[0] != 4 ||
		groups[1].Cause != "bad json" || groups[1].Count != 2 || groups[1].Oldest.After(groups[1].Newest) {
		t.Errorf("Summarize = %+v; want db down 4 then bad json 2, all under an hour old", groups)
	}
	for _, tt := range []struct {
		name string
		f    retry.Filter
		keys string
	}{
		{"error text", retry.Filter{ErrorContains: "json"}, "k4 k5"},
		{"key", retry.Filter{Key: []byte("k1")}, "k1"},
		{"offset range", retry.Filter{From: 2, Until: 4}, "k2 k3"},
		{"partition and error", retry.Filter{Partitions: []int32{0}, ErrorContains: "db", From: 3}, "k3"},
	} {
		got, err := d.Read(ctx, tt.f)
		var keys []string
		for _, dl := range got {
			keys = append(keys, string(dl.Marker.Key))
		}
		if err != nil || strings.Join(keys, " ") != tt.keys {
			t.Errorf("%s: Read = %v, %v; want %s", tt.name, keys, err, tt.keys)
		}
	}
	one, err := d.Get(ctx, 0, 5)
	if err != nil || one.Marker.Origin != (retry.Origin{Topic: "dl", Partition: 2, Offset: 5}) || one.Marker.Attempts != 1 ||
		len(one.Marker.History) != 1 || one.Cause() != "bad json" || one.Source() != "dl.dlq/0@5" {
		t.Errorf("Get(0, 5) = %+v, %v", one, err)
	}
	if _, err := d.Get(ctx, 0, 99); !errors.Is(err, retry.ErrNoSuchDeadLetter) {
		t.Errorf("Get(0, 99): %v, want ErrNoSuchDeadLetter", err)
	}
	if _, err := d.Read(ctx, retry.Filter{Partitions: []int32{7}}); !errors.Is(err, retry.ErrNoSuchDeadLetter) {
		t.Errorf("Read of partition 7: %v, want ErrNoSuchDeadLetter", err)
	}
}

func TestReplayTwiceWritesOnceAndDryRunWritesNothing(t *testing.T) {
	e := newEnv(t, "rp", 1)
	e.deadLetter(t, 3, func(int) string { return "downstream 503" })
	d := e.deadLetters(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dls, err := d.Read(ctx, retry.Filter{})
	if err != nil || len(dls) != 3 {
		t.Fatalf("Read = %d, %v", len(dls), err)
	}

	dry, err := d.Replay(ctx, dls, retry.ToSource, retry.DryRun())
	if err != nil || dry.Would != 3 || dry.Written != 0 {
		t.Fatalf("dry run: %+v, %v; want 3 that would be written", dry, err)
	}
	if got := readAll(t, e.c, "rp"); len(got) != 0 {
		t.Fatalf("the dry run wrote %d records", len(got))
	}

	var progress []int
	first, err := d.Replay(ctx, dls, retry.ToSource, retry.OnProgress(func(done, total int) { progress = append(progress, done) }))
	if err != nil || first.Written != 3 || first.AlreadyReplayed != 0 {
		t.Fatalf("first replay: %+v, %v; want 3 written", first, err)
	}
	if len(progress) == 0 || progress[len(progress)-1] != 3 {
		t.Errorf("progress %v, want it to end at 3", progress)
	}
	again, err := d.Replay(ctx, dls, retry.ToSource)
	if err != nil || again.Written != 0 || again.AlreadyReplayed != 3 {
		t.Fatalf("second replay: %+v, %v; want 3 already replayed", again, err)
	}
	for i, it := range again.Items {
		if it.Outcome != retry.AlreadyReplayed || it.Offset != first.Items[i].Offset || it.Partition != first.Items[i].Partition {
			t.Errorf("second replay of %s: %+v, want it found where the first wrote it (%+v)", it.From, it, first.Items[i])
		}
	}

	got := readAll(t, e.c, "rp")
	if len(got) != 3 {
		t.Fatalf("source topic holds %d records after two replays, want 3", len(got))
	}
	for _, r := range got {
		want := e.original(int(r.Value[1]-'0'), "k"+string(r.Value[1]))
		if string(r.Key) != string(want.Key) || len(r.Headers) != 2 || r.Headers[0].Key != "trace" || r.Headers[1].Key != retry.HeaderReplayedFrom {
			t.Errorf("replayed record %s=%s headers %v, want the original's and %s", r.Key, r.Value, r.Headers, retry.HeaderReplayedFrom)
		}
	}

	// Back to the retry topic: a fresh marker, once.
	for range 2 {
		rep, err := d.Replay(ctx, dls[:1], retry.ToRetry)
		if err != nil || rep.Written+rep.AlreadyReplayed != 1 {
			t.Fatalf("replay to retry: %+v, %v", rep, err)
		}
	}
	markers := readAll(t, e.c, "rp.retry")
	if len(markers) != 1 {
		t.Fatalf("%d markers on rp.retry after two replays, want 1", len(markers))
	}
	m, err := retry.ParseMarker(markers[0])
	if err != nil || m.Kind != retry.KindMarker || m.Attempts != 0 || m.Origin != dls[0].Marker.Origin || m.Due.IsZero() {
		t.Errorf("replayed marker %+v, %v; want a fresh marker of %v", m, err, dls[0].Marker.Origin)
	}
}

func TestReplayReadsADestinationThatEndsWithATransactionMarker(t *testing.T) {
	e := newEnv(t, "tx", 1)
	e.deadLetter(t, 1, func(int) string { return "boom" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The source topic's last offset of each partition is a commit marker,
	// which no fetch ever delivers.
	txn, err := kgo.NewClient(kgo.SeedBrokers(e.c.Bootstrap()...), kgo.TransactionalID("tx-writer"), kgo.DefaultProduceTopic("tx"))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		if err := txn.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("in a transaction")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	d := e.deadLetters(t)
	dls, err := d.Read(ctx, retry.Filter{})
	if err != nil || len(dls) != 1 {
		t.Fatalf("Read = %d, %v", len(dls), err)
	}
	for i, want := range []retry.ReplayOutcome{retry.Replayed, retry.AlreadyReplayed} {
		start := time.Now()
		rep, err := d.Replay(ctx, dls, retry.ToSource)
		if err != nil || rep.Items[0].Outcome != want {
			t.Fatalf("replay %d: %+v, %v; want %s", i+1, rep, err, want)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("replay %d took %v reading past the commit markers", i+1, took)
		}
	}
}
