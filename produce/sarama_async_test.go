package produce_test

import (
	"context"
	"errors"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// outcomes records the callbacks of a SaramaAsyncProducer for messages
// whose Metadata is their index.
type outcomes struct {
	mu      sync.Mutex
	calls   []int                     // calls[i]: how often message i's callback ran
	errs    []error                   // errs[i]: the outcome of message i
	offsets map[int32][]int           // per partition, the indexes acknowledged, in callback order
	byIndex []*sarama.ProducerMessage // the messages, by index
	stray   []*sarama.ProducerMessage // callbacks whose Metadata was not an index
}

func newOutcomes(n int) *outcomes {
	return &outcomes{calls: make([]int, n), errs: make([]error, n), offsets: map[int32][]int{},
		byIndex: make([]*sarama.ProducerMessage, n)}
}

func (o *outcomes) callback(msg *sarama.ProducerMessage, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i, ok := msg.Metadata.(int)
	if !ok {
		o.stray = append(o.stray, msg)
		return
	}
	o.calls[i]++
	o.errs[i] = err
	if err == nil {
		o.offsets[msg.Partition] = append(o.offsets[msg.Partition], i)
	}
}

// check fails t unless every message had exactly one callback, each
// seeing the application's own Metadata.
func (o *outcomes) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.stray) > 0 {
		t.Fatalf("%d callbacks saw a Metadata that is not the application's: %v", len(o.stray), o.stray[0].Metadata)
	}
	for i, n := range o.calls {
		if n != 1 {
			t.Fatalf("message %d: %d callbacks, want exactly 1", i, n)
		}
	}
}

// acked returns the values of the acknowledged messages.
func (o *outcomes) acked() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for i, err := range o.errs {
		if o.calls[i] > 0 && err == nil {
			out = append(out, strconv.Itoa(i))
		}
	}
	return out
}

func (o *outcomes) count() (called, acked int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, n := range o.calls {
		called += n
		if n > 0 && o.errs[i] == nil {
			acked++
		}
	}
	return called, acked
}

func newSaramaAsync(t *testing.T, c *kafkatest.Cluster, p produce.Preset, cfg *sarama.Config) *produce.SaramaAsyncProducer {
	t.Helper()
	if cfg == nil {
		cfg = sarama.NewConfig()
	}
	// A refused or failed request makes sarama refresh its metadata before the retry.
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	sp, err := produce.NewSaramaAsync(c.Bootstrap(), p, cfg)
	if err != nil {
		t.Fatalf("NewSaramaAsync(%v): %v", p, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sp.Close(ctx)
	})
	return sp
}

func TestSaramaAsyncCallsEveryCallbackOnceAndKeepsOrderPerPartition(t *testing.T) {
	for _, p := range []produce.Preset{produce.NoLoss, produce.StrictOrder} {
		t.Run(p.String(), func(t *testing.T) {
			t.Parallel()
			c := kafkatest.NewCluster(t)
			ctx := t.Context()
			if err := c.CreateTopic(ctx, "async", 3, 1, nil); err != nil {
				t.Fatal(err)
			}
			cfg := sarama.NewConfig()
			cfg.Producer.Retry.Backoff = 100 * time.Millisecond
			sp := newSaramaAsync(t, c, p, cfg)
			// Partition 1 refuses a request mid-stream: sarama retries it
			// and the messages behind it.
			if err := c.FailProduces("async", 1, 1, kerr.NotEnoughReplicas, 200*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			const n = 300
			o := newOutcomes(n)
			for i := range n {
				msg := &sarama.ProducerMessage{Topic: "async", Key: sarama.StringEncoder("k" + strconv.Itoa(i%7)),
					Value: sarama.StringEncoder(strconv.Itoa(i)), Metadata: i}
				o.byIndex[i] = msg
				sp.SendAsync(ctx, msg, o.callback)
				if i%30 == 0 {
					time.Sleep(10 * time.Millisecond) // several requests, some behind the refused one
				}
			}
			if err := sp.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			o.check(t)
			for i, err := range o.errs {
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			if err := sp.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			// Per partition: acknowledged in the order sent, at ascending
			// offsets, and the log holds each message once, in that order.
			log := readAll(t, c, "async", n)
			for part, idx := range o.offsets {
				if !slices.IsSorted(idx) {
					t.Fatalf("partition %d acknowledged out of order: %v", part, idx)
				}
				var want, got []string
				for k, i := range idx {
					if k > 0 && o.byIndex[i].Offset <= o.byIndex[idx[k-1]].Offset {
						t.Fatalf("partition %d: message %d at offset %d after message %d at %d", part, i,
							o.byIndex[i].Offset, idx[k-1], o.byIndex[idx[k-1]].Offset)
					}
					want = append(want, strconv.Itoa(i))
				}
				for _, r := range log {
					if r.Partition == part {
						got = append(got, string(r.Value))
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("partition %d holds %v, want %v", part, got, want)
				}
			}
		})
	}
}

func TestSaramaAsyncKilledLeaderMidStreamLosesNothingAcknowledgedUnderNoLoss(t *testing.T) {
	// LeaderAck beside NoLoss shows the fault loses acknowledged messages
	// when the preset lets it: the followers stop copying, the leader
	// acknowledges what only it has, and dies.
	cases := []struct {
		preset   produce.Preset
		wantLoss bool
	}{{produce.NoLoss, false}, {produce.LeaderAck, true}}
	for _, tc := range cases {
		t.Run(tc.preset.String(), func(t *testing.T) {
			t.Parallel()
			c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"),
				kafkatest.ReplicaLagMax(30*time.Second))
			ctx := t.Context()
			if err := c.CreateTopic(ctx, "kill", 1, 3, nil); err != nil {
				t.Fatal(err)
			}
			info, err := c.Partition("kill", 0)
			if err != nil {
				t.Fatal(err)
			}
			cfg := sarama.NewConfig()
			cfg.Producer.Retry.Backoff = 100 * time.Millisecond
			sp := newSaramaAsync(t, c, tc.preset, cfg)
			const n, before, during = 300, 100, 50
			o := newOutcomes(n)
			send := func(from, to int) {
				for i := from; i < to; i++ {
					sp.SendAsync(ctx, &sarama.ProducerMessage{Topic: "kill", Value: sarama.StringEncoder(strconv.Itoa(i)), Metadata: i}, o.callback)
				}
			}
			send(0, before)
			if err := sp.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			// The followers stop copying; the next messages reach the leader
			// alone, which acknowledges them only under LeaderAck.
			var followers []int32
			for _, id := range info.Replicas {
				if id != info.Leader {
					followers = append(followers, id)
					if err := c.PauseReplication(id); err != nil {
						t.Fatal(err)
					}
				}
			}
			send(before, before+during)
			// Under NoLoss one request at a time waits for the paused
			// followers; under LeaderAck every one is acknowledged.
			testkit.WaitFor(t, 10*time.Second, "the leader to append messages sent while its followers are paused", func() bool {
				rep, err := c.Replica(info.Leader, "kill", 0)
				_, acked := o.count()
				if tc.wantLoss {
					return err == nil && rep.LEO >= before+during && acked == before+during
				}
				return err == nil && rep.LEO > before
			})
			if err := c.Kill(info.Leader); err != nil {
				t.Fatal(err)
			}
			for _, id := range followers {
				if err := c.ResumeReplication(id); err != nil {
					t.Fatal(err)
				}
			}
			send(before+during, n)
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := sp.Close(cctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			o.check(t)
			called, ackedN := o.count()
			if called != n || ackedN < before {
				t.Fatalf("%d callbacks, %d acknowledged; want %d callbacks and the first %d acknowledged", called, ackedN, n, before)
			}
			// The old leader comes back and follows again (truncating what
			// only it had), so that every replica is in sync for the read.
			if err := c.Restart(ctx, info.Leader); err != nil {
				t.Fatal(err)
			}
			// Under LeaderAck the new leader may hold nothing at all.
			atLeast := before
			if tc.wantLoss {
				atLeast = 0
			}
			log := values(readAll(t, c, "kill", atLeast))
			in := map[string]int{}
			for _, v := range log {
				in[v]++
			}
			var lost []string
			for _, v := range o.acked() {
				if in[v] == 0 {
					lost = append(lost, v)
				}
			}
			if tc.wantLoss {
				if len(lost) == 0 {
					t.Fatalf("LeaderAck lost nothing acknowledged: the fault did not hit (log %d records)", len(log))
				}
				return
			}
			if len(lost) > 0 {
				t.Fatalf("%d acknowledged messages lost, first %v", len(lost), lost[:min(5, len(lost))])
			}
			// Idempotent retries: nothing twice, and in the order sent.
			if !slices.IsSortedFunc(log, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y }) {
				t.Fatalf("log out of order: %v", log)
			}
			for v, k := range in {
				if k > 1 {
					t.Fatalf("message %s written %d times", v, k)
				}
			}
		})
	}
}

func TestSaramaAsyncCloseDeliversEveryOutstandingOutcome(t *testing.T) {
	c := kafkatest.NewCluster(t)
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "closing", 2, 1, nil); err != nil {
		t.Fatal(err)
	}
	cfg := sarama.NewConfig()
	// Messages wait in sarama's buffer until its next flush: Close must
	// wait for them.
	cfg.Producer.Flush.Frequency = 300 * time.Millisecond
	cfg.Producer.Flush.Messages = 1 << 20
	cfg.Producer.Flush.MaxMessages = 1 << 20
	sp := newSaramaAsync(t, c, produce.NoLoss, cfg)
	const n = 200
	o := newOutcomes(n)
	for i := range n {
		sp.SendAsync(ctx, &sarama.ProducerMessage{Topic: "closing", Value: sarama.StringEncoder(strconv.Itoa(i)), Metadata: i}, o.callback)
	}
	if called, _ := o.count(); called == n {
		t.Fatal("every message was acknowledged before Close: nothing outstanding to flush")
	}
	if err := sp.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close returned: every callback has run, and the producer's goroutine ended.
	o.check(t)
	if _, acked := o.count(); acked != n || sp.Outstanding() != 0 {
		t.Fatalf("%d of %d acknowledged, %d outstanding after Close", acked, n, sp.Outstanding())
	}
	var stacks strings.Builder
	pprof.Lookup("goroutine").WriteTo(&stacks, 1)
	if strings.Contains(stacks.String(), "produce.(*SaramaAsyncProducer)") {
		t.Fatalf("a goroutine of the producer outlived Close:\n%s", stacks.String())
	}
	// After Close: refused at once, not written, and Close again is nil.
	var got []error
	sp.SendAsync(ctx, &sarama.ProducerMessage{Topic: "closing"}, func(_ *sarama.ProducerMessage, err error) { got = append(got, err) })
	if len(got) != 1 || !errors.Is(got[0], produce.ErrClosed) || !errors.Is(got[0], produce.ErrNotWritten) {
		t.Fatalf("SendAsync after Close called back %v, want one ErrClosed, not written", got)
	}
	if err := sp.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := values(readAll(t, c, "closing", n)); len(got) != n {
		t.Fatalf("read %d messages, want %d", len(got), n)
	}
}

func TestNewSaramaAsyncRefusesWhatContradictsThePreset(t *testing.T) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V0_10_2_0 // too old for idempotent writes
	cfg.Producer.RequiredAcks = sarama.WaitForLocal
	// No broker listens: the refusal comes before any connection.
	_, err := produce.NewSaramaAsync([]string{"127.0.0.1:1"}, produce.NoLoss, cfg)
	ces := produce.ConfigErrors(err)
	if len(ces) != 1 || ces[0].Setting != "Version" || !errors.Is(err, produce.ErrUnsafeConfig) {
		t.Fatalf("NewSaramaAsync(NoLoss) on Version %v: %v, want one ConfigError naming Version", cfg.Version, err)
	}
	if cfg.Producer.RequiredAcks != sarama.WaitForLocal || cfg.Producer.Idempotent {
		t.Fatal("NewSaramaAsync modified the caller's config")
	}
}

func TestNewSaramaAsyncRefusesTransactions(t *testing.T) {
	cfg := sarama.NewConfig()
	cfg.Producer.Transaction.ID = "tx"
	for _, p := range []produce.Preset{produce.ExactlyOnce, produce.NoLoss} {
		_, err := produce.NewSaramaAsync([]string{"127.0.0.1:1"}, p, cfg)
		ces := produce.ConfigErrors(err)
		if len(ces) != 1 || !errors.Is(err, produce.ErrInvalidConfig) || !strings.Contains(ces[0].Fix, "NewSaramaSync") {
			t.Fatalf("NewSaramaAsync(%v) with a transactional id: %v", p, err)
		}
	}
	if cfg.Producer.Return.Successes {
		t.Fatal("NewSaramaAsync modified the caller's config")
	}
}

func TestSaramaAsyncRefusedMessagesAreNotWritten(t *testing.T) {
	c := kafkatest.NewCluster(t)
	ctx := t.Context()
	if err := c.CreateTopic(ctx, "refused", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	cfg := sarama.NewConfig()
	cfg.Producer.MaxMessageBytes = 1000
	sp := newSaramaAsync(t, c, produce.NoLoss, cfg)
	got := make(chan error, 3)
	cb := func(_ *sarama.ProducerMessage, err error) { got <- err }
	// sarama refuses a message over Producer.MaxMessageBytes before sending it.
	sp.SendAsync(ctx, &sarama.ProducerMessage{Topic: "refused", Value: sarama.ByteEncoder(make([]byte, 2000))}, cb)
	// A context that already ended: never handed to sarama.
	done, cancel := context.WithCancel(ctx)
	cancel()
	sp.SendAsync(done, &sarama.ProducerMessage{Topic: "refused", Value: sarama.StringEncoder("late")}, cb)
	sp.SendAsync(ctx, nil, cb)
	var causes []error
	for range 3 {
		err := <-got
		var de *produce.DeliveryError
		if !errors.As(err, &de) || !errors.Is(err, produce.ErrNotWritten) || errors.Is(err, produce.ErrOutcomeUnknown) {
			t.Fatalf("refused message called back %v, want a DeliveryError, not written", err)
		}
		causes = append(causes, de.Err)
	}
	all := errors.Join(causes...)
	var cfgErr sarama.ConfigurationError
	if !errors.As(all, &cfgErr) || !errors.Is(all, context.Canceled) {
		t.Fatalf("causes %v, want sarama's size refusal and the ended context", causes)
	}
	if err := sp.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
