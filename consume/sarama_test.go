package consume_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
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

func startSarama(t testing.TB, c *kafkatest.Cluster, group, topic string, handler consume.Handler, opts ...consume.SaramaOpt) *saramaRun {
	t.Helper()
	return startSaramaWith(t, c, saramaConfig(), group, topic, handler, opts...)
}

func startSaramaWith(t testing.TB, c *kafkatest.Cluster, cfg *sarama.Config, group, topic string, handler consume.Handler, opts ...consume.SaramaOpt) *saramaRun {
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
	t.Parallel()
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
	reg := prometheus.NewRegistry()
	cm, err := consume.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := testkit.ServeMetrics(t, reg)
	run := startSarama(t, c, group, topic, handler, consume.Concurrency(16), consume.CommitInterval(30*time.Millisecond),
		consume.ReportMetrics(cm))
	testkit.WaitFor(t, 30*time.Second, "every record handled", func() bool { return l.doneCount() == keys*perKey })
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	s := testkit.Scrape(t, metricsURL, "kafkaguard_")
	if got := s[`kafkaguard_ordering_handled_total{topic="sarama-order"}`]; got != strconv.Itoa(keys*perKey) {
		t.Errorf("handled_total = %q, want %d", got, keys*perKey)
	}
	if s[`kafkaguard_consume_rebalances_total{event="assigned",group="g-sarama-order"}`] == "" {
		t.Errorf("no assignment counted: %v", s)
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
	t.Parallel()
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
	run := startSarama(t, c, group, topic, handler, consume.Concurrency(4), consume.CommitInterval(20*time.Millisecond),
		consume.OnError(func(f consume.Failure) { mu.Lock(); reported = append(reported, f); mu.Unlock() }))

	const behind = 20 - 5
	testkit.WaitFor(t, 20*time.Second, "every record not behind the failure", func() bool { return l.doneCount() == len(rs)-1-behind })
	var meta string
	testkit.WaitFor(t, 10*time.Second, "the commit to hold at the failure", func() bool {
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
	testkit.WaitFor(t, 10*time.Second, "the rest of the key after the retry", func() bool { return l.doneCount() == len(rs) })
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
	t.Parallel()
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
			opts := []consume.Opt{consume.Concurrency(4), consume.CommitInterval(20 * time.Millisecond),
				consume.DrainTimeout(200 * time.Millisecond)}
			var stop func()
			if tc.first == "kgo" {
				run := start(t, h1, scoped[consume.ConsumerOpt](opts, groupOpts(c, group, topic))...)
				stop = run.c.Crash
			} else {
				run := startSarama(t, c, group, topic, h1, scoped[consume.SaramaOpt](opts)...)
				stop = func() { _ = run.stop() }
			}
			testkit.WaitFor(t, 20*time.Second, "every record not behind the stuck one",
				func() bool { return first.doneCount() == len(rs)-1-behind })
			testkit.WaitFor(t, 10*time.Second, "the commit to name every done record", func() bool {
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
				start(t, h2, scoped[consume.ConsumerOpt](opts, groupOpts(c, group, topic))...)
			} else {
				startSarama(t, c, group, topic, h2, scoped[consume.SaramaOpt](opts)...)
			}
			// Once the commit is at the end, the second client has run all it
			// was going to: a record run twice cannot come later.
			waitCommittedAtEnd(t, c, group, topic, 20*time.Second)
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
	t.Parallel()
	c := kafkatest.NewCluster(t)
	nop := func(context.Context, *sarama.ConsumerMessage) error { return nil }
	autoCommit := saramaConfig()
	autoCommit.Consumer.Offsets.AutoCommit.Enable = true
	for _, tc := range []struct {
		name    string
		cfg     *sarama.Config // nil: no client
		group   string
		handler consume.SaramaHandlerFunc
		opts    []consume.SaramaOpt
		want    []string
	}{
		{"auto-commit on", autoCommit, "g", nop, nil, []string{"Consumer.Offsets.AutoCommit.Enable must be false"}},
		{"drain outlives the rebalance", saramaConfig(), "g", nop, []consume.SaramaOpt{consume.DrainTimeout(time.Minute)},
			[]string{"DrainTimeout 1m0s must be below Consumer.Group.Rebalance.Timeout 20s"}},
		{"no client, group or handler", nil, "", nil, []consume.SaramaOpt{consume.Concurrency(-1)},
			[]string{"sarama client is nil", "group is empty", "handler is nil", "Concurrency must be >= 1"}},
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
	t.Parallel()
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
			opts := []consume.SaramaOpt{consume.Concurrency(4), consume.CommitInterval(50 * time.Millisecond),
				consume.MaxBuffered(100)}

			produce(t, c, topic, all[:half])
			a := startSaramaWith(t, c, cfg(), group, topic, handler("a"), opts...)
			testkit.WaitFor(t, 20*time.Second, "the first member to handle a quarter", func() bool { return l.doneCount() >= half/2 })
			b := startSaramaWith(t, c, cfg(), group, topic, handler("b"), opts...)
			testkit.WaitFor(t, 20*time.Second, "the second member to get partitions", func() bool { return b.h.Stats().Partitions > 0 })
			produce(t, c, topic, all[half:])
			testkit.WaitFor(t, 30*time.Second, "three quarters", func() bool { return l.doneCount() >= len(all)*3/4 })
			if err := a.stop(); err != nil {
				t.Errorf("first member: %v", err)
			}
			testkit.WaitFor(t, 60*time.Second, "every record", func() bool { return l.doneCount() == len(all) })
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

// fakeSession is a sarama group session the test drives: its context ends
// when the test says the session ends, and it records what is marked.
type fakeSession struct {
	ctx    context.Context
	mu     sync.Mutex
	marked map[int32]int64
}

func (s *fakeSession) Claims() map[string][]int32 { return nil }
func (s *fakeSession) MemberID() string           { return "fake" }
func (s *fakeSession) GenerationID() int32        { return 1 }
func (s *fakeSession) Commit()                    {}
func (s *fakeSession) Context() context.Context   { return s.ctx }

func (s *fakeSession) MarkOffset(_ string, partition int32, offset int64, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.marked[partition]; !ok || offset > last {
		s.marked[partition] = offset
	}
}

func (s *fakeSession) ResetOffset(_ string, partition int32, offset int64, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marked[partition] = offset
}

func (s *fakeSession) MarkMessage(m *sarama.ConsumerMessage, metadata string) {
	s.MarkOffset(m.Topic, m.Partition, m.Offset+1, metadata)
}

// fakeClaim is a claim whose messages the test sends.
type fakeClaim struct {
	topic     string
	partition int32
	msgs      chan *sarama.ConsumerMessage
}

func (c *fakeClaim) Topic() string                            { return c.topic }
func (c *fakeClaim) Partition() int32                         { return c.partition }
func (c *fakeClaim) InitialOffset() int64                     { return 0 }
func (c *fakeClaim) HighWaterMarkOffset() int64               { return 0 }
func (c *fakeClaim) Messages() <-chan *sarama.ConsumerMessage { return c.msgs }

// TestSaramaClaimStopsAfterAMessageItCouldNotDispatch ends a session while
// one claim's message waits for buffer room that another claim's record
// holds. That message is not dispatched; the claim must then take no later
// message either, or the later one's offset is marked and committed past
// the message that never ran. The interleaving is a race, so the session is
// played many times.
func TestSaramaClaimStopsAfterAMessageItCouldNotDispatch(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic, group = "sarama-stop", "g-sarama-stop"
	newTopic(t, c, topic, 2)
	client, err := sarama.NewClient(c.Bootstrap(), saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	var (
		mu      sync.Mutex
		round   context.Context
		handled map[int32][]int64
	)
	h, err := consume.NewSarama(client, group, func(_ context.Context, m *sarama.ConsumerMessage) error {
		mu.Lock()
		end := round.Done()
		mu.Unlock()
		if string(m.Value) == "hold" {
			<-end // holds the only buffer slot until the session ends
		}
		mu.Lock()
		handled[m.Partition] = append(handled[m.Partition], m.Offset)
		mu.Unlock()
		return nil
	}, consume.MaxBuffered(1), consume.Concurrency(2), consume.DrainTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	const rounds = 30
	for i := range rounds {
		ctx, cancel := context.WithCancel(context.Background())
		mu.Lock()
		round, handled = ctx, map[int32][]int64{}
		mu.Unlock()
		sess := &fakeSession{ctx: ctx, marked: map[int32]int64{}}
		a := &fakeClaim{topic: topic, partition: 0, msgs: make(chan *sarama.ConsumerMessage, 4)}
		b := &fakeClaim{topic: topic, partition: 1, msgs: make(chan *sarama.ConsumerMessage, 4)}
		var wg sync.WaitGroup
		for _, cl := range []*fakeClaim{a, b} {
			wg.Go(func() {
				if err := h.ConsumeClaim(sess, cl); err != nil {
					t.Error(err)
				}
			})
		}
		testkit.WaitFor(t, 10*time.Second, "both claims", func() bool { return h.Stats().Partitions == 2 })
		time.Sleep(5 * time.Millisecond) // both claims wait for a message

		a.msgs <- &sarama.ConsumerMessage{Topic: topic, Partition: 0, Offset: 0, Value: []byte("hold")}
		testkit.WaitFor(t, 10*time.Second, "the held record to run", func() bool { return h.Stats().Running == 1 })
		// b's first message waits for the slot; its second is buffered.
		b.msgs <- &sarama.ConsumerMessage{Topic: topic, Partition: 1, Offset: 0, Value: []byte("b0")}
		b.msgs <- &sarama.ConsumerMessage{Topic: topic, Partition: 1, Offset: 1, Value: []byte("b1")}
		time.Sleep(5 * time.Millisecond)
		cancel() // the session ends: the held record finishes, b's wait ends
		wg.Wait()

		mu.Lock()
		ran := handled[1]
		mu.Unlock()
		sess.mu.Lock()
		marked, ok := sess.marked[1]
		sess.mu.Unlock()
		if ok && marked > int64(len(ran)) || len(ran) > 0 && ran[0] != 0 {
			t.Fatalf("round %d: partition 1 marked offset %d, but ran only %v: offset 0 never ran and is committed",
				i, marked, ran)
		}
	}
}
