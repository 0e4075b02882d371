package consume_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/ordering"
)

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.ClientID = "consume-test"
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Group.Session.Timeout = 3 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 100 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Timeout = 20 * time.Second
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	cfg.Metadata.Retry.Backoff = 10 * time.Millisecond
	return cfg
}

// fromSarama is the kgo.Record the ledger sees for a sarama message.
func fromSarama(m *sarama.ConsumerMessage) *kgo.Record {
	return &kgo.Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value}
}

// saramaRun is a SaramaHandler running a ConsumerGroup in the background.
type saramaRun struct {
	h    *consume.SaramaHandler
	stop func() error
}

func startSarama(t testing.TB, c *kafkatest.Cluster, group, topic string, handler consume.Handler, opts ...consume.Option) *saramaRun {
	t.Helper()
	return startSaramaWith(t, c, saramaConfig(), group, topic, handler, opts...)
}

func startSaramaWith(t testing.TB, c *kafkatest.Cluster, cfg *sarama.Config, group, topic string, handler consume.Handler, opts ...consume.Option) *saramaRun {
	t.Helper()
	client, err := sarama.NewClient(c.Bootstrap(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	grp, err := sarama.NewConsumerGroupFromClient(group, client)
	if err != nil {
		t.Fatal(err)
	}
	h, err := consume.NewSarama(client, group, func(ctx context.Context, m *sarama.ConsumerMessage) error {
		return handler(ctx, fromSarama(m))
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, grp, []string{topic}) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			_ = grp.Close()
			_ = h.Close()
			_ = client.Close()
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return &saramaRun{h: h, stop: stop}
}

func TestSaramaHandlerKeepsKeyOrderAndCommitsHandledOffsets(t *testing.T) {
	c := kafkatest.NewCluster(t)
	const topic, group, keys, perKey = "sarama-order", "g-sarama-order", 30, 20
	newTopic(t, c, topic, 3)
	produce(t, c, topic, keyed(keys, perKey))

	l := newLedger()
	var rngMu sync.Mutex
	rng := rand.New(rand.NewPCG(3, 4))
	handler := func(_ context.Context, r *kgo.Record) error {
		exit := l.enter(t, r, string(r.Key))
		rngMu.Lock()
		d := time.Duration(rng.Int64N(int64(2 * time.Millisecond)))
		rngMu.Unlock()
		time.Sleep(d)
		exit(true)
		return nil
	}
	run := startSarama(t, c, group, topic, handler, consume.WithConcurrency(16), consume.WithCommitInterval(30*time.Millisecond))
	waitFor(t, "every record handled", 30*time.Second, func() bool { return l.doneCount() == keys*perKey })
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.overlap) > 0 || l.total != keys*perKey {
		t.Errorf("%d runs for %d records, %d overlapping runs of a key", l.total, keys*perKey, len(l.overlap))
	}
	for key, seqs := range l.order {
		for i, s := range seqs {
			if s != i {
				t.Fatalf("key %s ran %v", key, seqs)
			}
		}
	}
	offs := committed(t, c, group)
	for p, end := range endOffsets(t, c, topic) {
		if o, _ := offs.Lookup(topic, p); o.At != end {
			t.Errorf("partition %d committed %d, want the end offset %d", p, o.At, end)
		}
	}
}

func TestSaramaHandlerFailureBlocksOnlyItsKeyAndHoldsTheCommit(t *testing.T) {
	c := kafkatest.NewCluster(t)
	const topic, group = "sarama-fail", "g-sarama-fail"
	newTopic(t, c, topic, 1)
	rs := produce(t, c, topic, keyed(5, 20))
	var failed *kgo.Record
	for _, r := range rs {
		if string(r.Value) == "k002:4" {
			failed = r
		}
	}
	l := newLedger()
	var (
		mu       sync.Mutex
		resolved bool
		reported []consume.Failure
	)
	handler := func(_ context.Context, r *kgo.Record) error {
		exit := l.enter(t, r, string(r.Key))
		mu.Lock()
		fail := at(r) == at(failed) && !resolved
		mu.Unlock()
		exit(!fail)
		if fail {
			return errPoison
		}
		return nil
	}
	run := startSarama(t, c, group, topic, handler, consume.WithConcurrency(4), consume.WithCommitInterval(20*time.Millisecond),
		consume.WithOnError(func(f consume.Failure) { mu.Lock(); reported = append(reported, f); mu.Unlock() }))

	const behind = 20 - 5
	waitFor(t, "every record not behind the failure", 20*time.Second, func() bool { return l.doneCount() == len(rs)-1-behind })
	var meta string
	waitFor(t, "the commit to hold at the failure", 10*time.Second, func() bool {
		o, _ := committed(t, c, group).Lookup(topic, 0)
		meta = o.Metadata
		s, err := ordering.DecodeMetadata(o.Metadata)
		return o.At == failed.Offset && err == nil && s.Len() == int64(l.doneCount()-int(failed.Offset))
	})
	mu.Lock()
	if len(reported) != 1 || string(reported[0].Record.Value) != "k002:4" || !errors.Is(reported[0].Err, errPoison) {
		t.Errorf("OnError got %v, want the failure of k002:4", reported)
	}
	resolved = true
	mu.Unlock()
	if fs := run.h.Failures(); len(fs) != 1 || fs[0].Record.Offset != failed.Offset {
		t.Fatalf("Failures() = %v", fs)
	}
	if !strings.HasPrefix(meta, "kg1:") {
		t.Errorf("committed metadata %q is not the ordering format", meta)
	}
	if err := run.h.Retry(topic, 0, failed.Offset); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rest of the key after the retry", 10*time.Second, func() bool { return l.doneCount() == len(rs) })
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	if o, _ := committed(t, c, group).Lookup(topic, 0); o.At != int64(len(rs)) {
		t.Errorf("committed %d after the retry succeeded, want %d", o.At, len(rs))
	}
}

// TestConsumerAndSaramaHandlerResumeEachOther stops one client while a
// record is stuck, with the records around it handled and committed in the
// metadata, and resumes with the other client: only the stuck record and
// those behind it run.
func TestConsumerAndSaramaHandlerResumeEachOther(t *testing.T) {
	c := kafkatest.NewCluster(t)
	for _, tc := range []struct{ first, second string }{{"kgo", "sarama"}, {"sarama", "kgo"}} {
		t.Run(tc.first+" then "+tc.second, func(t *testing.T) {
			topic := "handover-" + tc.first
			group := "g-" + topic
			newTopic(t, c, topic, 1)
			rs := produce(t, c, topic, keyed(8, 15))
			var stuck *kgo.Record
			for _, r := range rs {
				if string(r.Value) == "k001:6" {
					stuck = r
				}
			}
			const behind = 15 - 7

			first := newLedger()
			h1 := func(ctx context.Context, r *kgo.Record) error {
				exit := first.enter(t, r, string(r.Key))
				if at(r) == at(stuck) {
					<-ctx.Done()
					exit(false)
					return ctx.Err()
				}
				exit(true)
				return nil
			}
			opts := []consume.Option{consume.WithConcurrency(4), consume.WithCommitInterval(20 * time.Millisecond),
				consume.WithDrainTimeout(200 * time.Millisecond)}
			var stop func()
			if tc.first == "kgo" {
				run := start(t, h1, append(opts, groupOpts(c, group, topic))...)
				stop = run.c.Crash
			} else {
				run := startSarama(t, c, group, topic, h1, opts...)
				stop = func() { _ = run.stop() }
			}
			waitFor(t, "every record not behind the stuck one", 20*time.Second,
				func() bool { return first.doneCount() == len(rs)-1-behind })
			waitFor(t, "the commit to name every done record", 10*time.Second, func() bool {
				o, _ := committed(t, c, group).Lookup(topic, 0)
				s, err := ordering.DecodeMetadata(o.Metadata)
				return o.At == stuck.Offset && err == nil && s.Len() == int64(first.doneCount()-int(stuck.Offset))
			})
			stop()

			second := newLedger()
			h2 := func(_ context.Context, r *kgo.Record) error {
				exit := second.enter(t, r, string(r.Key))
				exit(true)
				return nil
			}
			if tc.second == "kgo" {
				start(t, h2, append(opts, groupOpts(c, group, topic))...)
			} else {
				startSarama(t, c, group, topic, h2, opts...)
			}
			waitFor(t, "the second client to finish", 20*time.Second, func() bool { return second.doneCount() == 1+behind })
			time.Sleep(100 * time.Millisecond)
			second.mu.Lock()
			defer second.mu.Unlock()
			if second.total != 1+behind {
				t.Errorf("the second client ran %d records, want %d (the stuck one and those behind it)", second.total, 1+behind)
			}
			if got := second.order["k001"]; len(got) != 1+behind || got[0] != 6 {
				t.Errorf("the second client ran k001 %v, want 6..14", got)
			}
		})
	}
}

func TestNewSaramaRefusesContradictoryOptions(t *testing.T) {
	c := kafkatest.NewCluster(t)
	nop := func(context.Context, *sarama.ConsumerMessage) error { return nil }
	autoCommit := saramaConfig()
	autoCommit.Consumer.Offsets.AutoCommit.Enable = true
	for _, tc := range []struct {
		name    string
		cfg     *sarama.Config // nil: no client
		group   string
		handler consume.SaramaHandlerFunc
		opts    []consume.Option
		want    []string
	}{
		{"auto-commit on", autoCommit, "g", nop, nil, []string{"Consumer.Offsets.AutoCommit.Enable must be false"}},
		{"kgo options", saramaConfig(), "g", nop, []consume.Option{consume.WithKgoOpts(kgo.ConsumerGroup("g"))},
			[]string{"WithKgoOpts does not apply"}},
		{"drain outlives the rebalance", saramaConfig(), "g", nop, []consume.Option{consume.WithDrainTimeout(time.Minute)},
			[]string{"WithDrainTimeout 1m0s must be below Consumer.Group.Rebalance.Timeout 20s"}},
		{"no client, group or handler", nil, "", nil, []consume.Option{consume.WithConcurrency(-1)},
			[]string{"sarama client is nil", "group is empty", "handler is nil", "WithConcurrency must be >= 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var client sarama.Client
			if tc.cfg != nil {
				var err error
				if client, err = sarama.NewClient(c.Bootstrap(), tc.cfg); err != nil {
					t.Fatal(err)
				}
				defer client.Close()
			}
			h, err := consume.NewSarama(client, tc.group, tc.handler, tc.opts...)
			if err == nil {
				h.Close()
				t.Fatal("NewSarama accepted the options")
			}
			if !errors.Is(err, consume.ErrInvalidOption) {
				t.Errorf("error %v does not wrap ErrInvalidOption", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestSaramaRebalanceMidStreamLosesNothingAndKeepsKeyOrder is the sarama
// counterpart of the Consumer's rebalance test: a second member joins while
// records arrive, then the first leaves.
func TestSaramaRebalanceMidStreamLosesNothingAndKeepsKeyOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		strategy sarama.BalanceStrategy
	}{
		{"eager range", sarama.NewBalanceStrategyRange()},
		{"cooperative sticky", sarama.NewBalanceStrategyCooperativeSticky()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kafkatest.NewCluster(t)
			const topic, group, keys, perKey = "sarama-rebalance", "g-sarama-rebalance", 40, 30
			newTopic(t, c, topic, 4)
			all := keyed(keys, perKey)
			half := len(all) / 2

			l := newLedger()
			var mu sync.Mutex
			byMember := map[string]int{}
			handler := func(member string) consume.Handler {
				return func(_ context.Context, r *kgo.Record) error {
					exit := l.enter(t, r, string(r.Key))
					time.Sleep(time.Duration(1 + rand.Int64N(int64(3*time.Millisecond))))
					mu.Lock()
					byMember[member]++
					mu.Unlock()
					exit(true)
					return nil
				}
			}
			cfg := func() *sarama.Config {
				cfg := saramaConfig()
				cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{tc.strategy}
				return cfg
			}
			opts := []consume.Option{consume.WithConcurrency(4), consume.WithCommitInterval(50 * time.Millisecond),
				consume.WithMaxBuffered(100)}

			produce(t, c, topic, all[:half])
			a := startSaramaWith(t, c, cfg(), group, topic, handler("a"), opts...)
			waitFor(t, "the first member to handle a quarter", 20*time.Second, func() bool { return l.doneCount() >= half/2 })
			b := startSaramaWith(t, c, cfg(), group, topic, handler("b"), opts...)
			waitFor(t, "the second member to get partitions", 20*time.Second, func() bool { return b.h.Stats().Partitions > 0 })
			produce(t, c, topic, all[half:])
			waitFor(t, "three quarters", 30*time.Second, func() bool { return l.doneCount() >= len(all)*3/4 })
			if err := a.stop(); err != nil {
				t.Errorf("first member: %v", err)
			}
			waitFor(t, "every record", 60*time.Second, func() bool { return l.doneCount() == len(all) })
			if err := b.stop(); err != nil {
				t.Errorf("second member: %v", err)
			}

			l.mu.Lock()
			defer l.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			if byMember["b"] == 0 {
				t.Fatalf("the second member handled nothing (%v)", byMember)
			}
			if len(l.overlap) > 0 {
				t.Errorf("%d records ran while another of their key ran, first key %s", len(l.overlap), l.overlap[0])
			}
			if l.total != len(all) {
				t.Errorf("handler ran %d times for %d records", l.total, len(all))
			}
			for key, seqs := range l.order {
				for i, s := range seqs {
					if s != i {
						t.Fatalf("key %s ran %v", key, seqs)
					}
				}
			}
			t.Logf("records handled per member: %v", byMember)
		})
	}
}
