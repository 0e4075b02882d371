package partition

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// clock is a settable time source for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// isrProposals records the ISR changes a replica asks the controller for.
type isrProposals struct {
	mu  sync.Mutex
	got [][]int32
	ch  chan []int32
}

func newISRProposals() *isrProposals { return &isrProposals{ch: make(chan []int32, 16)} }

func (p *isrProposals) alter(_ context.Context, _, _ int32, isr []int32) error {
	p.mu.Lock()
	p.got = append(p.got, slices.Clone(isr))
	p.mu.Unlock()
	p.ch <- slices.Clone(isr)
	return nil
}

// next returns the next ISR change proposed while calling act repeatedly,
// as a broker calls CheckISR and serves fetches: a replica proposes one
// change at a time and drops others until the one in flight returns.
func (p *isrProposals) next(t *testing.T, act func()) []int32 {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		act()
		select {
		case isr := <-p.ch:
			return isr
		case <-deadline:
			t.Fatal("no ISR change was proposed")
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// none fails the test if r has proposed an ISR change. A replica decides
// to propose under its lock, in the call that saw the reason, so after
// that call returns a proposal is either pending on r or already sent.
func (p *isrProposals) none(t *testing.T, r *Replica) {
	t.Helper()
	r.mu.Lock()
	pending := r.proposal
	r.mu.Unlock()
	if pending != nil {
		t.Fatalf("unexpected ISR change proposed: %v", pending.isr)
	}
	select {
	case isr := <-p.ch:
		t.Fatalf("unexpected ISR change proposed: %v", isr)
	default:
	}
}

type fixture struct {
	dir   string
	cfg   Config
	clock *clock
	isr   *isrProposals
}

// newFixture returns the configuration of broker 1's replica of t-0.
func newFixture(t *testing.T, minISR int) *fixture {
	f := &fixture{dir: t.TempDir(), clock: &clock{now: time.Unix(1_700_000_000, 0)}, isr: newISRProposals()}
	f.cfg = Config{
		BrokerID: 1, Topic: "t", Partition: 0,
		MinISR: minISR, MaxMessageBytes: 1 << 20, ReplicaLagMax: 10 * time.Second,
		AlterISR: f.isr.alter, Now: f.clock.Now,
	}
	return f
}

func (f *fixture) open(t *testing.T) *Replica {
	t.Helper()
	r, err := Open(f.dir, f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// leader opens the replica and makes it leader of replicas 1, 2, 3 with the given ISR.
func (f *fixture) leader(t *testing.T, isr ...int32) *Replica {
	t.Helper()
	r := f.open(t)
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: isr, Leader: 1, LeaderEpoch: 1, Epoch: 1})
	if !r.IsLeader() {
		t.Fatal("replica did not become leader")
	}
	return r
}

func batch(n int, p records.Producer) []byte {
	recs := make([]records.Record, n)
	for i := range recs {
		recs[i] = records.Record{Value: []byte{byte('a' + i)}}
	}
	return records.Build(recs, 1_700_000_000_000, p)
}

var plain = records.NoProducer

// fetch reports a follower's fetch at offset and fails the test on an error.
func fetch(t *testing.T, r *Replica, follower int32, offset int64) ReadResult {
	t.Helper()
	res, err := r.Read(FetchRequest{Offset: offset, MaxBytes: 1 << 20, ReplicaID: follower, CurrentLeaderEpoch: -1})
	if err != nil {
		t.Fatalf("fetch by %d at %d: %v", follower, offset, err)
	}
	return res
}

func consume(t *testing.T, r *Replica, offset int64) int {
	t.Helper()
	res, err := r.Read(FetchRequest{Offset: offset, MaxBytes: 1 << 20, ReplicaID: -1, CurrentLeaderEpoch: -1})
	if err != nil {
		t.Fatalf("consume at %d: %v", offset, err)
	}
	bs, err := records.Decode(res.Records)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range bs {
		n += len(b.Recs)
	}
	return n
}

func TestAcksAllAnswersOnceEveryISRMemberHasTheBatch(t *testing.T) {
	f := newFixture(t, 2)
	r := f.leader(t, 1, 2, 3)

	// Offsets 0-1 and 2: followers copy whole batches, so their log ends
	// (and the high watermark) fall on batch boundaries.
	if _, err := r.Append(t.Context(), batch(2, plain), 0); err != nil {
		t.Fatal(err)
	}
	done := appendWaiting(t, r, batch(1, plain))

	// The leader has it, no follower does: not committed, invisible to
	// consumers, not acknowledged.
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d before any follower fetched", hw)
	}
	if n := consume(t, r, 0); n != 0 {
		t.Fatalf("a consumer read %d uncommitted records", n)
	}
	fetch(t, r, 2, 3)
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d while ISR member 3 has nothing", hw)
	}
	if n := waitingAcks(r); n != 1 {
		t.Fatalf("%d acks=all produces waiting, want 1: answered before every ISR member had the batch", n)
	}
	// Follower 3 copies the first batch only: the HW is the smallest LEO.
	fetch(t, r, 3, 2)
	if hw := r.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark %d, want 2 (the smallest ISR LEO)", hw)
	}
	if n := consume(t, r, 0); n != 2 {
		t.Fatalf("a consumer read %d records, want the 2 below the high watermark", n)
	}
	fetch(t, r, 3, 3)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("acks=all: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acks=all not answered after every ISR member fetched past it")
	}
	if hw := r.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark %d, want 3", hw)
	}
}

// appendWaiting appends b with acks=all on another goroutine, waits until the leader has
// appended it and the produce waits for its answer (or has it), and returns where the
// produce's outcome will arrive.
func appendWaiting(t *testing.T, r *Replica, b []byte) <-chan error {
	t.Helper()
	leo, waiting := r.State().LEO, waitingAcks(r)
	done := make(chan error, 1)
	go func() {
		_, err := r.Append(t.Context(), b, -1)
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for r.State().LEO == leo || waitingAcks(r) == waiting && len(done) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("log end offset %d (was %d), %d produces waiting (were %d)", r.State().LEO, leo, waitingAcks(r), waiting)
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

// waitingAcks returns how many acks=all produces wait for the high watermark.
func waitingAcks(r *Replica) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiters)
}

func TestMinInsyncReplicasRefusesAcksAllBeforeAppending(t *testing.T) {
	f := newFixture(t, 2)
	r := f.leader(t, 1)
	_, err := r.Append(t.Context(), batch(1, plain), -1)
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all with ISR [1] and min.insync.replicas=2: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	if leo := r.State().LEO; leo != 0 {
		t.Fatalf("a refused batch was appended: log end %d", leo)
	}
	// acks=1 does not look at the ISR; below the minimum the record is not committed.
	res, err := r.Append(t.Context(), batch(1, plain), 1)
	if err != nil || res.BaseOffset != 0 {
		t.Fatalf("acks=1: %+v, %v", res, err)
	}
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d with the leader alone in the ISR below the minimum, want 0", hw)
	}
}

func TestAcksAllTimesOutButTheBatchStaysAppended(t *testing.T) {
	f := newFixture(t, 2)
	r := f.leader(t, 1, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := r.Append(ctx, batch(2, plain), -1)
	if !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("acks=all with a silent follower: %v, want REQUEST_TIMED_OUT", err)
	}
	if leo := r.State().LEO; leo != 2 {
		t.Fatalf("log end %d: the leader must keep what it appended (the outcome is unknown, not failed)", leo)
	}
	// The follower catches up later: the records become committed.
	fetch(t, r, 2, 2)
	if hw := r.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark %d, want 2", hw)
	}
}

func TestAcksAllAfterTheISRShrankBelowTheMinimum(t *testing.T) {
	f := newFixture(t, 2)
	r := f.leader(t, 1, 2)
	done := appendWaiting(t, r, batch(1, plain))
	// The controller removes follower 2: the leader alone is the ISR, below the minimum, and
	// the high watermark stays (Kafka >= 3.7): the produce is not answered.
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 1, Epoch: 2})
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d with the ISR below the minimum, want 0", hw)
	}
	if n := waitingAcks(r); n != 1 {
		t.Fatalf("%d acks=all produces waiting, want 1: answered while the ISR is below the minimum", n)
	}
	// 2 is back with the batch: committed, and acknowledged.
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, Epoch: 3})
	fetch(t, r, 2, 1)
	if err := <-done; err != nil {
		t.Fatalf("acks=all once committed: %v", err)
	}

	// The high watermark passed a batch, then the ISR shrank before its produce waited: the
	// answer is NOT_ENOUGH_REPLICAS_AFTER_APPEND (the batch is committed, the ISR too small).
	if _, err := r.Append(t.Context(), batch(1, plain), 1); err != nil {
		t.Fatal(err)
	}
	fetch(t, r, 2, 2)
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 1, Epoch: 4})
	if err := r.waitHW(t.Context(), 1, 1); !errors.Is(err, kerr.NotEnoughReplicasAfterAppend) {
		t.Fatalf("acks=all = %v, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", err)
	}
}

func TestLeaderChangeFailsWaitingProducesAsNotLeader(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1, 2)
	done := appendWaiting(t, r, batch(1, plain))
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 2, Epoch: 2})
	if err := <-done; !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("waiting produce after a leader change: %v, want NOT_LEADER_OR_FOLLOWER", err)
	}
	if _, err := r.Append(t.Context(), batch(1, plain), 1); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("produce to a follower: %v, want NOT_LEADER_OR_FOLLOWER", err)
	}
	_, err := r.Read(FetchRequest{Offset: 0, MaxBytes: 1 << 20, ReplicaID: -1, CurrentLeaderEpoch: -1})
	if !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("fetch from a follower: %v, want NOT_LEADER_OR_FOLLOWER", err)
	}
}

func TestFetchWithAnotherLeaderEpochIsFenced(t *testing.T) {
	f := newFixture(t, 1)
	r := f.open(t)
	r.Apply(meta.Partition{Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 5, Epoch: 1})
	for epoch, want := range map[int32]error{4: kerr.FencedLeaderEpoch, 6: kerr.UnknownLeaderEpoch} {
		_, err := r.Read(FetchRequest{Offset: 0, MaxBytes: 1 << 20, ReplicaID: -1, CurrentLeaderEpoch: epoch})
		if !errors.Is(err, want) {
			t.Errorf("fetch in epoch %d: %v, want %v", epoch, err, want)
		}
	}
	if _, err := r.Read(FetchRequest{Offset: 0, MaxBytes: 1 << 20, ReplicaID: -1, CurrentLeaderEpoch: 5}); err != nil {
		t.Fatalf("fetch in the current epoch: %v", err)
	}
}

func TestIdempotentProducerDeduplicatesRefusesGapsAndFencesOldEpochs(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1)
	ctx := t.Context()
	p := func(epoch int16, seq int32) records.Producer {
		return records.Producer{ID: 7, Epoch: epoch, Sequence: seq}
	}
	appendOK := func(b []byte, wantBase int64, wantDup bool) {
		t.Helper()
		res, err := r.Append(ctx, b, -1)
		if err != nil || res.BaseOffset != wantBase || res.Duplicate != wantDup {
			t.Fatalf("append: %+v, %v; want base %d duplicate %v", res, err, wantBase, wantDup)
		}
	}

	appendOK(batch(3, p(0, 0)), 0, false) // offsets 0-2, sequences 0-2
	appendOK(batch(2, p(0, 3)), 3, false) // offsets 3-4, sequences 3-4
	// A retry of either batch is answered with its first offsets and not
	// written again.
	appendOK(batch(3, p(0, 0)), 0, true)
	appendOK(batch(2, p(0, 3)), 3, true)
	if leo := r.State().LEO; leo != 5 {
		t.Fatalf("log end %d after duplicates, want 5", leo)
	}
	// A gap: sequence 6 does not follow 4.
	if _, err := r.Append(ctx, batch(1, p(0, 6)), -1); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("sequence gap: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", err)
	}
	// A new epoch must start at sequence 0; after it, the old epoch is fenced.
	if _, err := r.Append(ctx, batch(1, p(1, 5)), -1); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("new epoch at sequence 5: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", err)
	}
	appendOK(batch(1, p(1, 0)), 5, false)
	if _, err := r.Append(ctx, batch(1, p(0, 5)), -1); !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("old epoch after a new one: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if leo := r.State().LEO; leo != 6 {
		t.Fatalf("log end %d after refusals, want 6", leo)
	}
}

func TestIdempotentWindowIsTheLastFiveBatches(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1)
	ctx := t.Context()
	for seq := range int32(6) {
		if _, err := r.Append(ctx, batch(1, records.Producer{ID: 9, Epoch: 0, Sequence: seq}), 1); err != nil {
			t.Fatal(err)
		}
	}
	// Sequences 1-5 are remembered: a retry of 1 is a duplicate.
	res, err := r.Append(ctx, batch(1, records.Producer{ID: 9, Epoch: 0, Sequence: 1}), 1)
	if err != nil || !res.Duplicate || res.BaseOffset != 1 {
		t.Fatalf("retry of the 5th newest batch: %+v, %v; want a duplicate at offset 1", res, err)
	}
	// Sequence 0 fell out of the window: it is not written again, but
	// refused, as Kafka does.
	_, err = r.Append(ctx, batch(1, records.Producer{ID: 9, Epoch: 0, Sequence: 0}), 1)
	if !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("retry of the 6th newest batch: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", err)
	}
	if leo := r.State().LEO; leo != 6 {
		t.Fatalf("log end %d, want 6", leo)
	}
}

func TestProducerStateIsRebuiltFromTheLogOnOpen(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1)
	ctx := t.Context()
	if _, err := r.Append(ctx, batch(2, records.Producer{ID: 3, Epoch: 2, Sequence: 0}), 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := f.leader(t, 1)
	res, err := r2.Append(ctx, batch(2, records.Producer{ID: 3, Epoch: 2, Sequence: 0}), 1)
	if err != nil || !res.Duplicate || res.BaseOffset != 0 {
		t.Fatalf("retry after a restart: %+v, %v; want a duplicate at offset 0", res, err)
	}
	if _, err := r2.Append(ctx, batch(1, records.Producer{ID: 3, Epoch: 1, Sequence: 0}), 1); !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("older epoch after a restart: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if _, err := r2.Append(ctx, batch(1, records.Producer{ID: 3, Epoch: 2, Sequence: 2}), 1); err != nil {
		t.Fatalf("next sequence after a restart: %v", err)
	}
}

func TestFollowerLeavesTheISRAfterTheLagBoundAndRejoinsWhenCaughtUp(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1, 2, 3)
	ctx := t.Context()
	if _, err := r.Append(ctx, batch(4, plain), 1); err != nil {
		t.Fatal(err)
	}
	fetch(t, r, 2, 4)
	fetch(t, r, 3, 1) // behind

	f.clock.Advance(9 * time.Second)
	fetch(t, r, 2, 4)
	r.CheckISR()
	f.isr.none(t, r) // within the bound, lagging or not

	// Follower 3 keeps fetching but never reaches the leader's end;
	// follower 2 keeps up. Past the bound, only 3 is dropped.
	f.clock.Advance(2 * time.Second)
	fetch(t, r, 3, 2)
	fetch(t, r, 2, 4)
	if got := f.isr.next(t, r.CheckISR); !slices.Equal(got, []int32{1, 2}) {
		t.Fatalf("proposed ISR %v, want [1 2]", got)
	}
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, Epoch: 2})
	// Out of the ISR, 3 no longer holds the high watermark back.
	if hw := r.HighWatermark(); hw != 4 {
		t.Fatalf("high watermark %d with ISR [1 2] at LEO 4, want 4", hw)
	}

	// 3 reaches the high watermark: it is proposed back.
	if got := f.isr.next(t, func() { fetch(t, r, 3, 4) }); !slices.Equal(got, []int32{1, 2, 3}) {
		t.Fatalf("proposed ISR %v, want [1 2 3]", got)
	}
}

func TestFollowerTakesOnlyDataFetchedInItsLeaderEpoch(t *testing.T) {
	f := newFixture(t, 1)
	r := f.open(t)
	if !r.Apply(meta.Partition{Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 2, LeaderEpoch: 3, Epoch: 1}) {
		t.Fatal("Apply did not report the replica became a follower")
	}
	data := batch(2, records.Producer{ID: 4, Epoch: 0, Sequence: 0})
	if err := r.AppendReplicated(data, 2, 2); !errors.Is(err, kerr.FencedLeaderEpoch) {
		t.Fatalf("data fetched in an older epoch: %v, want FENCED_LEADER_EPOCH", err)
	}
	if err := r.AppendReplicated(data, 1, 3); err != nil {
		t.Fatal(err)
	}
	st := r.State()
	if st.LEO != 2 || st.HW != 1 {
		t.Fatalf("follower LEO %d HW %d, want 2 and the leader's 1", st.LEO, st.HW)
	}

	// Truncated against a new leader, then made leader itself: the
	// truncated batch's producer state is gone, so its retry is written
	// (once) instead of being answered from a batch that no longer exists.
	if err := r.TruncateTo(0, 3); err != nil {
		t.Fatal(err)
	}
	r.Apply(meta.Partition{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 4, Epoch: 2})
	res, err := r.Append(t.Context(), data, 1)
	if err != nil || res.Duplicate || res.BaseOffset != 0 {
		t.Fatalf("retry of a truncated batch: %+v, %v; want it written at offset 0", res, err)
	}
}

func TestWaitAfterALeaderChangeFailsAtOnce(t *testing.T) {
	// The leader change can come between an acks=all append and its wait
	// for the high watermark; the wait must not miss it.
	f := newFixture(t, 1)
	r := f.leader(t, 1, 2)
	if _, err := r.Append(t.Context(), batch(1, plain), 1); err != nil {
		t.Fatal(err)
	}
	epoch := r.LeaderEpoch()
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 2, Epoch: 2})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := r.waitHW(ctx, 0, epoch); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("wait after the leader change: %v, want NOT_LEADER_OR_FOLLOWER at once", err)
	}
	// Leader again, in a newer epoch: a wait from the old epoch still fails.
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 3, Epoch: 3})
	if err := r.waitHW(ctx, 0, epoch); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("wait from epoch %d under epoch 3: %v, want NOT_LEADER_OR_FOLLOWER", epoch, err)
	}
}
