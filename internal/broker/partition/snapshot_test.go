package partition

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// txnState is what a replica knows of its producers and transactions, comparable.
type txnState struct {
	Producers map[int64]producerEntry
	Open      map[int64]int64
	Aborted   []AbortedTxn
	LSO       int64
}

func stateOf(r *Replica) txnState {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := map[int64]producerEntry{}
	for id, e := range r.producers {
		ps[id] = producerEntry{epoch: e.epoch, lastTimestamp: e.lastTimestamp, batches: slices.Clone(e.batches)}
	}
	return txnState{Producers: ps, Open: maps.Clone(r.txns.open), Aborted: slices.Clone(r.txns.aborted), LSO: r.txns.lso(r.log.EndOffset())}
}

// txnWorkload appends, over many small segments, idempotent batches of producer 1, and
// transactions of producers 2 (aborted), 3 (committed) and 4 (left open at the end), with the
// aborts spread over the segments. It returns the last batch of producer 1 (to retry).
func txnWorkload(t *testing.T, r *Replica, rounds int) []byte {
	t.Helper()
	ctx := t.Context()
	var last []byte
	for i := range rounds {
		last = batch(2, records.Producer{ID: 1, Epoch: 0, Sequence: int32(2 * i)})
		mustAppend(t, r, slices.Clone(last)) // the append assigns the offsets in place
		mustAppend(t, r, txnData(1, records.Producer{ID: 2, Epoch: 0, Sequence: int32(i)}))
		mustAppend(t, r, txnData(2, records.Producer{ID: 3, Epoch: 0, Sequence: int32(2 * i)}))
		if err := r.AppendMarker(ctx, 2, 0, i%3 == 0, 0); err != nil { // 2 aborts two rounds in three
			t.Fatal(err)
		}
		if err := r.AppendMarker(ctx, 3, 0, true, 0); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, r, txnData(1, records.Producer{ID: 4, Epoch: 0, Sequence: 0}))
	return last
}

// smallSegments makes the fixture's log roll every few batches.
func smallSegments(f *fixture) *fixture {
	f.cfg.Log.SegmentBytes = 400
	return f
}

// fullScanOf opens a copy of dir without its snapshots: the state a scan of the whole log finds.
func fullScanOf(t *testing.T, f *fixture) (txnState, *Replica) {
	t.Helper()
	g := *f
	g.dir = t.TempDir()
	copyFiles(t, f.dir, g.dir, func(name string) bool { return !strings.HasSuffix(name, ".snapshot") })
	r := g.open(t)
	if r.scanned == 0 {
		t.Fatal("the full scan read nothing")
	}
	return stateOf(r), r
}

func copyFiles(t *testing.T, from, to string, keep func(name string) bool) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !keep(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func filesWith(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReopenLoadsProducerStateFromTheSnapshotAndScansOnlyTheLogAfterIt(t *testing.T) {
	f := smallSegments(newFixture(t, 1))
	r := f.leader(t, 1)
	last := txnWorkload(t, r, 12)
	mustAppend(t, r, batch(1, plain)) // after the last roll's snapshot
	want := stateOf(r)
	if len(filesWith(t, f.dir, ".log")) < 5 || len(filesWith(t, f.dir, ".snapshot")) == 0 || len(filesWith(t, f.dir, ".txnindex")) < 3 {
		t.Fatalf("workload too small: %d segments, %d snapshots, %d .txnindex files",
			len(filesWith(t, f.dir, ".log")), len(filesWith(t, f.dir, ".snapshot")), len(filesWith(t, f.dir, ".txnindex")))
	}
	if len(want.Aborted) != 8 || !reflect.DeepEqual(want.Open, map[int64]int64{4: r.Log().EndOffset() - 2}) {
		t.Fatalf("workload state: %d aborts, open %v", len(want.Aborted), want.Open)
	}
	r.Abandon() // a crash: no snapshot at close

	ref, _ := fullScanOf(t, f)
	if !reflect.DeepEqual(ref, want) {
		t.Fatalf("a full scan finds\n%+v\nthe running replica had\n%+v", ref, want)
	}

	r2 := f.leader(t, 1)
	if r2.scanned == 0 || r2.scanned > 3 {
		t.Fatalf("reopen after a crash scanned %d batches, want the few after the last snapshot", r2.scanned)
	}
	if got := stateOf(r2); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded from the snapshot and .txnindex:\n%+v\nwant (a full scan)\n%+v", got, want)
	}
	if got, want := r2.AbortedTransactions(0, r2.Log().EndOffset()), want.Aborted; !reflect.DeepEqual(got, want) {
		t.Fatalf("AbortedTransactions %+v, want %+v", got, want)
	}
	if res, err := r2.Append(t.Context(), last, -1); err != nil || !res.Duplicate {
		t.Fatalf("retry of producer 1's last batch after the reopen: %+v, %v; want a duplicate", res, err)
	}
	if lso := r2.LastStableOffset(); lso != want.Open[4] {
		t.Fatalf("LSO %d after the reopen, want producer 4's open transaction at %d", lso, want.Open[4])
	}

	// A clean close snapshots at the log end: the next open scans nothing.
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	r3 := f.leader(t, 1)
	if r3.scanned != 0 || !reflect.DeepEqual(stateOf(r3), want) {
		t.Fatalf("after a clean close: scanned %d batches, state equal %v", r3.scanned, reflect.DeepEqual(stateOf(r3), want))
	}
	if _, err := r3.Append(t.Context(), batch(1, records.Producer{ID: 1, Epoch: 0, Sequence: 5}), -1); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("out-of-sequence batch after the reopen: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", err)
	}
}

func TestCorruptTxnIndexOrSnapshotIsRebuiltFromTheLog(t *testing.T) {
	f := smallSegments(newFixture(t, 1))
	r := f.leader(t, 1)
	txnWorkload(t, r, 12)
	want := stateOf(r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	txnIndexes := filesWith(t, f.dir, ".txnindex")
	snaps := filesWith(t, f.dir, ".snapshot")
	lastSnap := snaps[len(snaps)-1]
	originals := map[string][]byte{}
	for _, p := range append(slices.Clone(txnIndexes), snaps...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		originals[filepath.Base(p)] = b
	}
	write := func(path string, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		damage func(dir string)
	}{
		{"torn .txnindex", func(dir string) {
			p := filepath.Join(dir, filepath.Base(txnIndexes[0]))
			write(p, originals[filepath.Base(p)][:40])
		}},
		{".txnindex missing its last entry", func(dir string) {
			p := filepath.Join(dir, filepath.Base(txnIndexes[1]))
			b := originals[filepath.Base(p)]
			write(p, b[:len(b)-34])
		}},
		{".txnindex deleted", func(dir string) { os.Remove(filepath.Join(dir, filepath.Base(txnIndexes[0]))) }},
		{"garbage .txnindex", func(dir string) {
			write(filepath.Join(dir, filepath.Base(txnIndexes[0])), []byte(strings.Repeat("x", 68)))
		}},
		{".txnindex naming another segment's marker", func(dir string) {
			write(filepath.Join(dir, filepath.Base(txnIndexes[0])), originals[filepath.Base(txnIndexes[1])])
		}},
		{"snapshot with a flipped byte", func(dir string) {
			b := slices.Clone(originals[filepath.Base(lastSnap)])
			b[len(b)/2] ^= 1
			write(filepath.Join(dir, filepath.Base(lastSnap)), b)
		}},
		{"torn snapshot", func(dir string) {
			b := originals[filepath.Base(lastSnap)]
			write(filepath.Join(dir, filepath.Base(lastSnap)), b[:len(b)-5])
		}},
		{"empty snapshot", func(dir string) { write(filepath.Join(dir, filepath.Base(lastSnap)), nil) }},
		{"snapshot under another offset's name", func(dir string) {
			write(filepath.Join(dir, filepath.Base(lastSnap)), originals[filepath.Base(snaps[0])])
		}},
		{"snapshot past the log end", func(dir string) {
			write(filepath.Join(dir, "00000000000099999999.snapshot"), originals[filepath.Base(lastSnap)])
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := *f
			g.dir = t.TempDir()
			copyFiles(t, f.dir, g.dir, func(string) bool { return true })
			c.damage(g.dir)
			r := g.open(t)
			if got := stateOf(r); !reflect.DeepEqual(got, want) {
				t.Fatalf("state after reopening\n%+v\nwant\n%+v", got, want)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			for _, p := range txnIndexes {
				if b, err := os.ReadFile(filepath.Join(g.dir, filepath.Base(p))); err != nil || !slices.Equal(b, originals[filepath.Base(p)]) {
					t.Fatalf("%s not rebuilt: %v", filepath.Base(p), err)
				}
			}
			if m := filesWith(t, g.dir, ".txnindex"); len(m) != len(txnIndexes) {
				t.Fatalf("%d .txnindex files, want %d", len(m), len(txnIndexes))
			}
			if _, err := os.Stat(filepath.Join(g.dir, "00000000000099999999.snapshot")); err == nil {
				t.Fatal("the snapshot past the log end was kept")
			}
			if r := g.open(t); r.scanned != 0 || !reflect.DeepEqual(stateOf(r), want) {
				t.Fatalf("second reopen: scanned %d, state equal %v", r.scanned, reflect.DeepEqual(stateOf(r), want))
			}
		})
	}
}

func TestTruncationAndRetentionKeepTheTxnIndexAndSnapshotsConsistent(t *testing.T) {
	f := smallSegments(newFixture(t, 1))
	f.cfg.Log.RetentionBytes = 1500
	r := f.leader(t, 1)
	txnWorkload(t, r, 12)
	leaderLog, err := r.Log().Read(0, 1<<20, r.Log().EndOffset())
	if err != nil {
		t.Fatal(err)
	}
	end := r.Log().EndOffset()

	g := smallSegments(newFixture(t, 1))
	g.cfg.BrokerID = 2
	fol := g.open(t)
	fol.Apply(meta.Partition{Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, Epoch: 1})
	if err := fol.AppendReplicated(leaderLog, end, 1); err != nil {
		t.Fatal(err)
	}
	if got, want := stateOf(fol), stateOf(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("follower\n%+v\nleader\n%+v", got, want)
	}
	if len(filesWith(t, g.dir, ".snapshot")) == 0 || len(filesWith(t, g.dir, ".txnindex")) < 3 {
		t.Fatal("the follower wrote no snapshot or .txnindex")
	}
	check := func(what string) {
		t.Helper()
		st := stateOf(fol)
		lo, hi := fol.Log().StartOffset(), fol.Log().EndOffset()
		for _, p := range filesWith(t, g.dir, ".snapshot") {
			if off, _ := parseOffset(p); off < lo || off > hi {
				t.Fatalf("%s: snapshot %s outside the log [%d, %d]", what, filepath.Base(p), lo, hi)
			}
		}
		entries, _, err := fol.Log().AbortedTxns(hi)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var fromIndex []AbortedTxn
		for _, a := range entries {
			fromIndex = append(fromIndex, AbortedTxn{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset, LastOffset: a.LastOffset})
		}
		if !reflect.DeepEqual(fromIndex, st.Aborted) {
			t.Fatalf("%s: the .txnindex files hold %+v, the replica %+v", what, fromIndex, st.Aborted)
		}
		ref, _ := fullScanOf(t, g)
		if !reflect.DeepEqual(ref.Open, st.Open) || !reflect.DeepEqual(ref.Aborted, st.Aborted) {
			t.Fatalf("%s: replica %+v, a full scan %+v", what, st, ref)
		}
	}
	// Truncate inside a segment, between two aborts; then again below the first snapshot.
	mid := stateOf(fol).Aborted[4].LastOffset
	if err := fol.TruncateTo(mid, 1); err != nil {
		t.Fatal(err)
	}
	if n := len(stateOf(fol).Aborted); n != 4 {
		t.Fatalf("after truncating to abort 4's marker: %d aborts, want 4", n)
	}
	check("truncated to an abort marker")
	if err := fol.TruncateTo(mid-7, 1); err != nil {
		t.Fatal(err)
	}
	check("truncated further")

	// Retention on the leader: deleted segments take their .txnindex and older snapshots.
	n, err := r.ApplyRetention(f.clock.Now())
	if err != nil || n == 0 {
		t.Fatalf("retention deleted %d segments: %v", n, err)
	}
	start := r.Log().StartOffset()
	for _, p := range filesWith(t, f.dir, ".txnindex") {
		if base, _ := parseOffset(p); base < start {
			t.Fatalf("%s kept below the log start %d", filepath.Base(p), start)
		}
	}
	for _, p := range filesWith(t, f.dir, ".snapshot") {
		if off, _ := parseOffset(p); off < start {
			t.Fatalf("%s kept below the log start %d", filepath.Base(p), start)
		}
	}
	want := stateOf(r)
	for _, a := range want.Aborted {
		if a.LastOffset < start {
			t.Fatalf("abort %+v kept below the log start %d", a, start)
		}
	}
	r.Abandon()
	if got := stateOf(f.leader(t, 1)); !reflect.DeepEqual(got.Aborted, want.Aborted) || !reflect.DeepEqual(got.Open, want.Open) {
		t.Fatalf("after retention and a reopen\n%+v\nwant\n%+v", got, want)
	}
}

func parseOffset(path string) (int64, bool) {
	name := filepath.Base(path)
	var off int64
	for _, c := range name[:20] {
		if c < '0' || c > '9' {
			return 0, false
		}
		off = off*10 + int64(c-'0')
	}
	return off, true
}

func TestProducerSnapshotRoundTrips(t *testing.T) {
	s := producerSnapshot{
		offset:   100,
		segments: map[int64]int{0: 2, 40: 1},
		producers: producers{
			1: {epoch: 3, lastTimestamp: 7, batches: []batchMeta{{0, 1, 10, 11}, {2, 2, 12, 12}}},
			2: {epoch: 0, lastTimestamp: -1},
		},
		open:              map[int64]int64{2: 50, 9: 60},
		coordinatorEpochs: map[int64]int32{2: 4, 11: 0},
	}
	b := encodeProducerSnapshot(s)
	got, err := decodeProducerSnapshot(b, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("decoded %+v, want %+v", got, s)
	}
	if _, err := decodeProducerSnapshot(b, 99); !errors.Is(err, log.ErrCorruptTxnState) {
		t.Fatalf("another offset's snapshot: %v", err)
	}
}

func FuzzDecodeProducerSnapshot(f *testing.F) {
	f.Add(encodeProducerSnapshot(producerSnapshot{offset: 5}), int64(5))
	f.Add(encodeProducerSnapshot(producerSnapshot{
		offset: 100, segments: map[int64]int{0: 2},
		producers: producers{1: {epoch: 3, lastTimestamp: 7, batches: []batchMeta{{0, 1, 10, 11}}}},
		open:      map[int64]int64{1: 10, 9: 60},
	}), int64(100))
	f.Add([]byte{0, 1, 0, 0, 0, 0}, int64(0))
	f.Fuzz(func(t *testing.T, data []byte, offset int64) {
		s, err := decodeProducerSnapshot(data, offset)
		if err != nil {
			if !errors.Is(err, log.ErrCorruptTxnState) {
				t.Fatalf("error %v does not wrap ErrCorruptTxnState", err)
			}
			return
		}
		// What decodes encodes back to the same bytes.
		if b := encodeProducerSnapshot(s); !slices.Equal(b, data) {
			t.Fatalf("re-encoded %x, read %x", b, data)
		}
	})
}
