package partition

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

const (
	attrTxn     = 0x10
	attrControl = 0x20
)

func txnBatch(pid int64, base, last int64) log.BatchHeader {
	return log.BatchHeader{BaseOffset: base, LastOffsetDelta: int32(last - base), Attributes: attrTxn, ProducerID: pid}
}

func markerAt(pid int64, off int64) log.BatchHeader {
	return log.BatchHeader{BaseOffset: off, Attributes: attrTxn | attrControl, ProducerID: pid}
}

func TestLastStableOffsetStopsAtTheEarliestOpenTransaction(t *testing.T) {
	ts := newTxns()
	if got := ts.lso(10); got != 10 {
		t.Fatalf("no transactions: LSO %d, want the high watermark 10", got)
	}
	ts.observe(log.BatchHeader{BaseOffset: 0, LastOffsetDelta: 1, ProducerID: 9}, false) // idempotent, not transactional
	ts.observe(txnBatch(1, 2, 3), false)
	ts.observe(txnBatch(2, 4, 4), false)
	ts.observe(txnBatch(1, 5, 6), false) // the same open transaction of producer 1
	if got := ts.lso(7); got != 2 {
		t.Fatalf("producers 1 (from 2) and 2 (from 4) open: LSO %d, want 2", got)
	}
	if got := ts.lso(1); got != 1 {
		t.Fatalf("high watermark below the open transactions: LSO %d, want 1", got)
	}
	ts.observe(markerAt(1, 7), true)
	if got := ts.lso(8); got != 4 {
		t.Fatalf("producer 1 committed: LSO %d, want 4", got)
	}
	ts.observe(markerAt(2, 8), false)
	if got := ts.lso(9); got != 9 {
		t.Fatalf("all closed: LSO %d, want 9", got)
	}
	// A repeated marker changes nothing.
	ts.observe(markerAt(2, 9), false)
	if want := []AbortedTxn{{ProducerID: 2, FirstOffset: 4, LastOffset: 8}}; !reflect.DeepEqual(ts.aborted, want) {
		t.Fatalf("aborted %+v, want %+v", ts.aborted, want)
	}
}

func TestAbortedInListsTheAbortsOverlappingARead(t *testing.T) {
	ts := newTxns()
	// Producer 1 aborts [0..3], producer 2 commits [1..5], producer 3 aborts [4..9].
	ts.observe(txnBatch(1, 0, 0), false)
	ts.observe(txnBatch(2, 1, 1), false)
	ts.observe(markerAt(1, 3), false)
	ts.observe(txnBatch(3, 4, 4), false)
	ts.observe(markerAt(2, 5), true)
	ts.observe(markerAt(3, 9), false)
	a1, a3 := AbortedTxn{1, 0, 3}, AbortedTxn{3, 4, 9}
	for _, tc := range []struct {
		from, upto int64
		want       []AbortedTxn
	}{
		{0, 10, []AbortedTxn{a1, a3}},
		{3, 4, []AbortedTxn{a1}},  // a1's marker is in the read, a3 starts after it
		{4, 10, []AbortedTxn{a3}}, // a1 ended before the read
		{10, 20, nil},             // everything ended before
		{0, 4, []AbortedTxn{a1}},  // a3 starts at the end of the read
		{5, 6, []AbortedTxn{a3}},  // inside a3
	} {
		if got := ts.abortedIn(tc.from, tc.upto); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("abortedIn(%d, %d) = %+v, want %+v", tc.from, tc.upto, got, tc.want)
		}
	}
	ts.reset()
	if len(ts.open) != 0 || len(ts.aborted) != 0 {
		t.Fatal("reset kept state")
	}
}

// txnData is a transactional batch of n records of producer p.
func txnData(n int, p records.Producer) []byte { return setTxn(batch(n, p)) }

// setTxn marks batch b transactional, in place, and returns it.
func setTxn(b []byte) []byte {
	binary.BigEndian.PutUint16(b[21:], binary.BigEndian.Uint16(b[21:])|attrTxn)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func mustAppend(t *testing.T, r *Replica, b []byte) int64 {
	t.Helper()
	res, err := r.Append(t.Context(), b, -1)
	if err != nil {
		t.Fatal(err)
	}
	return res.BaseOffset
}

func TestMarkersCloseTransactionsOnTheLeaderAfterARestartAndOnAFollower(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1)
	ctx := t.Context()
	mustAppend(t, r, txnData(2, records.Producer{ID: 7, Epoch: 0, Sequence: 0})) // 0-1
	mustAppend(t, r, batch(1, plain))                                            // 2
	if lso, hw := r.LastStableOffset(), r.HighWatermark(); lso != 0 || hw != 3 {
		t.Fatalf("open transaction at 0: LSO %d, HW %d; want 0 and 3", lso, hw)
	}
	if err := r.AppendMarker(ctx, 7, 0, false, 0); err != nil { // 3
		t.Fatal(err)
	}
	if lso := r.LastStableOffset(); lso != 4 {
		t.Fatalf("after the abort marker: LSO %d, want 4", lso)
	}
	mustAppend(t, r, txnData(1, records.Producer{ID: 8, Epoch: 0, Sequence: 0})) // 4
	if err := r.AppendMarker(ctx, 8, 0, true, 0); err != nil {                   // 5
		t.Fatal(err)
	}
	// After its commit, producer 8 goes on with its sequence in the same epoch.
	mustAppend(t, r, txnData(1, records.Producer{ID: 8, Epoch: 0, Sequence: 1})) // 6, left open
	want := []AbortedTxn{{ProducerID: 7, FirstOffset: 0, LastOffset: 3}}
	if got := r.AbortedTransactions(0, 7); !reflect.DeepEqual(got, want) || r.LastStableOffset() != 6 {
		t.Fatalf("aborted %+v, LSO %d; want %+v and 6", got, r.LastStableOffset(), want)
	}
	// A marker of a newer epoch fences producer 7's older one on this partition.
	if err := r.AppendMarker(ctx, 7, 1, false, 0); err != nil { // 7, no open transaction: no change
		t.Fatal(err)
	}
	if _, err := r.Append(ctx, txnData(1, records.Producer{ID: 7, Epoch: 0, Sequence: 2}), -1); !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie batch after a fencing marker: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if err := r.AppendMarker(ctx, 7, 0, true, 0); !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("marker of an older epoch: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	leaderLog, err := r.Log().Read(0, 1<<20, r.Log().EndOffset())
	if err != nil {
		t.Fatal(err)
	}

	// A restarted replica rebuilds the same transactions from its log.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := f.open(t)
	if got := r2.AbortedTransactions(0, 8); !reflect.DeepEqual(got, want) || !reflect.DeepEqual(r2.txns.open, map[int64]int64{8: 6}) {
		t.Fatalf("after a restart: aborted %+v, open %v", got, r2.txns.open)
	}

	// A follower replicating the log has the same.
	fol := followerOf(t, leaderLog, 8)
	if got := fol.AbortedTransactions(0, 8); !reflect.DeepEqual(got, want) || fol.LastStableOffset() != 6 {
		t.Fatalf("follower: aborted %+v, LSO %d", got, fol.LastStableOffset())
	}
	// Truncating below the commit marker reopens producer 8's transaction.
	if err := fol.TruncateTo(5, 1); err != nil {
		t.Fatal(err)
	}
	if lso := fol.LastStableOffset(); lso != 4 {
		t.Fatalf("after truncating the commit marker away: LSO %d, want 4", lso)
	}
}

func TestReadCommittedStopsAtTheLastStableOffsetAndListsTheAborts(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1)
	mustAppend(t, r, txnData(2, records.Producer{ID: 7, Epoch: 0, Sequence: 0})) // 0-1, aborted below
	mustAppend(t, r, txnData(1, records.Producer{ID: 8, Epoch: 0, Sequence: 0})) // 2, open
	if err := r.AppendMarker(t.Context(), 7, 0, false, 0); err != nil {          // 3
		t.Fatal(err)
	}
	mustAppend(t, r, batch(1, plain)) // 4
	read := func(committed bool) ReadResult {
		t.Helper()
		res, err := r.Read(FetchRequest{Offset: 0, MaxBytes: 1 << 20, ReplicaID: -1, CurrentLeaderEpoch: -1, ReadCommitted: committed})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	lastOffset := func(res ReadResult) int64 {
		t.Helper()
		bs, err := records.Decode(res.Records)
		if err != nil || len(bs) == 0 {
			return -1
		}
		b := bs[len(bs)-1]
		return b.FirstOffset + int64(b.LastOffsetDelta)
	}
	uncommitted, committed := read(false), read(true)
	if lastOffset(uncommitted) != 4 || uncommitted.AbortedTransactions != nil {
		t.Fatalf("read_uncommitted: up to %d, aborted %v; want everything to 4 and no aborted list", lastOffset(uncommitted), uncommitted.AbortedTransactions)
	}
	want := []AbortedTxn{{ProducerID: 7, FirstOffset: 0, LastOffset: 3}}
	if lastOffset(committed) != 1 || committed.LastStableOffset != 2 || !reflect.DeepEqual(committed.AbortedTransactions, want) {
		t.Fatalf("read_committed: up to %d, LSO %d, aborted %v; want up to 1, LSO 2, %v",
			lastOffset(committed), committed.LastStableOffset, committed.AbortedTransactions, want)
	}
	if off, _, err := r.OffsetLookup(-1, -1, true); err != nil || off != 2 {
		t.Fatalf("ListOffsets latest read_committed: %d, %v; want the LSO 2", off, err)
	}
	if off, _, err := r.OffsetLookup(-1, -1, false); err != nil || off != 5 {
		t.Fatalf("ListOffsets latest read_uncommitted: %d, %v; want the HW 5", off, err)
	}
	if err := r.AppendMarker(t.Context(), 8, 0, true, 0); err != nil {
		t.Fatal(err)
	}
	if res := read(true); lastOffset(res) != 5 || res.LastStableOffset != 6 {
		t.Fatalf("after the commit: read_committed up to %d, LSO %d; want 5 and 6", lastOffset(res), res.LastStableOffset)
	}
}

// TestTxnOffsetBatchesOfTheCoordinatorSkipTheSequenceCheckButNotTheEpoch appends what the group
// coordinator writes for TxnOffsetCommit: transactional batches of a producer without a
// sequence. Each is written (none is taken for a retry of the one before), they open the
// producer's transaction until its marker, and an older epoch than the partition's is refused.
func TestTxnOffsetBatchesOfTheCoordinatorSkipTheSequenceCheckButNotTheEpoch(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1)
	ctx := t.Context()
	offsets := func(epoch int16) []byte {
		return records.BuildTxn([]records.Record{{Key: []byte("k"), Value: []byte("v")}}, 1700000000000,
			records.Producer{ID: 7, Epoch: epoch, Sequence: -1})
	}
	for i := range 3 {
		if err := r.AppendTxnOffsets(ctx, offsets(0)); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if end, lso := r.Log().EndOffset(), r.LastStableOffset(); end != 3 || lso != 0 {
		t.Fatalf("after three batches: log end %d, LSO %d; want 3 (each written) and 0 (open)", end, lso)
	}
	if err := r.AppendMarker(ctx, 7, 1, true, 0); err != nil { // 3: a fence's commit, epoch 1
		t.Fatal(err)
	}
	if lso := r.LastStableOffset(); lso != 4 {
		t.Fatalf("after the marker: LSO %d, want 4", lso)
	}
	if err := r.AppendTxnOffsets(ctx, offsets(0)); !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("batch of the fenced epoch: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if err := r.AppendTxnOffsets(ctx, batch(1, plain)); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("a plain batch: %v, want INVALID_RECORD", err)
	}
	// The producer's own batches keep their sequence around the coordinator's.
	mustAppend(t, r, txnData(1, records.Producer{ID: 7, Epoch: 1, Sequence: 0}))
	if err := r.AppendTxnOffsets(ctx, offsets(1)); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, r, txnData(1, records.Producer{ID: 7, Epoch: 1, Sequence: 1}))
	if res, err := r.Append(ctx, txnData(1, records.Producer{ID: 7, Epoch: 1, Sequence: 1}), -1); err != nil || !res.Duplicate {
		t.Fatalf("a retry of the producer's last batch: %+v, %v; want it found as a duplicate", res, err)
	}
}

// TestLastStableOffsetWaitsForTheMarkerToBeReplicated pins Kafka's rule
// (ProducerStateManager's unreplicated transactions): a transaction whose
// marker is in the leader's log but not yet below the high watermark is
// still unstable, so read_committed readers stop at its first offset. A
// leader that loses its leadership before the marker is replicated loses the
// marker, and the transaction's fate may then differ from the lost marker's.
func TestLastStableOffsetWaitsForTheMarkerToBeReplicated(t *testing.T) {
	for _, commit := range []bool{true, false} {
		t.Run(map[bool]string{true: "commit", false: "abort"}[commit], func(t *testing.T) {
			f := newFixture(t, 2)
			r := f.leader(t, 1, 2)
			if _, err := r.Append(t.Context(), txnData(2, records.Producer{ID: 7, Epoch: 0, Sequence: 0}), 1); err != nil { // 0-1
				t.Fatal(err)
			}
			fetch(t, r, 2, 0)
			fetch(t, r, 2, 2)
			if hw, lso := r.HighWatermark(), r.LastStableOffset(); hw != 2 || lso != 0 {
				t.Fatalf("open transaction replicated: HW %d, LSO %d; want 2 and 0", hw, lso)
			}
			done := make(chan error, 1)
			go func() { done <- r.AppendMarker(t.Context(), 7, 0, commit, 0) }() // 2
			deadline := time.Now().Add(10 * time.Second)
			for r.Log().EndOffset() != 3 {
				if time.Now().After(deadline) {
					t.Fatal("the marker was not appended")
				}
				time.Sleep(time.Millisecond)
			}
			if lso := r.LastStableOffset(); lso != 0 {
				t.Fatalf("marker at 2 above the high watermark 2: LSO %d, want 0 (the transaction is not stable yet)", lso)
			}
			res, err := r.Read(FetchRequest{Offset: 0, MaxBytes: 1 << 20, ReplicaID: -1, CurrentLeaderEpoch: -1, ReadCommitted: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Records) != 0 || res.LastStableOffset != 0 {
				t.Fatalf("read_committed before the marker is replicated: %d bytes, LSO %d; want nothing and 0", len(res.Records), res.LastStableOffset)
			}
			fetch(t, r, 2, 3)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if hw, lso := r.HighWatermark(), r.LastStableOffset(); hw != 3 || lso != 3 {
				t.Fatalf("marker replicated: HW %d, LSO %d; want 3 and 3", hw, lso)
			}
		})
	}
}

// TestHighWatermarkDoesNotPassATransactionalBatchBeforeItsTransactionIsOpen
// holds a leader's append after its batch is in the log, where followers can
// fetch it, and before the replica has recorded the transaction the batch
// opens (here: the first append of the leader epoch, writing the epoch
// checkpoint). The followers' fetches must not move the high watermark past
// the batch then: a read_committed reader would take the records of an open
// transaction for committed ones.
func TestHighWatermarkDoesNotPassATransactionalBatchBeforeItsTransactionIsOpen(t *testing.T) {
	f := newFixture(t, 2)
	d := log.NewDisk()
	entered, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	var once sync.Once
	d.SetBeforeSync(func(path string) {
		if armed.Load() && strings.Contains(filepath.Base(path), "leader-epoch-checkpoint") {
			once.Do(func() {
				close(entered)
				<-release
			})
		}
	})
	f.cfg.Log.Disk = d
	r := f.leader(t, 1, 2)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	armed.Store(true)
	out := appendAsync(t, r, txnData(2, records.Producer{ID: 7, Epoch: 0, Sequence: 0}), 1) // 0-1
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the append never wrote the leader-epoch checkpoint")
	}
	if res := fetch(t, r, 2, 0); res.LogEndOffset != 2 {
		t.Fatalf("follower fetch during the append: log end %d, want 2 (the batch is in the log)", res.LogEndOffset)
	}
	fetch(t, r, 2, 2)
	res, err := r.Read(FetchRequest{Offset: 0, MaxBytes: 1 << 20, ReplicaID: -1, CurrentLeaderEpoch: -1, ReadCommitted: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 0 || res.LastStableOffset != 0 {
		t.Fatalf("read_committed while the transaction's batch is being appended: %d bytes, HW %d, LSO %d; want nothing and LSO 0",
			len(res.Records), res.HighWatermark, res.LastStableOffset)
	}
	close(release)
	if o := <-out; o.err != nil {
		t.Fatal(o.err)
	}
	if hw, lso := r.HighWatermark(), r.LastStableOffset(); hw != 2 || lso != 0 {
		t.Fatalf("after the append: HW %d, LSO %d; want 2 and 0 (open transaction)", hw, lso)
	}
}

// TestEndedTransactionsAreForgottenOnceTheirMarkersAreBelowTheHighWatermark
// checks that the ended transactions kept for the last stable offset do not
// pile up on a follower, which serves no read_committed fetch: once the
// leader's high watermark passes a marker, the follower forgets its
// transaction as the leader does.
func TestEndedTransactionsAreForgottenOnceTheirMarkersAreBelowTheHighWatermark(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1)
	for i := range 50 {
		mustAppend(t, r, txnData(1, records.Producer{ID: 7, Epoch: 0, Sequence: int32(i)}))
		if err := r.AppendMarker(t.Context(), 7, 0, i%2 == 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	leaderLog, err := r.Log().Read(0, 1<<20, r.Log().EndOffset())
	if err != nil {
		t.Fatal(err)
	}
	fol := followerOf(t, leaderLog, 100)
	for name, rep := range map[string]*Replica{"leader": r, "follower": fol} {
		rep.mu.Lock()
		n := len(rep.txns.ended)
		rep.mu.Unlock()
		if n != 0 {
			t.Errorf("%s keeps %d ended transactions whose markers are below the high watermark 100, want 0", name, n)
		}
	}
}

// followerOf opens broker 2's replica of t-0 as a follower of broker 1 in leader epoch 1 and
// appends leaderLog to it, with the leader's high watermark hw.
func followerOf(t *testing.T, leaderLog []byte, hw int64) *Replica {
	t.Helper()
	g := newFixture(t, 1)
	g.cfg.BrokerID = 2
	fol := g.open(t)
	fol.Apply(meta.Partition{Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, Epoch: 1})
	if err := fol.AppendReplicated(leaderLog, hw, 1); err != nil {
		t.Fatal(err)
	}
	return fol
}
