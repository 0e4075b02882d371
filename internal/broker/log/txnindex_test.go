package log

import (
	"bytes"
	"errors"
	"os"

	"path/filepath"
	"reflect"
	"testing"
)

func TestTxnIndexRoundTripsAndRejectsWhatItCouldNotHaveWritten(t *testing.T) {
	es := []AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 3, LastStableOffset: 4}, {ProducerID: 2, FirstOffset: 2, LastOffset: 9, LastStableOffset: 5}}
	b := EncodeTxnIndex(es)
	if len(b) != 2*34 {
		t.Fatalf("%d bytes, want 34 per entry as Kafka's", len(b))
	}
	if got, err := DecodeTxnIndex(b); err != nil || !reflect.DeepEqual(got, es) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	bad := map[string][]byte{
		"torn":           b[:50],
		"version 1":      append([]byte{0, 1}, b[2:]...),
		"out of order":   EncodeTxnIndex([]AbortedTxn{es[1], es[0]}),
		"first > last":   EncodeTxnIndex([]AbortedTxn{{ProducerID: 1, FirstOffset: 5, LastOffset: 3}}),
		"no producer":    EncodeTxnIndex([]AbortedTxn{{ProducerID: -1, LastOffset: 3}}),
		"negative LSO":   EncodeTxnIndex([]AbortedTxn{{ProducerID: 1, LastOffset: 3, LastStableOffset: -1}}),
		"same marker x2": EncodeTxnIndex([]AbortedTxn{es[0], es[0]}),
	}
	for name, b := range bad {
		if _, err := DecodeTxnIndex(b); !errors.Is(err, ErrCorruptTxnState) {
			t.Errorf("%s: %v, want ErrCorruptTxnState", name, err)
		}
	}
}

func TestTxnIndexFollowsSegmentsThroughTruncationAndRetention(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{SegmentBytes: 300})
	for i := range int64(20) {
		if _, err := l.AppendFollower(buildBatch(spec{base: i, epoch: 1, records: 1, valueSize: 80, ts: 100})); err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 { // an abort marker at every third offset
			if err := l.AppendAbortedTxn(AbortedTxn{ProducerID: 7, FirstOffset: i - 1, LastOffset: i, LastStableOffset: i + 1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.WriteProducerSnapshot(i+1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	all, per, err := l.AbortedTxns(l.EndOffset())
	if err != nil || len(all) != 6 || len(per) < 3 {
		t.Fatalf("%d entries over %d segments, %v; want 6 over several", len(all), len(per), err)
	}
	if err := l.AppendAbortedTxn(AbortedTxn{ProducerID: 7, LastOffset: 20}); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("entry past the log end: %v", err)
	}
	markers := func(l *Log) []int64 {
		es, _, err := l.AbortedTxns(l.EndOffset())
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, a := range es {
			out = append(out, a.LastOffset)
		}
		return out
	}
	snapshots := func(l *Log) (lo, hi int64) {
		offs, err := l.ProducerSnapshots()
		if err != nil || len(offs) == 0 {
			t.Fatalf("snapshots %v, %v", offs, err)
		}
		return offs[0], offs[len(offs)-1]
	}
	if err := l.Truncate(12); err != nil {
		t.Fatal(err)
	}
	if got := markers(l); !reflect.DeepEqual(got, []int64{2, 5, 8, 11}) {
		t.Fatalf("after truncating to 12: markers %v", got)
	}
	if _, hi := snapshots(l); hi != 12 {
		t.Fatalf("after truncating to 12: latest snapshot %d, want 12", hi)
	}
	if err := l.Truncate(11); err != nil { // inside a segment, cutting its last marker
		t.Fatal(err)
	}
	if got := markers(l); !reflect.DeepEqual(got, []int64{2, 5, 8}) {
		t.Fatalf("after truncating to 11: markers %v", got)
	}
	l.cfg.RetentionMs, l.cfg.RetentionBytes = -1, 400
	if n, err := l.ApplyRetention(timeNow(), l.EndOffset()); err != nil || n == 0 {
		t.Fatalf("retention deleted %d: %v", n, err)
	}
	start := l.StartOffset()
	for _, name := range segmentFiles(t, dir, txnIndexSuffix) {
		if base, _ := parseSegmentFileName(name, txnIndexSuffix); base < start {
			t.Fatalf("%s kept below the start %d", name, start)
		}
	}
	if lo, _ := snapshots(l); lo < start {
		t.Fatalf("snapshot %d kept below the start %d", lo, start)
	}
	kept := markers(l)
	for _, m := range kept {
		if m < start {
			t.Fatalf("marker %d below the start %d", m, start)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, Config{SegmentBytes: 300})
	if got := markers(l); !reflect.DeepEqual(got, kept) {
		t.Fatalf("after a reopen: markers %v, want %v", got, kept)
	}
	if err := l.TruncateFullyAndStartAt(50); err != nil {
		t.Fatal(err)
	}
	if got := markers(l); len(got) != 0 || len(segmentFiles(t, dir, txnIndexSuffix)) != 0 || len(segmentFiles(t, dir, snapshotSuffix)) != 0 {
		t.Fatalf("after TruncateFullyAndStartAt: markers %v, files %v %v", got, segmentFiles(t, dir, txnIndexSuffix), segmentFiles(t, dir, snapshotSuffix))
	}
}

var errCrash = errors.New("crash")

// TestProducerSnapshotSurvivesACrashAtEveryStep crashes (kill -9, and power loss) after each
// step of writing a snapshot (temporary file written, fsynced, renamed, directory fsynced): the
// log then opens with the old snapshot or the new one, whole, and no temporary file. A power
// loss between the rename and the directory fsync may also leave no snapshot of that name (the
// Disk model forgets a name no directory fsync made durable): never a torn one; the partition
// then loads an older snapshot or scans the log.
func TestProducerSnapshotSurvivesACrashAtEveryStep(t *testing.T) {
	old, nu := bytes.Repeat([]byte("old"), 100), bytes.Repeat([]byte("new"), 200)
	for step := 1; step <= 5; step++ { // step 5: no crash
		for _, powerLoss := range []bool{false, true} {
			dir := t.TempDir()
			d := NewDisk()
			l := openLog(t, dir, Config{Disk: d})
			if err := l.WriteProducerSnapshot(10, old); err != nil {
				t.Fatal(err)
			}
			n := 0
			l.afterDiskStep = func() {
				if n++; n == step {
					panic(errCrash)
				}
			}
			func() {
				defer func() {
					if p := recover(); p != nil && p != errCrash {
						panic(p)
					}
				}()
				_ = l.WriteProducerSnapshot(10, nu)
			}()
			crashed := dir
			if !powerLoss {
				crashed = copyDir(t, dir)
			}
			l.Abandon()
			if powerLoss {
				if _, _, err := d.PowerLoss(); err != nil {
					t.Fatal(err)
				}
			}
			c := openLog(t, crashed, Config{})
			got, err := c.ReadProducerSnapshot(10)
			if powerLoss && step == 3 && errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil || !(bytes.Equal(got, old) || bytes.Equal(got, nu)) {
				t.Fatalf("crash after step %d (power loss %v): snapshot %q, %v; want the old or the new one", step, powerLoss, got, err)
			}
			if step == 5 && !bytes.Equal(got, nu) {
				t.Fatalf("no crash: snapshot %q", got)
			}
			if m, _ := filepath.Glob(filepath.Join(crashed, "*"+tmpSuffix)); len(m) != 0 {
				t.Fatalf("crash after step %d: temporary files left: %v", step, m)
			}
			if offs, err := c.ProducerSnapshots(); err != nil || !reflect.DeepEqual(offs, []int64{10}) {
				t.Fatalf("snapshots %v, %v", offs, err)
			}
		}
	}
}

func FuzzDecodeTxnIndex(f *testing.F) {
	f.Add([]byte{})
	f.Add(EncodeTxnIndex([]AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 3, LastStableOffset: 4}, {ProducerID: 2, FirstOffset: 2, LastOffset: 9, LastStableOffset: 5}}))
	f.Add(bytes.Repeat([]byte{0xff}, 34))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := DecodeTxnIndex(data)
		if err != nil {
			if !errors.Is(err, ErrCorruptTxnState) {
				t.Fatalf("error %v does not wrap ErrCorruptTxnState", err)
			}
			return
		}
		if b := EncodeTxnIndex(es); !bytes.Equal(b, data) {
			t.Fatalf("re-encoded %x, read %x", b, data)
		}
	})
}
