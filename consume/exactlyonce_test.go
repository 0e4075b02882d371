package consume_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/netcut"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	kgproduce "github.com/kafkaguard/kafkaguard/produce"
)

// Exactly-once consume-transform-produce on the bundled cluster: copiers
// read "in" in a group and write every record to "out"; a read_committed
// reader of "out" must find every input record exactly once, each key's
// records in order.

const eosEnd = "zz-end"

// eosCluster starts 3 brokers (min.insync.replicas 2), shared by the
// subtests of one test.
func eosCluster(t *testing.T) *kafkatest.Cluster {
	t.Helper()
	return kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"),
		kafkatest.GroupMinSessionTimeout(500*time.Millisecond))
}

// eosTopics creates in (4 partitions) and out (3 partitions), both RF 3,
// and writes keys×perKey records to in, keyed so each key stays in one
// partition. It returns the topics' names.
func eosTopics(t testing.TB, c *kafkatest.Cluster, name string, keys, perKey int) (in, out string) {
	t.Helper()
	in, out = name+"-in", name+"-out"
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, in, 4, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, out, 3, 3, nil); err != nil {
		t.Fatal(err)
	}
	produce(t, c, in, keyed(keys, perKey))
	return in, out
}

// copier is an exactly-once Consumer copying in to out, run in the
// background.
type copier struct {
	c       *consume.Consumer
	stop    context.CancelFunc
	done    chan error
	handled atomic.Int64
	// abandoned: cut off from the cluster, its Run ends on its own (its
	// transaction's end times out); the test does not wait for it.
	abandoned atomic.Bool
}

// eosOpts are a copier's options: the test group options, a transactional
// id, a short session so a cut-off member leaves the group quickly.
func eosOpts(c *kafkatest.Cluster, group, txnID, in, out string, more ...kgo.Opt) []consume.ExactlyOnceOpt {
	return []consume.ExactlyOnceOpt{
		groupOpts(c, group, in),
		consume.KgoOpts(append([]kgo.Opt{kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(out),
			kgo.TransactionTimeout(3 * time.Second), kgo.SessionTimeout(1500 * time.Millisecond),
			kgo.RebalanceTimeout(5 * time.Second)}, more...)...),
		consume.DrainTimeout(2 * time.Second),
		consume.Concurrency(8),
		consume.MaxBuffered(100), // a window holds at most 100 records: the input spans many
	}
}

// startCopier starts a copier whose handler works up to work per record
// (uniformly random), so that a test's input spans several windows.
func startCopier(t *testing.T, work time.Duration, opts ...consume.ExactlyOnceOpt) *copier {
	t.Helper()
	cp := &copier{done: make(chan error, 1)}
	h := func(_ context.Context, r *kgo.Record, out *consume.Output) error {
		time.Sleep(time.Duration(rand.Int64N(int64(work) + 1)))
		out.Produce(&kgo.Record{Key: r.Key, Value: r.Value})
		cp.handled.Add(1)
		return nil
	}
	c, err := consume.NewExactlyOnce(h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp.c, cp.stop = c, cancel
	go func() { cp.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if !cp.abandoned.Load() {
			<-cp.done
		}
	})
	return cp
}

// shutdown stops the copier and returns Run's error.
func (cp *copier) shutdown(t *testing.T) error {
	t.Helper()
	cp.stop()
	select {
	case err := <-cp.done:
		cp.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30s after its context ended")
		return nil
	}
}

// readOut reads every record of out that a reader at level sees, up to an
// end mark written to each partition when it is called.
func readOut(t *testing.T, c *kafkatest.Cluster, out string, level kgo.IsolationLevel) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	p := testkit.Client(t, c.Bootstrap(), kgo.DefaultProduceTopic(out), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	mark := fmt.Sprintf("%s-%d", eosEnd, time.Now().UnixNano())
	for i := range int32(3) {
		if err := p.ProduceSync(ctx, &kgo.Record{Partition: i, Value: []byte(mark)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl := testkit.Client(t, c.Bootstrap(), kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(level), kgo.FetchMaxWait(100*time.Millisecond))
	var got []string
	for marks := 0; marks < 3; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 3 end marks of %s before the deadline; read %d records", marks, out, len(got))
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch v := string(r.Value); {
			case v == mark:
				marks++
			case !strings.HasPrefix(v, eosEnd):
				got = append(got, v)
			}
		})
	}
	return got
}

// exactlyOnce reports how the output read committed differs from the
// input (keys×perKey records "kNNN:seq"): records missing, records
// duplicated, and if ordered keys out of order. It returns the number of duplicates.
func exactlyOnce(t *testing.T, got []string, keys, perKey int, ordered bool) (dups int) {
	t.Helper()
	seen := map[string]int{}
	order := map[string][]int{}
	for _, v := range got {
		seen[v]++
		k, s := parse(t, []byte(v))
		order[k] = append(order[k], s)
	}
	var missing []string
	for _, r := range keyed(keys, perKey) {
		switch n := seen[string(r.Value)]; {
		case n == 0:
			missing = append(missing, string(r.Value))
		case n > 1:
			dups += n - 1
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d input records missing from the output read committed, e.g. %v", len(missing), keys*perKey, missing[:min(5, len(missing))])
	}
	if dups > 0 {
		t.Errorf("%d duplicates in the output read committed (%d records for %d inputs)", dups, len(got), keys*perKey)
	}
	for k, seqs := range order {
		for i := 1; ordered && i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Errorf("key %s out of order in the output: %v", k, seqs)
				break
			}
		}
	}
	return dups
}

func TestExactlyOnceCopiesEveryRecordOnceInKeyOrder(t *testing.T) {
	t.Parallel()
	c := eosCluster(t)
	for _, order := range []consume.Order{consume.KeyOrder, consume.PartitionOrder, consume.Unordered} {
		t.Run(order.String(), func(t *testing.T) {
			t.Parallel()
			const keys, perKey = 40, 25
			name := "eos-" + order.String()
			in, out := eosTopics(t, c, name, keys, perKey)
			cp := startCopier(t, 300*time.Microsecond, append(eosOpts(c, name, name+"-1", in, out), consume.OrderBy(order))...)
			waitCommittedAtEnd(t, c, name, in, 30*time.Second)
			if err := cp.shutdown(t); err != nil {
				t.Fatalf("Run: %v", err)
			}
			exactlyOnce(t, readOut(t, c, out, kgo.ReadCommitted()), keys, perKey, order != consume.Unordered)
			if st := cp.c.Stats(); st.Commits == 0 {
				t.Errorf("no transaction committed: %+v", st)
			}
		})
	}
}

// Kafka API keys of the transactional loop's steps.
const (
	keyAddOffsetsToTxn = 25
	keyEndTxn          = 26
	keyTxnOffsetCommit = 28
	keyProduce         = 0
)

// TestExactlyOnceSurvivesACrashAtEveryStepOfTheTransaction cuts a copier's
// connections at one step of its transactional loop, once it has copied a
// third of the input, and lets a replacement with the same transactional id
// finish: the output read committed holds every record once.
func TestExactlyOnceSurvivesACrashAtEveryStepOfTheTransaction(t *testing.T) {
	t.Parallel()
	c := eosCluster(t)
	for _, step := range []struct {
		name  string
		key   int16
		after bool
	}{
		{"after-produce", keyAddOffsetsToTxn, false},       // outputs flushed, offsets not added
		{"after-offsets-added", keyTxnOffsetCommit, false}, // AddOffsetsToTxn done, TxnOffsetCommit not sent
		{"before-EndTxn", keyEndTxn, false},                // TxnOffsetCommit accepted, EndTxn not sent
		{"after-EndTxn", keyEndTxn, true},                  // EndTxn sent, the next request cut
		{"mid-window", keyProduce, true},                   // after a Produce of the window's outputs
	} {
		t.Run(step.name, func(t *testing.T) {
			t.Parallel()
			const keys, perKey = 20, 40
			name := "crash-" + step.name
			in, out := eosTopics(t, c, name, keys, perKey)
			var k netcut.Dialer
			first := startCopier(t, 8*time.Millisecond, eosOpts(c, name, name+"-copier", in, out, kgo.Dialer(k.Dial))...)
			testkit.WaitFor(t, 20*time.Second, "two transactions committed", func() bool {
				return first.c.Stats().Commits >= 2
			})
			k.CutAt(step.key, step.after)
			testkit.WaitFor(t, 20*time.Second, "the cut", k.Fired)
			first.abandoned.Store(true)
			second := startCopier(t, 8*time.Millisecond, eosOpts(c, name, name+"-copier", in, out)...)
			waitCommittedAtEnd(t, c, name, in, 30*time.Second)
			if err := second.shutdown(t); err != nil {
				t.Fatalf("replacement's Run: %v", err)
			}
			exactlyOnce(t, readOut(t, c, out, kgo.ReadCommitted()), keys, perKey, true)
			t.Logf("first copier handled %d, the replacement %d, of %d", first.handled.Load(), second.handled.Load(), keys*perKey)
		})
	}
}

// TestExactlyOnceCommitWhoseAnswerIsLostEndsRunWithOutcomeUnknown: a copier's EndTxn reaches
// the coordinator, which commits, but its answer is lost (the network cut right after it was
// sent, and dials refused). Run ends with ErrTxnFailed matching produce.ErrOutcomeUnknown: the
// window did commit, so "not committed" would be a lie. A replacement resumes from the offsets
// the brokers committed, and the output read committed holds every record once.
func TestExactlyOnceCommitWhoseAnswerIsLostEndsRunWithOutcomeUnknown(t *testing.T) {
	t.Parallel()
	c := eosCluster(t)
	const keys, perKey = 20, 40
	name := "lost-end"
	in, out := eosTopics(t, c, name, keys, perKey)
	var k netcut.Dialer
	first := startCopier(t, 8*time.Millisecond, eosOpts(c, name, name+"-copier", in, out, kgo.Dialer(k.Dial),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))...)
	testkit.WaitFor(t, 20*time.Second, "two transactions committed", func() bool {
		return first.c.Stats().Commits >= 2
	})
	k.CutOnceSent(keyEndTxn)
	var err error
	select {
	case err = <-first.done:
		first.done <- err
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not end 60 s after its commit's answer was lost")
	}
	if !k.Fired() || !errors.Is(err, consume.ErrTxnFailed) || !errors.Is(err, kgproduce.ErrOutcomeUnknown) {
		t.Fatalf("Run: %v (cut %v); want ErrTxnFailed matching produce.ErrOutcomeUnknown", err, k.Fired())
	}
	second := startCopier(t, 8*time.Millisecond, eosOpts(c, name, name+"-copier", in, out)...)
	waitCommittedAtEnd(t, c, name, in, 30*time.Second)
	if err := second.shutdown(t); err != nil {
		t.Fatalf("replacement's Run: %v", err)
	}
	exactlyOnce(t, readOut(t, c, out, kgo.ReadCommitted()), keys, perKey, true)
}

// TestExactlyOnceSurvivesACrashedClientAndARebalance: a copier closed
// without committing (Crash) and replaced, and a second member joining
// mid-stream, both keep the output exactly once; the same crash with the
// at-least-once Consumer, writing its outputs with a no-loss producer,
// duplicates.
func TestExactlyOnceSurvivesACrashedClientAndARebalance(t *testing.T) {
	t.Parallel()
	c := eosCluster(t)
	const keys, perKey = 20, 60
	t.Run("crash", func(t *testing.T) {
		t.Parallel()
		in, out := eosTopics(t, c, "eos-crash", keys, perKey)
		first := startCopier(t, 8*time.Millisecond, eosOpts(c, "eos-crash", "eos-crash-1", in, out)...)
		testkit.WaitFor(t, 20*time.Second, "half the input handled", func() bool { return first.handled.Load() >= keys*perKey/2 })
		first.c.Crash()
		second := startCopier(t, 8*time.Millisecond, eosOpts(c, "eos-crash", "eos-crash-1", in, out)...)
		waitCommittedAtEnd(t, c, "eos-crash", in, 30*time.Second)
		if err := second.shutdown(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
		exactlyOnce(t, readOut(t, c, out, kgo.ReadCommitted()), keys, perKey, true)
		t.Logf("handled %d + %d for %d records", first.handled.Load(), second.handled.Load(), keys*perKey)
	})
	t.Run("rebalance", func(t *testing.T) {
		t.Parallel()
		const perKey = 100 // long enough for the second member to join before the first is done
		in, out := eosTopics(t, c, "eos-join", keys, perKey)
		first := startCopier(t, 8*time.Millisecond, eosOpts(c, "eos-join", "eos-join-1", in, out)...)
		testkit.WaitFor(t, 20*time.Second, "a third of the input handled", func() bool { return first.handled.Load() >= keys*perKey/3 })
		second := startCopier(t, 8*time.Millisecond, eosOpts(c, "eos-join", "eos-join-2", in, out)...)
		waitCommittedAtEnd(t, c, "eos-join", in, 30*time.Second)
		for _, cp := range []*copier{first, second} {
			if err := cp.shutdown(t); err != nil {
				t.Errorf("Run: %v", err)
			}
		}
		exactlyOnce(t, readOut(t, c, out, kgo.ReadCommitted()), keys, perKey, true)
		if second.handled.Load() == 0 {
			t.Errorf("the second member handled nothing: no rebalance happened")
		}
		t.Logf("handled %d + %d for %d records", first.handled.Load(), second.handled.Load(), keys*perKey)
	})
	t.Run("at-least-once-crash", func(t *testing.T) {
		t.Parallel()
		// The unsafe mode next to the safe one: the same crash, outputs
		// written outside any transaction.
		in, out := eosTopics(t, c, "alo-crash", keys, perKey)
		p, err := kgproduce.New(t.Context(), kgproduce.NoLoss, kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(out))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		var handled atomic.Int64
		h := func(ctx context.Context, r *kgo.Record) error {
			if err := p.Send(ctx, &kgo.Record{Key: r.Key, Value: r.Value}); err != nil {
				return err
			}
			handled.Add(1)
			return nil
		}
		first := start(t, h, groupOpts(c, "alo-crash", in), consume.Concurrency(16))
		testkit.WaitFor(t, 20*time.Second, "half the input handled", func() bool { return handled.Load() >= keys*perKey/2 })
		first.c.Crash()
		start(t, h, groupOpts(c, "alo-crash", in), consume.Concurrency(16))
		waitCommittedAtEnd(t, c, "alo-crash", in, 30*time.Second)
		got := readOut(t, c, out, kgo.ReadCommitted())
		dups := countDups(got)
		if dups == 0 {
			t.Errorf("the at-least-once copier wrote no duplicate after a crash: the scenario does not exercise what exactly-once prevents")
		}
		t.Logf("at-least-once after a crash: %d records read committed for %d inputs, %d duplicates", len(got), keys*perKey, dups)
	})
}

func countDups(got []string) int {
	seen := map[string]bool{}
	dups := 0
	for _, v := range got {
		if seen[v] {
			dups++
		}
		seen[v] = true
	}
	return dups
}

// TestExactlyOnceFencesAZombieMember stalls a copier (every write waits)
// just before its TxnOffsetCommit, with its window's outputs written in its
// open transaction; its session expires and a second member with another
// transactional id takes the partitions over. When the first resumes, the
// broker refuses its offsets (a stale generation, KIP-447) and its
// transaction aborts: the output read committed holds every record once.
func TestExactlyOnceFencesAZombieMember(t *testing.T) {
	t.Parallel()
	c := eosCluster(t)
	const keys, perKey = 20, 60
	in, out := eosTopics(t, c, "zombie", keys, perKey)
	var k netcut.Dialer
	first := startCopier(t, 8*time.Millisecond, eosOpts(c, "zombie", "zombie-1", in, out, kgo.Dialer(k.Dial))...)
	testkit.WaitFor(t, 20*time.Second, "a third of the input handled", func() bool { return first.handled.Load() >= keys*perKey/3 })
	k.StallAt(keyTxnOffsetCommit, false)
	testkit.WaitFor(t, 20*time.Second, "the stall", k.Fired)
	atStall := first.handled.Load()
	second := startCopier(t, 8*time.Millisecond, eosOpts(c, "zombie", "zombie-2", in, out)...)
	testkit.WaitFor(t, 20*time.Second, "the second member to copy", func() bool { return second.handled.Load() >= 100 })
	k.Release()
	waitCommittedAtEnd(t, c, "zombie", in, 30*time.Second)
	for _, cp := range []*copier{first, second} {
		if err := cp.shutdown(t); err != nil {
			t.Logf("Run: %v", err)
		}
	}
	exactlyOnce(t, readOut(t, c, out, kgo.ReadCommitted()), keys, perKey, true)
	t.Logf("the zombie handled %d before its stall, %d in all; the second member %d; of %d",
		atStall, first.handled.Load(), second.handled.Load(), keys*perKey)
}

// TestExactlyOnceDropsTheOutputOfAFailedAttempt: a handler that adds its
// output and then fails blocks its key, the other keys' windows commit
// meanwhile, and once the record is retried its output is in the output
// read committed once, in its key's order.
func TestExactlyOnceDropsTheOutputOfAFailedAttempt(t *testing.T) {
	t.Parallel()
	c := eosCluster(t)
	const keys, perKey = 10, 30
	in, out := eosTopics(t, c, "eos-fail", keys, perKey)
	const bad = "k003:7"
	var (
		attempts atomic.Int32
		cons     *consume.Consumer
	)
	h := func(_ context.Context, r *kgo.Record, o *consume.Output) error {
		o.Produce(&kgo.Record{Key: r.Key, Value: r.Value})
		if string(r.Value) == bad && attempts.Add(1) == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	}
	retried := make(chan struct{})
	onError := func(f consume.Failure) {
		go func() {
			// Let a few windows commit around the blocked key first.
			testkit.WaitFor(t, 10*time.Second, "windows committed while the key waits", func() bool { return cons.Stats().Commits >= 3 })
			if err := cons.Retry(f.Record.Topic, f.Record.Partition, f.Record.Offset); err != nil {
				t.Errorf("Retry: %v", err)
			}
			close(retried)
		}()
	}
	var err error
	cons, err = consume.NewExactlyOnce(h, append(eosOpts(c, "eos-fail", "eos-fail-1", in, out), consume.OnError(onError))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-retried:
	case <-time.After(20 * time.Second):
		t.Fatal("the failed record was not retried")
	}
	waitCommittedAtEnd(t, c, "eos-fail", in, 20*time.Second)
	exactlyOnce(t, readOut(t, c, out, kgo.ReadCommitted()), keys, perKey, true)
	if n := attempts.Load(); n != 2 {
		t.Errorf("the failing record ran %d times, want 2", n)
	}
}

// TestExactlyOnceMemberWithTheSameTransactionalIDFencesTheFirst: a second
// copier started with the first one's transactional id (a restarted pod
// while the old one still runs) fences it: the first one's Run returns an
// error matching ErrFenced and produce.ErrFenced, and the second finishes
// the copy exactly once.
func TestExactlyOnceMemberWithTheSameTransactionalIDFencesTheFirst(t *testing.T) {
	t.Parallel()
	c := eosCluster(t)
	const keys, perKey = 20, 60
	in, out := eosTopics(t, c, "fence", keys, perKey)
	first := startCopier(t, 8*time.Millisecond, eosOpts(c, "fence", "fence-1", in, out)...)
	testkit.WaitFor(t, 20*time.Second, "two transactions committed", func() bool { return first.c.Stats().Commits >= 2 })
	second := startCopier(t, 8*time.Millisecond, eosOpts(c, "fence", "fence-1", in, out)...)
	var err error
	select {
	case err = <-first.done:
		first.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("the fenced copier's Run did not return")
	}
	if !errors.Is(err, consume.ErrFenced) || !errors.Is(err, kgproduce.ErrFenced) {
		t.Errorf("the first copier's Run returned %v, want ErrFenced", err)
	}
	waitCommittedAtEnd(t, c, "fence", in, 30*time.Second)
	if err := second.shutdown(t); err != nil {
		t.Fatalf("the second copier's Run: %v", err)
	}
	exactlyOnce(t, readOut(t, c, out, kgo.ReadCommitted()), keys, perKey, true)
}
