// Command retry-job shows kafkaguard's retry path end to end against the
// bundled broker: a consumer whose handler fails some records parks them on
// the retry topic and moves on, and the retry Job runs them again after a
// backoff — in key order — until they succeed or, after MaxAttempts, land in
// the dead-letter topic.
//
//	go run ./examples/retry-job
//	go run ./examples/retry-job -records 200 -keys 10
//
// Record values are "key:sequence". The "payment service" fails every record
// whose sequence is 3 mod 7 twice before it succeeds, and always fails one
// poison record. The program prints what happens and checks at the end that
// every record was handled once, each key in order, and that only the poison
// record was dead-lettered.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/retry"
)

func main() {
	records := flag.Int("records", 40, "records to produce")
	keys := flag.Int("keys", 5, "distinct keys")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *records, *keys); err != nil {
		fmt.Fprintln(os.Stderr, "retry-job:", err)
		os.Exit(1)
	}
}

// service is the flaky downstream both the consumer and the job call.
type service struct {
	poison   string
	mu       sync.Mutex
	attempts map[string]int
	handled  []string // values, in the order they succeeded
	out      io.Writer
	who      string
}

func (s *service) handle(_ context.Context, r *kgo.Record) error {
	v := string(r.Value)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[v]++
	n := s.attempts[v]
	_, seqText, _ := strings.Cut(v, ":")
	seq, _ := strconv.Atoi(seqText)
	switch {
	case v == s.poison:
		return fmt.Errorf("card declined (attempt %d)", n)
	case seq%7 == 3 && n <= 2:
		return fmt.Errorf("gateway timeout (attempt %d)", n)
	}
	s.handled = append(s.handled, v)
	if n > 1 {
		fmt.Fprintf(s.out, "%-5s %-10s succeeded on attempt %d\n", "job", v, n)
	}
	return nil
}

func (s *service) done() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.handled)
}

func run(ctx context.Context, out io.Writer, records, keys int) error {
	if records < 1 || keys < 1 {
		return errors.New("-records and -keys must be at least 1")
	}
	out = &lockedWriter{w: out} // the consumer and the job print concurrently
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cluster, err := kafkatest.Start(ctx)
	if err != nil {
		return err
	}
	defer cluster.Close()
	const topic = "payments"
	for _, t := range []struct {
		name string
		n    int32
	}{{topic, 3}, {topic + retry.RetrySuffix, 3}, {topic + retry.DeadLetterSuffix, 1}} {
		if err := cluster.CreateTopic(ctx, t.name, t.n, 1, nil); err != nil {
			return err
		}
	}
	seeds := kgo.SeedBrokers(cluster.Bootstrap()...)

	// Produce "key:sequence" records; franz-go's defaults are acks=all and
	// idempotent writes.
	producer, err := kgo.NewClient(seeds, kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer producer.Close()
	for i := 0; i < records; i++ {
		k := fmt.Sprintf("acct-%d", i%keys)
		if err := producer.ProduceSync(ctx, &kgo.Record{Key: []byte(k), Value: []byte(fmt.Sprintf("%s:%d", k, i))}).FirstErr(); err != nil {
			return err
		}
	}
	poison := fmt.Sprintf("acct-%d:%d", (records-1)%keys, records-1)
	svc := &service{poison: poison, attempts: map[string]int{}, out: out}

	// The retry path, in key order: the key locks are shared by the parker
	// (consumer side) and the job.
	quiet := slog.New(slog.DiscardHandler)
	// Options that apply to the parker and the job alike.
	backoff := retry.RetryBackoff(retry.Backoff{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, Multiplier: 2, Jitter: 0.2})
	attempts := retry.MaxAttempts(4)
	locks, err := retry.NewKeyLocks(ctx, retry.Topic(topic), retry.KgoOpts(seeds))
	if err != nil {
		return err
	}
	defer locks.Close()
	keyOrder := retry.KeyOrder(locks)
	parker, err := retry.NewParker(producer, retry.Topic(topic), backoff, attempts, keyOrder, retry.Logger(quiet))
	if err != nil {
		return err
	}
	consumer, err := consume.New(parker.Wrap(func(ctx context.Context, r *kgo.Record) error {
		err := svc.handle(ctx, r)
		if err != nil {
			fmt.Fprintf(out, "%-5s %-10s failed: %v; parked\n", "app", r.Value, err)
		}
		return err
	}), consume.KgoOpts(seeds, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("payments-app"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), consume.RetryPath(parker), consume.Logger(quiet))
	if err != nil {
		return err
	}
	var deadLetters []*retry.Marker
	var dlMu sync.Mutex
	job, err := retry.NewJob(func(ctx context.Context, m *retry.Marker) error {
		err := svc.handle(ctx, m.Record())
		if err != nil {
			fmt.Fprintf(out, "%-5s %-10s attempt %d failed: %v\n", "job", m.Value, m.Attempts+1, err)
		}
		return err
	}, retry.Topic(topic), retry.KgoOpts(seeds), backoff, attempts, keyOrder, retry.Logger(quiet),
		retry.OnAlert(retry.Thresholds{DeadLetters: 1}, func(a retry.Alert) {
			dlMu.Lock()
			deadLetters = append(deadLetters, a.Marker)
			dlMu.Unlock()
			fmt.Fprintf(out, "ALERT dead letter: %s after %d attempts: %s\n", a.Marker.Value, a.Marker.Attempts, a.Marker.LastError())
		}))
	if err != nil {
		return err
	}

	runCtx, stop := context.WithCancel(ctx)
	errs := make(chan error, 2)
	go func() { errs <- consumer.Run(runCtx) }()
	go func() { errs <- job.Run(runCtx) }()
	finished := func() bool {
		dlMu.Lock()
		defer dlMu.Unlock()
		return svc.done()+len(deadLetters) >= records
	}
	for !finished() {
		select {
		case <-ctx.Done():
			stop()
			return fmt.Errorf("only %d of %d records handled: %w", svc.done(), records, ctx.Err())
		case err := <-errs:
			stop()
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			return err
		}
	}
	return check(out, svc, deadLetters, records, poison)
}

// check verifies and prints the outcome.
func check(out io.Writer, svc *service, deadLetters []*retry.Marker, records int, poison string) error {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	seen := map[string]bool{}
	last := map[string]int{}
	perKey := map[string][]string{}
	for _, v := range svc.handled {
		if seen[v] {
			return fmt.Errorf("%s handled twice", v)
		}
		seen[v] = true
		k, seqText, _ := strings.Cut(v, ":")
		seq, _ := strconv.Atoi(seqText)
		if prev, ok := last[k]; ok && seq < prev {
			return fmt.Errorf("key %s: %d handled after %d", k, seq, prev)
		}
		last[k] = seq
		perKey[k] = append(perKey[k], seqText)
	}
	if len(deadLetters) != 1 || string(deadLetters[0].Value) != poison {
		return fmt.Errorf("dead letters %v, want only %s", deadLetters, poison)
	}
	if len(svc.handled) != records-1 {
		return fmt.Errorf("%d records handled, want %d", len(svc.handled), records-1)
	}
	fmt.Fprintf(out, "\n%d records handled once each, in key order; 1 dead-lettered (%s)\n", len(svc.handled), poison)
	ks := make([]string, 0, len(perKey))
	for k := range perKey {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		fmt.Fprintf(out, "  %s: %s\n", k, strings.Join(perKey[k], " "))
	}
	return nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
