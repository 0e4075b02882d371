package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/netcut"
)

// envTxnRecords sets how many records transactionalCopy seeds (default
// defaultTxnRecords; CI's integration steps use Kafka's system-test size,
// 100,000).
const envTxnRecords = "KAFKAGUARD_TXN_RECORDS"

const defaultTxnRecords = 6000

// transactionalCopy is Kafka's transactions system test
// (tests/kafkatest/tests/core/transactions_test.py) against any cluster:
// a seeded input — topic in with 2 partitions and topic in1 with 1 — is
// copied by three copiers of one group, each a franz-go
// GroupTransactSession (consume-transform-produce: the output records and
// the input offsets commit in one transaction), to out (3 partitions, by
// key) and out1 (1 partition). While they copy, every copier is killed
// three times (its connections cut mid-transaction, no leave, no abort) and
// restarted with the same transactional id and group instance id, then the
// leader of an input partition and the transaction coordinator of a copier
// are killed and restarted. A read_committed consumer reads the outputs
// concurrently. Checked: no record copied twice, output = input, per-key
// order in out, and out1 in exactly in1's order.
func transactionalCopy(t *testing.T, c Cluster) {
	res := copyTransactionally(t, c, kgo.ReadCommitted())
	if len(res.dups) > 0 {
		t.Fatalf("%d records copied twice, e.g. %v", len(res.dups), firstN(res.dups, 5))
	}
	if len(res.missing) > 0 || res.read != res.want {
		t.Fatalf("output has %d records, input %d; %d missing, e.g. %v", res.read, res.want, len(res.missing), firstN(res.missing, 5))
	}
	if len(res.outOfOrder) > 0 {
		t.Fatalf("%d records out of their key's order, e.g. %v", len(res.outOfOrder), firstN(res.outOfOrder, 5))
	}
	t.Logf("copied %d records exactly once, in order, through 9 copier crashes and kills of brokers %d (leader) and %d (coordinator)",
		res.read, res.leader, res.coordinator)
}

// unconfirmedCommit is a transaction whose EndTxn the coordinator serves but whose answer the
// copier never gets: its network is cut right after the request is sent, and healed once End
// has given up. End reports the commit failed; the brokers commit it all the same, as Kafka
// serves a request whose client has gone. A session told to abort and go on would rewind to
// the offsets it last saw committed and could copy the committed window again (TransactionalCopy
// did, once in about ten runs, when a coordinator was killed at that moment); a new session, as
// a copier starts one after a failed end, reads the committed offsets from the brokers and
// resumes after the window.
func unconfirmedCommit(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, v, stop := singleCopier(ctx, t, c, "txn-unconfirmed")
	defer stop()

	// window begins a transaction and polls the next n records, returning them; the caller
	// copies and ends.
	window := func(sess *kgo.GroupTransactSession, n int) []*kgo.Record {
		t.Helper()
		if err := sess.Begin(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		var got []*kgo.Record
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for len(got) < n && pctx.Err() == nil {
			sess.PollRecords(pctx, n-len(got)).EachRecord(func(r *kgo.Record) { got = append(got, r) })
		}
		if len(got) < n {
			t.Fatalf("polled %d records of %s, want %d", len(got), cp.in, n)
		}
		return got
	}
	copyAll := func(sess *kgo.GroupTransactSession, rs []*kgo.Record) {
		for _, r := range rs {
			sess.Produce(ctx, cp.copyOf(r), nil)
		}
	}
	waitRead := func(n int, what string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := v.waitProgress(wctx, n); err != nil {
			t.Fatalf("%s: a read_committed reader read %d copies, want %d", what, v.count(), n)
		}
	}

	d := &netcut.Dialer{}
	sess, err := cp.session(d)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sess.Close() }()
	seedFrom(ctx, t, c, cp.in, 0, 20, 1)
	copyAll(sess, window(sess, 20))
	if committed, err := sess.End(ctx, kgo.TryCommit); !committed || err != nil {
		t.Fatalf("first transaction: committed %v, %v", committed, err)
	}
	waitRead(20, "after the first commit")

	seedFrom(ctx, t, c, cp.in, 20, 20, 1)
	copyAll(sess, window(sess, 20))
	d.CutOnceSent(apiEndTxn)
	committed, err := sess.End(ctx, kgo.TryCommit)
	if !d.Fired() || committed || err == nil {
		t.Fatalf("second transaction, its EndTxn's answer lost: cut %v, committed %v, err %v; want a failed end", d.Fired(), committed, err)
	}
	t.Logf("End reported the commit failed: %v", err)
	d.Heal()
	waitRead(40, "the brokers committed the transaction whose answer was lost")
	sess.Close()

	// A new session resumes after the committed window.
	if sess, err = cp.session(&netcut.Dialer{}); err != nil {
		t.Fatal(err)
	}
	seedFrom(ctx, t, c, cp.in, 40, 10, 1)
	rs := window(sess, 10)
	if rs[0].Offset != 40 {
		t.Fatalf("a new session began at offset %d, want 40 (the committed offset)", rs[0].Offset)
	}
	copyAll(sess, rs)
	if committed, err := sess.End(ctx, kgo.TryCommit); !committed || err != nil {
		t.Fatalf("the new session's transaction: committed %v, %v", committed, err)
	}
	waitRead(50, "after the new session's commit")
	sleepCtx(ctx, 300*time.Millisecond) // a late duplicate is still read
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.dups) > 0 || len(v.outOfOrder) > 0 || len(v.seen) != 50 {
		t.Fatalf("read %d copies of 50 inputs; copied twice: %v; out of order: %v", len(v.seen), firstN(v.dups, 5), firstN(v.outOfOrder, 5))
	}
}

// copierAfterUnconfirmedCommit runs the copier's own loop (copier.start) into the fault of
// unconfirmedCommit: after its first commit the next EndTxn's answer is lost, and the network
// heals as soon as End has given up. The copier must copy every record once: one that aborts
// and goes on (what it did before) polls the committed window again and copies it twice.
func copierAfterUnconfirmedCommit(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, v, stop := singleCopier(ctx, t, c, "txn-unconfirmed-copier")
	defer stop()

	var ends, cuts atomic.Int32
	cp.onEnd = func(d *netcut.Dialer, committed bool, err error) {
		switch {
		case committed && ends.Add(1) == 1:
			// The next window's records, and the cut that loses its EndTxn's answer.
			seedFrom(ctx, t, c, cp.in, 20, 20, 1)
			d.CutOnceSent(apiEndTxn)
		case err != nil && d.Fired():
			cuts.Add(1)
			d.Heal()
		}
	}
	seedFrom(ctx, t, c, cp.in, 0, 20, 1)
	cp.start(ctx)
	defer cp.stop()
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := v.waitProgress(wctx, 40); err != nil {
		t.Fatalf("copied %d of 40 records (copier errors: %v)", v.count(), copierErrs([]*copier{cp}))
	}
	sleepCtx(ctx, time.Second) // a window copied again is still read
	v.mu.Lock()
	defer v.mu.Unlock()
	if cuts.Load() == 0 {
		t.Fatal("no transaction end failed on the lost answer: the fault did not land")
	}
	if len(v.dups) > 0 || len(v.outOfOrder) > 0 || len(v.seen) != 40 {
		t.Fatalf("read %d copies of 40 inputs; copied twice: %d, e.g. %v; out of order: %v", len(v.seen), len(v.dups), firstN(v.dups, 5), firstN(v.outOfOrder, 5))
	}
}

// singleCopier creates the one-partition topics of a copier of group (a fresh name from the
// prefix) and starts a read_committed reader of its output; stop stops the reader.
func singleCopier(ctx context.Context, t *testing.T, c Cluster, group string) (cp *copier, v *txnVerifier, stop func()) {
	t.Helper()
	adm := newAdmin(t, c)
	cp = &copier{c: c, group: uniqueName(group), in: uniqueName("txn-in"), in1: uniqueName("txn-in1"),
		out: uniqueName("txn-out"), out1: uniqueName("txn-out1"), logf: t.Logf}
	for _, topic := range []string{cp.in, cp.in1, cp.out, cp.out1} {
		createTopic(ctx, t, c, adm, topic, 1, 1, nil)
	}
	v = newTxnVerifier(0)
	vctx, vcancel := context.WithCancel(ctx)
	vdone := make(chan error, 1)
	go func() { vdone <- v.read(vctx, c, kgo.ReadCommitted(), cp.out) }()
	return cp, v, func() { vcancel(); <-vdone }
}

// txnCopyResult is what the reader of a transactional copy found.
type txnCopyResult struct {
	want, read          int
	dups, missing       []string
	outOfOrder          []string
	leader, coordinator int32 // the brokers killed
}

// copyTransactionally runs transactionalCopy's copy and faults, its reader
// reading the outputs at the given isolation level, and returns what the
// reader found. It fails t only when the run cannot be carried out.
func copyTransactionally(t *testing.T, c Cluster, isolation kgo.IsolationLevel) txnCopyResult {
	n := defaultTxnRecords
	if v := os.Getenv(envTxnRecords); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			t.Fatalf("%s=%q: want a number of records, at least 100", envTxnRecords, v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	adm := newAdmin(t, c)
	in, in1 := uniqueName("txn-in"), uniqueName("txn-in1")
	out, out1 := uniqueName("txn-out"), uniqueName("txn-out1")
	group := uniqueName("txn-copiers")
	createTopic(ctx, t, c, adm, in, 2, 3, hardened)
	createTopic(ctx, t, c, adm, in1, 1, 3, hardened)
	createTopic(ctx, t, c, adm, out, 3, 3, hardened)
	createTopic(ctx, t, c, adm, out1, 1, 3, hardened)

	// The seeded input: in gets n records over 50 keys, in1 n/4 in one sequence.
	n1 := n / 4
	seed(ctx, t, c, in, n, 50)
	seed(ctx, t, c, in1, n1, 1)
	t.Logf("seeded %d records in %s and %d in %s; copying with 3 transactional copiers", n, in, n1, in1)

	v := newTxnVerifier(n + n1)
	vctx, vcancel := context.WithCancel(ctx)
	vdone := make(chan error, 1)
	go func() { vdone <- v.read(vctx, c, isolation, out, out1) }()
	defer func() { vcancel(); <-vdone }()

	copiers := make([]*copier, 3)
	for i := range copiers {
		copiers[i] = &copier{c: c, id: i, group: group, in: in, in1: in1, out: out, out1: out1, logf: t.Logf}
		copiers[i].start(ctx)
	}
	defer func() {
		for _, cp := range copiers {
			cp.stop()
		}
	}()

	// The faults, at points of the output's progress: nine copier crashes,
	// then the leader of in-0, then the coordinator of copier 0.
	at := func(frac float64, what string) {
		t.Helper()
		if err := v.waitProgress(ctx, int(frac*float64(n+n1))); err != nil {
			t.Fatalf("before %s: %v (read %d of %d)", what, err, v.count(), n+n1)
		}
	}
	for round := range 3 {
		for i, cp := range copiers {
			frac := 0.05 + float64(round*3+i)*0.05
			at(frac, fmt.Sprintf("crash %d of copier %d", round+1, i))
			cp.crash()
			cp.start(ctx)
		}
	}
	at(0.55, "killing the leader of "+in+"-0")
	parts, err := partitions(ctx, adm, in)
	if err != nil {
		t.Fatal(err)
	}
	leader := parts[0].Leader
	if err := c.Kill(ctx, leader); err != nil {
		skipIfUnsupported(t, fmt.Sprintf("kill broker %d", leader), err)
	}
	t.Logf("killed broker %d, the leader of %s-0", leader, in)
	at(0.65, "restarting the killed leader")
	if err := c.Restart(ctx, leader); err != nil {
		t.Fatalf("restart broker %d: %v", leader, err)
	}
	waitTopic(ctx, t, adm, in, "the restarted broker back in every ISR", partitionState.fullISR)
	coord := adm.FindTxnCoordinators(ctx, copiers[0].txnID())
	if err := coord.Error(); err != nil {
		t.Fatalf("find the transaction coordinator of %s: %v", copiers[0].txnID(), err)
	}
	victim := coord[copiers[0].txnID()].NodeID
	at(0.7, "killing the transaction coordinator")
	if err := c.Kill(ctx, victim); err != nil {
		t.Fatalf("kill broker %d: %v", victim, err)
	}
	t.Logf("killed broker %d, the transaction coordinator of %s", victim, copiers[0].txnID())
	at(0.8, "restarting the killed coordinator")
	if err := c.Restart(ctx, victim); err != nil {
		t.Fatalf("restart broker %d: %v", victim, err)
	}

	if err := v.waitProgress(ctx, n+n1); err != nil {
		t.Fatalf("the copy did not finish: %v (read %d of %d; copier errors: %v)", err, v.count(), n+n1, copierErrs(copiers))
	}
	// A moment more, so a duplicate committed late is still seen.
	sleepCtx(ctx, 500*time.Millisecond)
	vcancel()
	if err := <-vdone; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("read_committed reader: %v", err)
	}
	vdone <- nil // for the deferred receive

	v.mu.Lock()
	defer v.mu.Unlock()
	want := map[string]bool{}
	for i := range n {
		want[keyedValue(fmt.Sprintf("k%02d", i%50), i/50)] = true
	}
	for i := range n1 {
		want[keyedValue("k00", i)+"/1"] = true
	}
	res := txnCopyResult{want: len(want), read: len(v.seen), dups: v.dups, outOfOrder: v.outOfOrder, leader: leader, coordinator: victim}
	for w := range want {
		if !v.seen[w] {
			res.missing = append(res.missing, w)
		}
	}
	slices.Sort(res.missing)
	return res
}

// seed writes n keyed records to topic (keys k00..k(keys-1), each key's
// sequence in order) with an idempotent acks=all producer.
func seed(ctx context.Context, t *testing.T, c Cluster, topic string, n, keys int) {
	t.Helper()
	seedFrom(ctx, t, c, topic, 0, n, keys)
}

// seedFrom writes records from to from+n-1 of seed's sequence.
func seedFrom(ctx context.Context, t *testing.T, c Cluster, topic string, from, n, keys int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var failed atomic.Pointer[error]
	for i := from; i < from+n; i++ {
		k := fmt.Sprintf("k%02d", i%keys)
		cl.Produce(ctx, &kgo.Record{Key: []byte(k), Value: []byte(keyedValue(k, i/keys))}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if e := failed.Load(); e != nil {
		t.Fatalf("seed %s: %v", topic, *e)
	}
}

// copier is one member of the copying group: a GroupTransactSession that a
// crash cuts off (every connection closed, dials refused) and abandons.
type copier struct {
	c                         Cluster
	id                        int
	group, in, in1, out, out1 string
	logf                      func(string, ...any)
	// onEnd, if set, sees each transaction's end in run, with the incarnation's network.
	onEnd func(d *netcut.Dialer, committed bool, err error)

	mu     sync.Mutex
	cancel context.CancelFunc
	net    *netcut.Dialer
	done   chan struct{}
	errs   []error
}

func (cp *copier) txnID() string { return fmt.Sprintf("%s-copier-%d", cp.group, cp.id) }

// start runs a new incarnation of the copier, with the same transactional
// id and group instance id as the last one. An incarnation whose session
// fails (kgo gives up on a producer ID while a broker is down, or a
// transaction's end fails) starts a new session at once, as a supervisor
// restarts a process that exited: with the same group instance id it takes
// its partitions back without waiting for the session timeout.
func (cp *copier) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	d := &netcut.Dialer{}
	done := make(chan struct{})
	cp.mu.Lock()
	cp.cancel, cp.net, cp.done = cancel, d, done
	cp.mu.Unlock()
	go func() {
		defer close(done)
		for {
			err := cp.run(ctx, d)
			if err == nil || ctx.Err() != nil {
				return
			}
			cp.mu.Lock()
			cp.errs = append(cp.errs, err)
			cp.mu.Unlock()
			cp.logf("copier %d: %v; starting a new session", cp.id, err)
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}()
}

// session is a new incarnation's GroupTransactSession: it joins the group with the copier's
// group instance id and reads the group's committed offsets from the brokers.
func (cp *copier) session(d *netcut.Dialer) (*kgo.GroupTransactSession, error) {
	return kgo.NewGroupTransactSession(
		kgo.SeedBrokers(cp.c.Bootstrap()...),
		kgo.Dialer(d.Dial),
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.TransactionalID(cp.txnID()),
		kgo.TransactionTimeout(10*time.Second),
		kgo.ConsumerGroup(cp.group),
		kgo.InstanceID(fmt.Sprintf("copier-%d", cp.id)),
		kgo.SessionTimeout(6*time.Second),
		kgo.ConsumeTopics(cp.in, cp.in1),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	)
}

// run copies until ctx ends or a transaction's end fails. A failed end ends the session: its
// outcome may be unknown (an EndTxn the coordinator served but whose answer was lost), and
// franz-go's session, told to abort, would rewind to the offsets it last saw committed and copy
// a committed window again. The next session reads the committed offsets from the brokers, as
// Kafka's TransactionalMessageCopier does after a failed commit.
func (cp *copier) run(ctx context.Context, d *netcut.Dialer) error {
	sess, err := cp.session(d)
	if err != nil {
		return err
	}
	defer sess.Close()
	for ctx.Err() == nil {
		// Begin before polling: the first Begin initializes the producer
		// ID, which fences the previous incarnation and aborts its open
		// transaction at once, as Kafka's TransactionalMessageCopier does
		// with initTransactions() before it consumes. Polling first waited
		// on that transaction's pending offsets (UNSTABLE_OFFSET_COMMIT)
		// until its timeout aborted it, 10-20 s.
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		fs := sess.PollRecords(ctx, 100)
		if fs.IsClientClosed() {
			return nil
		}
		fs.EachRecord(func(r *kgo.Record) { sess.Produce(ctx, cp.copyOf(r), nil) })
		committed, err := sess.End(ctx, kgo.TryCommit)
		if cp.onEnd != nil {
			cp.onEnd(d, committed, err)
		}
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("end transaction (committed %v): %w", committed, err)
		}
	}
	return nil
}

// copyOf is the output record of an input record.
func (cp *copier) copyOf(r *kgo.Record) *kgo.Record {
	if r.Topic == cp.in1 {
		return &kgo.Record{Topic: cp.out1, Key: r.Key, Value: append(r.Value, "/1"...)}
	}
	return &kgo.Record{Topic: cp.out, Key: r.Key, Value: r.Value}
}

// crash cuts the copier's network and waits for its incarnation to end; it
// neither leaves the group nor ends its transaction.
func (cp *copier) crash() {
	cp.mu.Lock()
	d, cancel, done := cp.net, cp.cancel, cp.done
	cp.mu.Unlock()
	d.Cut()
	cancel()
	<-done
}

func (cp *copier) stop() {
	cp.mu.Lock()
	cancel, done := cp.cancel, cp.done
	cp.mu.Unlock()
	cancel()
	<-done
}

func copierErrs(cs []*copier) []error {
	var out []error
	for _, cp := range cs {
		cp.mu.Lock()
		out = append(out, cp.errs...)
		cp.mu.Unlock()
	}
	return out
}

// txnVerifier is the read_committed reader of the outputs.
type txnVerifier struct {
	want       int
	mu         sync.Mutex
	seen       map[string]bool
	last       map[string]int // key (and output) -> last sequence read
	dups       []string
	outOfOrder []string
	progress   chan struct{}
}

func newTxnVerifier(want int) *txnVerifier {
	return &txnVerifier{want: want, seen: map[string]bool{}, last: map[string]int{}, progress: make(chan struct{}, 1)}
}

func (v *txnVerifier) read(ctx context.Context, c Cluster, isolation kgo.IsolationLevel, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(isolation), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			val := string(r.Value)
			if v.seen[val] {
				v.dups = append(v.dups, fmt.Sprintf("%s (%s-%d@%d)", val, r.Topic, r.Partition, r.Offset))
				return
			}
			v.seen[val] = true
			key, seq, err := parseKeyedValue(trimSuffix1(val))
			if err != nil {
				v.outOfOrder = append(v.outOfOrder, fmt.Sprintf("%q: %v", val, err))
				return
			}
			k := r.Topic + "/" + key
			if last, ok := v.last[k]; ok && seq != last+1 || !ok && seq != 0 {
				v.outOfOrder = append(v.outOfOrder, fmt.Sprintf("%s after %s:%d (%s-%d@%d)", val, key, last, r.Topic, r.Partition, r.Offset))
			}
			v.last[k] = seq
		})
		v.mu.Unlock()
		select {
		case v.progress <- struct{}{}:
		default:
		}
	}
}

func trimSuffix1(s string) string {
	if len(s) > 2 && s[len(s)-2:] == "/1" {
		return s[:len(s)-2]
	}
	return s
}

func (v *txnVerifier) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.seen)
}

// waitProgress waits until the reader has seen at least n distinct records.
func (v *txnVerifier) waitProgress(ctx context.Context, n int) error {
	for v.count() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-v.progress:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
