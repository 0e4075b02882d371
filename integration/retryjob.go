package integration

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/retry"
)

// retryService is the application under test: it fails some records a few
// times, one record always, and remembers what succeeded, in order.
type retryService struct {
	poison   string
	mu       sync.Mutex
	attempts map[string]int
	handled  []string
}

func (s *retryService) handle(_ context.Context, r *kgo.Record) error {
	v := string(r.Value)
	_, seq, err := parseKeyedValue(v)
	if err != nil {
		return retry.Permanent(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[v]++
	n := s.attempts[v]
	switch {
	case v == s.poison:
		return fmt.Errorf("poison record (attempt %d)", n)
	case seq%7 == 3 && n <= 2:
		return fmt.Errorf("transient failure (attempt %d)", n)
	}
	s.handled = append(s.handled, v)
	return nil
}

// consumerWithRetryJob runs the consume package's group consumer (KeyOrder)
// with the retry path: failed records are parked as markers on <topic>.retry
// and the retry Job runs them again with backoff; a record that keeps
// failing goes to <topic>.dlq after 4 attempts and raises an alert. Every
// other record must be handled exactly once, each key in sequence.
func consumerWithRetryJob(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := newAdmin(t, c)
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rf := int16(min(3, len(brokers)))
	cfg := map[string]string{"min.insync.replicas": fmt.Sprint(min(2, rf))}
	topic := uniqueName("payments")
	createTopic(ctx, t, c, adm, topic, 3, rf, cfg)
	createTopic(ctx, t, c, adm, topic+retry.RetrySuffix, 3, rf, cfg)
	createTopic(ctx, t, c, adm, topic+retry.DeadLetterSuffix, 1, rf, cfg)
	const keys, perKey = 6, 10
	const total = keys * perKey
	produceKeyed(ctx, t, c, topic, keys, perKey)

	svc := &retryService{poison: keyedValue("k02", 5), attempts: map[string]int{}}
	seeds := kgo.SeedBrokers(c.Bootstrap()...)
	quiet := slog.New(slog.DiscardHandler)
	// Options that apply to the parker and the job alike.
	backoff := retry.RetryBackoff(retry.Backoff{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, Multiplier: 2, Jitter: 0.2})
	attempts := retry.MaxAttempts(4)
	locks, err := retry.NewKeyLocks(ctx, retry.Topic(topic), retry.KgoOpts(seeds))
	if err != nil {
		t.Fatal(err)
	}
	defer locks.Close()
	keyOrder := retry.KeyOrder(locks)
	producer, err := kgo.NewClient(seeds, kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	parker, err := retry.NewParker(producer, retry.Topic(topic), backoff, attempts, keyOrder, retry.Logger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := consume.New(parker.Wrap(svc.handle),
		consume.KgoOpts(seeds, kgo.ConsumeTopics(topic), kgo.ConsumerGroup(uniqueName("payments-app")),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())),
		consume.RetryPath(parker), consume.Logger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	var (
		dlMu        sync.Mutex
		deadLetters []string
	)
	job, err := retry.NewJob(func(ctx context.Context, m *retry.Marker) error { return svc.handle(ctx, m.Record()) },
		retry.Topic(topic), retry.KgoOpts(seeds), backoff, attempts, keyOrder, retry.Logger(quiet),
		retry.OnAlert(retry.Thresholds{DeadLetters: 1}, func(a retry.Alert) {
			dlMu.Lock()
			deadLetters = append(deadLetters, string(a.Marker.Value))
			dlMu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, 2)
	go func() { errs <- consumer.Run(runCtx) }()
	go func() { errs <- job.Run(runCtx) }()
	finished := func() bool {
		dlMu.Lock()
		defer dlMu.Unlock()
		svc.mu.Lock()
		defer svc.mu.Unlock()
		return len(svc.handled)+len(deadLetters) >= total
	}
	for !finished() {
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d records handled or dead-lettered before: %v", len(svc.handled), total, ctx.Err())
		case err := <-errs:
			t.Fatalf("consumer or job stopped early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}

	svc.mu.Lock()
	defer svc.mu.Unlock()
	seen := map[string]bool{}
	last := map[string]int{}
	retried := 0
	for _, v := range svc.handled {
		if seen[v] {
			t.Errorf("%s handled twice", v)
		}
		seen[v] = true
		key, seq, _ := parseKeyedValue(v)
		if prev, ok := last[key]; ok && seq < prev {
			t.Errorf("key %s: %d handled after %d", key, seq, prev)
		}
		last[key] = seq
		if svc.attempts[v] > 1 {
			retried++
		}
	}
	if len(svc.handled) != total-1 {
		t.Errorf("%d records handled, want %d", len(svc.handled), total-1)
	}
	dlMu.Lock()
	defer dlMu.Unlock()
	if len(deadLetters) != 1 || deadLetters[0] != svc.poison {
		t.Errorf("dead letters %q, want only %q", deadLetters, svc.poison)
	}
	if n := svc.attempts[svc.poison]; n != 4 {
		t.Errorf("poison record ran %d times, want 4 (MaxAttempts)", n)
	}
	dlq := readAll(ctx, t, c, adm, topic+retry.DeadLetterSuffix)[0]
	if len(dlq) != 1 || string(dlq[0].Value) != svc.poison {
		t.Errorf("dead-letter topic holds %q, want [%q]", values(dlq), svc.poison)
	}
	t.Logf("%d records handled once each in key order (%d after retries by the job), %s dead-lettered after %d attempts",
		len(svc.handled), retried, svc.poison, svc.attempts[svc.poison])
}
