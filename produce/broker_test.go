package produce_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// readAll waits until topic's log is settled — every partition's high
// watermark is its leader's log end offset, and together they hold at
// least n records — then reads every record up to there and returns them
// in partition order. The caller has stopped writing (its producers
// flushed or closed), so a duplicate is in the log by then and is read:
// no window is needed for it to show.
func readAll(t *testing.T, c *kafkatest.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	adm := testkit.Admin(t, c.Bootstrap())
	testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("%s to hold at least %d settled records", topic, n), func() bool {
		return settledEnd(ctx, t, c, adm, topic) >= int64(n)
	})
	return testkit.ReadAll(ctx, t, c.Bootstrap(), topic)
}

// settledEnd returns how many records topic's partitions hold below their
// high watermarks, or -1 while a partition's high watermark is below its
// leader's log end offset (a write not yet replicated) or has no leader.
func settledEnd(ctx context.Context, t *testing.T, c *kafkatest.Cluster, adm *kadm.Client, topic string) int64 {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return -1
	}
	var total int64
	settled := true
	ends.Each(func(o kadm.ListedOffset) {
		info, err := c.Partition(topic, o.Partition)
		if err != nil || info.Leader < 0 {
			settled = false
			return
		}
		rep, err := c.Replica(info.Leader, topic, o.Partition)
		if err != nil || rep.HW != rep.LEO || rep.HW != o.Offset {
			settled = false
			return
		}
		total += o.Offset
	})
	if !settled {
		return -1
	}
	return total
}

func values(rs []*kgo.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Value)
	}
	return out
}

func newProducer(t *testing.T, c *kafkatest.Cluster, p produce.Preset, opts ...kgo.Opt) *produce.Producer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// A refused or failed request makes the client refresh its metadata before the retry;
	// a 100 ms cache lets the retry go out then rather than after franz-go's default 5 s.
	pr, err := produce.New(ctx, p, append([]kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("New(%v): %v", p, err)
	}
	t.Cleanup(func() { pr.Close(context.Background()) })
	return pr
}

func TestNoLossSendReturnsOnceEveryInSyncReplicaHasTheRecord(t *testing.T) {
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "orders", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, produce.NoLoss)
	const n = 10
	for i := range n {
		r := &kgo.Record{Topic: "orders", Value: []byte(strconv.Itoa(i))}
		if err := p.Send(ctx, r); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		if r.Offset != int64(i) {
			t.Fatalf("record %d acknowledged at offset %d", i, r.Offset)
		}
		// Acknowledged means committed: below the high watermark, on
		// every in-sync replica.
		info, err := c.Partition("orders", 0)
		if err != nil {
			t.Fatal(err)
		}
		if info.HW <= r.Offset {
			t.Fatalf("record %d acknowledged with the high watermark at %d", i, info.HW)
		}
		for _, id := range info.ISR {
			rep, err := c.Replica(id, "orders", 0)
			if err != nil {
				t.Fatal(err)
			}
			if rep.LEO <= r.Offset {
				t.Fatalf("record %d acknowledged before in-sync replica %d had it (LEO %d)", i, id, rep.LEO)
			}
		}
	}
	if err := p.Close(ctx); err != nil { // nothing more can be written: the log read below is final
		t.Fatalf("Close: %v", err)
	}
	want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	if got := values(readAll(t, c, "orders", n)); !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
}

func TestSendAsyncThenCloseDeliversEveryRecordAndEveryCallback(t *testing.T) {
	c := kafkatest.NewCluster(t)
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "events", 4, 1, nil); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, produce.NoLoss, kgo.ProducerLinger(50*time.Millisecond))
	const n = 500
	var ok, failed atomic.Int64
	for i := range n {
		p.SendAsync(ctx, &kgo.Record{Topic: "events", Key: []byte(strconv.Itoa(i % 17)), Value: []byte(strconv.Itoa(i))},
			func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
					return
				}
				ok.Add(1)
			})
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ok.Load() != n || failed.Load() != 0 {
		t.Fatalf("when Close returned: %d acknowledged, %d failed, want %d and 0", ok.Load(), failed.Load(), n)
	}
	got := values(readAll(t, c, "events", n))
	slices.Sort(got)
	if len(slices.Compact(got)) != n || len(got) != n {
		t.Fatalf("read %d records (%d distinct), want %d", len(got), len(slices.Compact(got)), n)
	}

	// After Close nothing is accepted, and the sender hears so.
	err := p.Send(ctx, &kgo.Record{Topic: "events", Value: []byte("late")})
	if !errors.Is(err, produce.ErrClosed) || !errors.Is(err, produce.ErrNotWritten) {
		t.Fatalf("Send after Close = %v, want ErrClosed and ErrNotWritten", err)
	}
	var cbErr error
	p.SendAsync(ctx, &kgo.Record{Topic: "events"}, func(_ *kgo.Record, err error) { cbErr = err })
	if !errors.Is(cbErr, produce.ErrClosed) {
		t.Fatalf("SendAsync after Close called back with %v", cbErr)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestSendAsyncCallsEveryRecordsOwnCallback(t *testing.T) {
	c := kafkatest.NewCluster(t)
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "mixed", 3, 1, nil); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, produce.NoLoss, kgo.DefaultProduceTopic("mixed"))
	// Senders that reuse one callback (the Producer binds those) run next
	// to senders that make a closure per record: every record must reach
	// the callback its sender passed, once.
	const senders, perSender = 6, 300
	var wrong, failed, called atomic.Int64
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			prefix := fmt.Sprintf("s%d-", s)
			check := func(r *kgo.Record, err error) {
				called.Add(1)
				if err != nil {
					failed.Add(1)
				}
				if !strings.HasPrefix(string(r.Value), prefix) {
					wrong.Add(1)
				}
			}
			for i := range perSender {
				cb := check
				if s%2 == 1 {
					cb = func(r *kgo.Record, err error) { check(r, err) }
				}
				p.SendAsync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s%d", prefix, i)}, cb)
			}
		})
	}
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if called.Load() != senders*perSender || wrong.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("%d callbacks (want %d), %d with another sender's record, %d failed",
			called.Load(), senders*perSender, wrong.Load(), failed.Load())
	}
}

func TestSendWithAContextThatNeverEnds(t *testing.T) {
	c := kafkatest.NewCluster(t)
	if err := c.CreateTopic(t.Context(), "forever", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, produce.NoLoss, kgo.DefaultProduceTopic("forever"), kgo.ProducerBatchMaxBytes(1<<10))
	ctx := context.Background()
	for i := range 3 {
		r := &kgo.Record{Value: []byte(strconv.Itoa(i))}
		if err := p.Send(ctx, r); err != nil || r.Offset != int64(i) {
			t.Fatalf("Send %d = %v at offset %d", i, err, r.Offset)
		}
	}
	// A refusal still comes back as a DeliveryError.
	err := p.Send(ctx, &kgo.Record{Value: make([]byte, 2<<10)})
	var de *produce.DeliveryError
	if !errors.As(err, &de) || de.Topic != "forever" || !errors.Is(err, produce.ErrNotWritten) || !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("Send of an oversized record = %v, want a DeliveryError, not written, MessageTooLarge", err)
	}
}

func TestPresetsKeepOrderWhenARequestIsRefusedAndRetried(t *testing.T) {
	// kafkatest's TestRetriesReorderOnlyWithoutIdempotenceAndWithSeveralRequestsInFlight shows
	// a raw client with 5 requests in flight and no idempotence reorder and duplicate records
	// under this fault; the presets must not.
	cases := []struct {
		name   string
		preset produce.Preset
		opts   []kgo.Opt
	}{
		{"NoLoss", produce.NoLoss, nil},
		{"StrictOrder without idempotence", produce.StrictOrder, []kgo.Opt{kgo.DisableIdempotentWrite()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := kafkatest.NewCluster(t)
			ctx := t.Context()
			if err := c.CreateTopic(ctx, "ab", 1, 1, nil); err != nil {
				t.Fatal(err)
			}
			p := newProducer(t, c, tc.preset, append([]kgo.Opt{kgo.DefaultProduceTopic("ab"), kgo.ProducerLinger(0),
				kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond })}, tc.opts...)...)
			if err := p.Send(ctx, &kgo.Record{Value: []byte("warm-up")}); err != nil {
				t.Fatal(err)
			}
			if err := c.FailProduces("ab", 0, 1, kerr.NotEnoughReplicas, 300*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			const n = 150
			var failed atomic.Int64
			want := make([]string, n)
			for i := range n {
				want[i] = strconv.Itoa(i)
				p.SendAsync(ctx, &kgo.Record{Value: []byte(want[i])}, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
					}
				})
				time.Sleep(2 * time.Millisecond)
			}
			if err := p.Flush(ctx); err != nil || failed.Load() != 0 {
				t.Fatalf("flush: %v; %d sends failed", err, failed.Load())
			}
			if err := p.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got := values(readAll(t, c, "ab", n+1))[1:]
			if !slices.Equal(got, want) {
				t.Fatalf("read %d records %v..., want 0..%d once each, in order", len(got), got[:min(10, len(got))], n-1)
			}
		})
	}
}

func TestMinInsyncReplicasStopsNoLossButNotLeaderAck(t *testing.T) {
	c := kafkatest.NewCluster(t, kafkatest.Brokers(2))
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "thin", 1, 2, map[string]string{"min.insync.replicas": "2"}); err != nil {
		t.Fatal(err)
	}
	info, err := c.Partition("thin", 0)
	if err != nil {
		t.Fatal(err)
	}
	follower := info.Replicas[0]
	if follower == info.Leader {
		follower = info.Replicas[1]
	}
	// The follower dies: the ISR is the leader alone, below min.insync.replicas=2.
	if err := c.Kill(follower); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPartition(ctx, "thin", 0, func(i kafkatest.PartitionInfo) bool { return len(i.ISR) == 1 }); err != nil {
		t.Fatal(err)
	}
	noLoss := newProducer(t, c, produce.NoLoss)
	sctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	err = noLoss.Send(sctx, &kgo.Record{Topic: "thin", Value: []byte("acks=all")})
	var de *produce.DeliveryError
	if !errors.As(err, &de) || !errors.Is(err, context.DeadlineExceeded) || de.Topic != "thin" {
		t.Fatalf("NoLoss Send = %v, want a DeliveryError for the deadline", err)
	}

	leaderAck := newProducer(t, c, produce.LeaderAck)
	if err := leaderAck.Send(ctx, &kgo.Record{Topic: "thin", Value: []byte("acks=1")}); err != nil {
		t.Fatalf("LeaderAck Send: %v", err)
	}
	cctx, ccancel := context.WithTimeout(ctx, time.Second)
	defer ccancel()
	noLoss.Close(cctx) // the refused record may still be retrying; Close fails it
	if err := leaderAck.Close(ctx); err != nil {
		t.Fatalf("LeaderAck Close: %v", err)
	}
	// Below min.insync.replicas the leader's high watermark stays (Kafka >= 3.7): the acks=1
	// record becomes readable once the follower is back in the ISR with it.
	if err := c.Restart(ctx, follower); err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, c, "thin", 1)); !slices.Equal(got, []string{"acks=1"}) {
		t.Fatalf("read %v, want only the LeaderAck record", got)
	}
}

func TestSendAbandonedInFlightIsOutcomeUnknownAndTheRecordCanStillLand(t *testing.T) {
	// With a linger Send hands the record to ProduceSync on a goroutine of
	// its own; without one it waits on the promise directly.
	for _, linger := range []time.Duration{10 * time.Millisecond, 0} {
		t.Run(fmt.Sprintf("linger=%v", linger), func(t *testing.T) {
			t.Parallel()
			testSendAbandonedInFlight(t, kgo.ProducerLinger(linger))
		})
	}
}

func testSendAbandonedInFlight(t *testing.T, linger kgo.Opt) {
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "limbo", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, produce.NoLoss, kgo.DefaultProduceTopic("limbo"), linger)
	if err := p.Send(ctx, &kgo.Record{Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	info, err := c.Partition("limbo", 0)
	if err != nil {
		t.Fatal(err)
	}
	var followers []int32
	for _, id := range info.Replicas {
		if id != info.Leader {
			followers = append(followers, id)
			if err := c.PauseReplication(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The leader appends the record but cannot get it replicated; the
	// sender gives up as soon as the leader has it.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sent := make(chan error, 1)
	go func() { sent <- p.Send(sctx, &kgo.Record{Value: []byte("second")}) }()
	for {
		rep, err := c.Replica(info.Leader, "limbo", 0)
		if err != nil {
			t.Fatal(err)
		}
		if rep.LEO >= 2 {
			break
		}
		select {
		case err := <-sent:
			t.Fatalf("Send returned %v before the record was appended", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	err = <-sent
	if !errors.Is(err, produce.ErrOutcomeUnknown) || errors.Is(err, produce.ErrNotWritten) {
		t.Fatalf("Send = %v, want ErrOutcomeUnknown", err)
	}
	var de *produce.DeliveryError
	if !errors.As(err, &de) || de.Topic != "limbo" || !errors.Is(err, context.Canceled) {
		t.Fatalf("DeliveryError = %+v, want topic limbo and the cancellation", de)
	}
	for _, id := range followers {
		if err := c.ResumeReplication(id); err != nil {
			t.Fatal(err)
		}
	}
	// A Send with a deadline after the abandoned one gets its own outcome.
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	third := &kgo.Record{Value: []byte("third")}
	if err := p.Send(dctx, third); err != nil || third.Offset != 2 {
		t.Fatalf("Send after the abandoned one = %v at offset %d, want nil at 2", err, third.Offset)
	}
	// Closing the producer ends any retry of the abandoned record still in
	// flight, so the log read below is final.
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// "Unknown" was the honest answer: the record was written after all,
	// and exactly once.
	if got := values(readAll(t, c, "limbo", 3)); !slices.Equal(got, []string{"first", "second", "third"}) {
		t.Fatalf("read %v, want [first second third]", got)
	}
}

func TestSaramaSyncNoLossSendsInOrderAndCloses(t *testing.T) {
	c := kafkatest.NewCluster(t)
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "legacy", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	cfg := sarama.NewConfig()
	sp, err := produce.NewSaramaSync(c.Bootstrap(), produce.NoLoss, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Producer.Idempotent || cfg.Producer.Return.Successes {
		t.Fatal("NewSaramaSync modified the caller's config")
	}
	errs := make([]error, 20)
	for i := range errs {
		msg := &sarama.ProducerMessage{Topic: "legacy", Value: sarama.StringEncoder(fmt.Sprint(i))}
		errs[i] = sp.Send(ctx, msg)
		if errs[i] == nil && msg.Offset != int64(i) {
			t.Fatalf("message %d at offset %d", i, msg.Offset)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sp.Send(ctx, &sarama.ProducerMessage{Topic: "legacy"}); !errors.Is(err, produce.ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if got := readAll(t, c, "legacy", 20); len(got) != 20 {
		t.Fatalf("read %d messages, want 20", len(got))
	}
}

func TestAuditPassesHardenedTopicsAndNamesEveryWeakness(t *testing.T) {
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "good", 2, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, "weak", 1, 1, map[string]string{"unclean.leader.election.enable": "true", "min.insync.replicas": "1"}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	r, err := produce.Audit(ctx, adm, []string{"good"}, produce.KgoProducer(produce.KgoOpts(produce.NoLoss)...))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed() || len(r.Checks) != 3*3+4+1 {
		t.Fatalf("hardened cluster: passed=%v with %d checks: %v", r.Passed(), len(r.Checks), r.Err())
	}

	r, err = produce.Audit(ctx, adm, []string{"good", "weak", "missing"}, produce.KgoProducer(produce.KgoOpts(produce.LeaderAck)...))
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, ch := range r.Failures() {
		failed = append(failed, ch.Resource+": "+ch.Rule+" ("+ch.Value+")")
	}
	want := []string{
		"topic weak: replication.factor >= 3 (1 (least over partitions))",
		"topic weak: min.insync.replicas >= 2 (1 (topic config))",
		"topic weak: min.insync.replicas < replication.factor (1 < 1)",
		"topic weak: unclean.leader.election.enable = false (true (topic config))",
		"topic missing: topic exists (missing)",
		"producer: producer acks = all (RequiredAcks = LeaderAck)",
	}
	if !slices.Equal(failed, want) {
		t.Fatalf("failed checks:\n%q\nwant\n%q", failed, want)
	}
	if !errors.Is(r.Err(), produce.ErrAuditFailed) {
		t.Fatalf("Err = %v", r.Err())
	}
}

func TestSendsWithDeadlinesThatEndInFlightEachGetOneAnswerAndLoseNothingAcknowledged(t *testing.T) {
	// Many concurrent Sends, some of whose deadlines end while their
	// records are in flight: the pooled state of one Send must never answer
	// another, with a linger (a goroutine per Send) or without.
	for _, linger := range []time.Duration{10 * time.Millisecond, 0} {
		t.Run(fmt.Sprintf("linger=%v", linger), func(t *testing.T) {
			t.Parallel()
			c := kafkatest.NewCluster(t)
			ctx := t.Context()
			if err := c.CreateTopic(ctx, "rush", 2, 1, nil); err != nil {
				t.Fatal(err)
			}
			p := newProducer(t, c, produce.NoLoss, kgo.DefaultProduceTopic("rush"), kgo.ProducerLinger(linger))
			if err := p.Send(ctx, &kgo.Record{Value: []byte("warm-up")}); err != nil {
				t.Fatal(err)
			}
			// Every request waits 2-6 ms at the broker; deadlines are 1-43 ms,
			// every eighth 10 s.
			if err := c.SetLatency(c.Brokers()[0].ID, 2*time.Millisecond, 4*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			const senders, each = 8, 60
			var mu sync.Mutex
			acked := map[string]bool{}
			var unknown, notWritten int
			var wg sync.WaitGroup
			for g := range senders {
				wg.Go(func() {
					for i := range each {
						v := fmt.Sprintf("%d-%d", g, i)
						d := time.Duration(1+6*((g+i)%8)) * time.Millisecond
						if i%8 == 0 {
							d = 10 * time.Second // some surely acknowledged
						}
						sctx, cancel := context.WithTimeout(ctx, d)
						r := &kgo.Record{Value: []byte(v)}
						err := p.Send(sctx, r)
						cancel()
						mu.Lock()
						switch {
						case err == nil:
							if string(r.Value) != v || r.Offset < 0 {
								t.Errorf("Send of %s answered for record %q at offset %d", v, r.Value, r.Offset)
							}
							acked[v] = true
						case errors.Is(err, produce.ErrOutcomeUnknown):
							unknown++
						case errors.Is(err, produce.ErrNotWritten):
							notWritten++
						default:
							t.Errorf("Send of %s: %v, not a DeliveryError", v, err)
						}
						mu.Unlock()
					}
				})
			}
			returned := make(chan struct{})
			go func() { wg.Wait(); close(returned) }()
			select {
			case <-returned:
			case <-time.After(20 * time.Second): // the longest deadline is 10 s
				t.Fatal("Sends still waiting 20 s on: some Send was never answered")
			}
			if err := c.SetLatency(c.Brokers()[0].ID, 0, 0); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if len(acked)+unknown+notWritten != senders*each || len(acked) == 0 || unknown+notWritten == 0 {
				t.Fatalf("%d acknowledged, %d outcome unknown, %d not written, want %d answers, some acknowledged and some not",
					len(acked), unknown, notWritten, senders*each)
			}
			in := map[string]int{}
			for _, v := range values(readAll(t, c, "rush", len(acked))) {
				in[v]++
			}
			for v := range acked {
				if in[v] != 1 {
					t.Fatalf("acknowledged %s is in the log %d times", v, in[v])
				}
			}
		})
	}
}

// New's client does not linger unless the options ask for it: Send waits
// for each record, which a linger only delays, and with a linger a Send
// whose context can end needs a goroutine to cut it short.
func TestNewClientDoesNotLingerUnlessAsked(t *testing.T) {
	c := kafkatest.NewCluster(t)
	for _, tc := range []struct {
		opts []kgo.Opt
		want time.Duration
	}{
		{nil, 0},
		{[]kgo.Opt{kgo.ProducerLinger(50 * time.Millisecond)}, 50 * time.Millisecond},
	} {
		p := newProducer(t, c, produce.NoLoss, tc.opts...)
		if got := p.Client().OptValue(kgo.ProducerLinger); got != tc.want {
			t.Errorf("New(NoLoss, %d options): the client's ProducerLinger is %v, want %v", len(tc.opts), got, tc.want)
		}
	}
}
