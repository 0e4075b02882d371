package log

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestTruncate(t *testing.T) {
	// 10 batches of 3 records, 4 batches per segment: segments at 0, 12, 24.
	bsz := int64(len(buildBatch(spec{records: 3, valueSize: 30})))
	cfg := Config{SegmentBytes: 4*bsz + 1, IndexIntervalBytes: 100}
	tests := []struct {
		name     string
		to       int64
		wantEnd  int64
		wantSegs []int64
		wantErr  error
	}{
		{name: "at a batch boundary", to: 15, wantEnd: 15, wantSegs: []int64{0, 12}},
		{name: "inside a batch drops the whole batch", to: 16, wantEnd: 15, wantSegs: []int64{0, 12}},
		{name: "at a segment base keeps it empty", to: 12, wantEnd: 12, wantSegs: []int64{0, 12}},
		{name: "inside the last batch of a segment", to: 11, wantEnd: 9, wantSegs: []int64{0}},
		{name: "inside the first batch", to: 1, wantEnd: 0, wantSegs: []int64{0}},
		{name: "to the start empties the log", to: 0, wantEnd: 0, wantSegs: []int64{0}},
		{name: "to the end does nothing", to: 30, wantEnd: 30, wantSegs: []int64{0, 12, 24}},
		{name: "past the end does nothing", to: 1000, wantEnd: 30, wantSegs: []int64{0, 12, 24}},
		{name: "below the start is out of range", to: -1, wantEnd: 30, wantSegs: []int64{0, 12, 24}, wantErr: ErrOffsetOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { l.Close() }()
			appendN(t, l, 10, 3, 30, 0, 0, 1)
			all := readAll(t, l)
			if err := l.Truncate(tt.to); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Truncate(%d): got %v, want %v", tt.to, err, tt.wantErr)
			}
			check := func(l *Log, when string) {
				t.Helper()
				if l.EndOffset() != tt.wantEnd {
					t.Fatalf("%s: EndOffset %d, want %d", when, l.EndOffset(), tt.wantEnd)
				}
				if got := readAll(t, l); !bytes.Equal(got, all[:tt.wantEnd/3*bsz]) {
					t.Fatalf("%s: kept bytes differ from the written prefix", when)
				}
				var bases []int64
				for _, name := range segmentFiles(t, dir, logSuffix) {
					b, _ := parseSegmentFileName(name, logSuffix)
					bases = append(bases, b)
				}
				if !slices.Equal(bases, tt.wantSegs) {
					t.Fatalf("%s: segments %v, want %v", when, bases, tt.wantSegs)
				}
			}
			check(l, "after truncate")
			if base, err := l.AppendLeader(buildBatch(spec{records: 3, valueSize: 30}), 0); err != nil || base != tt.wantEnd {
				t.Fatalf("append after truncate: base %d err %v, want %d", base, err, tt.wantEnd)
			}
			checkContiguous(t, readAll(t, l), 0, tt.wantEnd+3)
			if err := l.Truncate(tt.wantEnd); err != nil {
				t.Fatal(err)
			}
			l.Close()
			l, err = Open(dir, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			check(l, "after reopen")
		})
	}
}

func TestTruncateKeepsTheSparseIndexConsistent(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{IndexIntervalBytes: 200})
	appendN(t, l, 50, 1, 60, 0, 0, 1)
	if err := l.Truncate(33); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 40, 1, 60, 0, 33, 1) // timestamps continue as offsets do
	// The index after truncate+append is the one a fresh log would have.
	fresh := openLog(t, t.TempDir(), Config{IndexIntervalBytes: 200})
	appendN(t, fresh, 73, 1, 60, 0, 0, 1)
	got, want := segmentIndexes(l)[0], segmentIndexes(fresh)[0]
	if !slices.Equal(got, want) {
		t.Fatalf("index after truncate and append:\n%v\nwant\n%v", got, want)
	}
	for off := int64(0); off < 73; off += 5 {
		b, err := l.Read(off, 1, 73)
		if err != nil {
			t.Fatal(err)
		}
		checkContiguous(t, b, off, off+1)
	}
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{SegmentBytes: 1000})
	appendN(t, l, 20, 1, 100, 3, 0, 1)
	if err := l.TruncateFullyAndStartAt(500); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != 500 || l.EndOffset() != 500 || l.LatestEpoch() != -1 || l.Size() != 0 {
		t.Fatalf("start %d end %d epoch %d size %d", l.StartOffset(), l.EndOffset(), l.LatestEpoch(), l.Size())
	}
	if segs := segmentFiles(t, dir, logSuffix); len(segs) != 1 || segs[0] != segmentFileName(500) {
		t.Fatalf("segments %v", segs)
	}
	if _, err := l.Read(10, 100, 500); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Read below the new start: %v", err)
	}
	follower := concat(buildBatch(spec{base: 500, epoch: 4, records: 2}))
	if _, err := l.AppendFollower(follower); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l2 := openLog(t, dir, Config{})
	if l2.StartOffset() != 500 || l2.EndOffset() != 502 || l2.LatestEpoch() != 4 {
		t.Fatalf("reopened: start %d end %d epoch %d", l2.StartOffset(), l2.EndOffset(), l2.LatestEpoch())
	}
}

func TestRetentionByTime(t *testing.T) {
	dir := t.TempDir()
	bsz := int64(len(buildBatch(spec{valueSize: 100})))
	// Two batches per segment; batch i has timestamp base+i*1000.
	const base = 1_000_000
	l := openLog(t, dir, Config{SegmentBytes: 2 * bsz, RetentionMs: 10_000})
	for i := range 10 {
		epoch := int32(1)
		if i >= 3 {
			epoch = 2
		}
		if _, err := l.AppendLeader(buildBatch(spec{valueSize: 100, ts: base + int64(i)*1000}), epoch); err != nil {
			t.Fatal(err)
		}
	}
	// Segments end at timestamps base+1000, +3000, +5000, ...; at
	// base+15500 the first three are more than 10 s old.
	n, err := l.ApplyRetention(time.UnixMilli(base+15_500), math.MaxInt64)
	if err != nil || n != 3 {
		t.Fatalf("deleted %d segments (err %v), want 3", n, err)
	}
	if l.StartOffset() != 6 || l.EndOffset() != 10 || l.Size() != 4*bsz {
		t.Fatalf("start %d end %d size %d, want 6, 10, %d", l.StartOffset(), l.EndOffset(), l.Size(), 4*bsz)
	}
	if len(segmentFiles(t, dir, logSuffix)) != 2 || len(segmentFiles(t, dir, indexSuffix)) != 1 {
		t.Fatalf("files left: %v %v", segmentFiles(t, dir, logSuffix), segmentFiles(t, dir, indexSuffix))
	}
	if _, err := l.Read(5, 100, 10); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Read below the start: %v", err)
	}
	checkContiguous(t, readAll(t, l), 6, 10)
	// The epoch that started before the new start now starts there.
	if e, end := l.EpochEndOffset(1); e != -1 || end != -1 {
		t.Fatalf("EpochEndOffset(1) = %d, %d; want -1, -1", e, end)
	}
	if e, end := l.EpochEndOffset(2); e != 2 || end != 10 {
		t.Fatalf("EpochEndOffset(2) = %d, %d; want 2, 10", e, end)
	}
	// Far in the future every closed segment goes, never the active one.
	if n, err := l.ApplyRetention(time.UnixMilli(base+1e9), math.MaxInt64); err != nil || n != 1 {
		t.Fatalf("deleted %d (err %v), want 1", n, err)
	}
	if l.StartOffset() != 8 || l.EndOffset() != 10 {
		t.Fatalf("start %d end %d, want 8 and 10", l.StartOffset(), l.EndOffset())
	}
	if n, _ := l.ApplyRetention(time.UnixMilli(base+1e9), math.MaxInt64); n != 0 {
		t.Fatalf("deleted the active segment")
	}
	l.Close()
	l2 := openLog(t, dir, Config{})
	if l2.StartOffset() != 8 || l2.EndOffset() != 10 || l2.LatestEpoch() != 2 {
		t.Fatalf("reopened: start %d end %d epoch %d", l2.StartOffset(), l2.EndOffset(), l2.LatestEpoch())
	}
	if e, end := l2.EpochEndOffset(2); e != 2 || end != 10 {
		t.Fatalf("reopened EpochEndOffset(2) = %d, %d; want 2, 10", e, end)
	}
}

func TestRetentionByTimeUsesModTimeWithoutTimestamps(t *testing.T) {
	bsz := int64(len(buildBatch(spec{ts: -1})))
	l := openLog(t, t.TempDir(), Config{SegmentBytes: bsz, RetentionMs: 60_000})
	appendN(t, l, 3, 1, 0, 0, -1, 0)
	if n, err := l.ApplyRetention(time.Now(), math.MaxInt64); err != nil || n != 0 {
		t.Fatalf("fresh segments: deleted %d, err %v", n, err)
	}
	if n, err := l.ApplyRetention(time.Now().Add(2*time.Minute), math.MaxInt64); err != nil || n != 2 {
		t.Fatalf("two minutes later: deleted %d, err %v; want 2", n, err)
	}
}

func TestRetentionDeletesOnlySegmentsWhollyBelowTheGivenOffset(t *testing.T) {
	bsz := int64(len(buildBatch(spec{ts: -1})))
	l := openLog(t, t.TempDir(), Config{SegmentBytes: bsz, RetentionMs: 60_000})
	appendN(t, l, 4, 1, 0, 0, -1, 0) // segments [0,1) [1,2) [2,3) and the active [3,4)
	later := time.Now().Add(2 * time.Minute)
	if n, err := l.ApplyRetention(later, 1); err != nil || n != 1 || l.StartOffset() != 1 {
		t.Fatalf("below 1: deleted %d (start %d), err %v; want only [0,1)", n, l.StartOffset(), err)
	}
	if n, err := l.ApplyRetention(later, 1); err != nil || n != 0 {
		t.Fatalf("below 1 again: deleted %d, err %v; want none (offset 1 is not below 1)", n, err)
	}
	if n, err := l.ApplyRetention(later, 3); err != nil || n != 2 || l.StartOffset() != 3 {
		t.Fatalf("below 3: deleted %d (start %d), err %v; want [1,2) and [2,3)", n, l.StartOffset(), err)
	}
}

func TestRetentionByBytes(t *testing.T) {
	bsz := int64(len(buildBatch(spec{valueSize: 100})))
	tests := []struct {
		name      string
		limit     int64
		wantDel   int
		wantStart int64
	}{
		{name: "no limit", limit: -1, wantDel: 0, wantStart: 0},
		{name: "limit above size", limit: 100 * bsz, wantDel: 0, wantStart: 0},
		{name: "log stays at or above the limit", limit: 6 * bsz, wantDel: 2, wantStart: 4},
		{name: "limit between segment sizes", limit: 5*bsz + 1, wantDel: 2, wantStart: 4},
		{name: "tiny limit keeps the active segment", limit: 1, wantDel: 4, wantStart: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t, t.TempDir(), Config{SegmentBytes: 2 * bsz, RetentionBytes: tt.limit, RetentionMs: -1})
			appendN(t, l, 10, 1, 100, 0, time.Now().UnixMilli()-1e9, 0)
			n, err := l.ApplyRetention(time.Now(), math.MaxInt64)
			if err != nil || n != tt.wantDel || l.StartOffset() != tt.wantStart {
				t.Fatalf("deleted %d (err %v), start %d; want %d, %d", n, err, l.StartOffset(), tt.wantDel, tt.wantStart)
			}
			if l.Size() != (10-tt.wantStart)*bsz {
				t.Fatalf("size %d, want %d", l.Size(), (10-tt.wantStart)*bsz)
			}
		})
	}
}

func TestRetentionDisabledKeepsEverything(t *testing.T) {
	bsz := int64(len(buildBatch(spec{})))
	l := openLog(t, t.TempDir(), Config{SegmentBytes: bsz, RetentionMs: -1, RetentionBytes: -1})
	appendN(t, l, 5, 1, 0, 0, 0, 0)
	if n, err := l.ApplyRetention(time.Now().Add(1000*time.Hour), math.MaxInt64); err != nil || n != 0 {
		t.Fatalf("deleted %d, err %v", n, err)
	}
}

// TestTruncateFullyAndStartAtSurvivesACrashAtEveryStep copies the directory
// after each change TruncateFullyAndStartAt makes on disk, as a crash there
// would leave it, and opens each copy: it must hold either the new empty log
// at the new start offset or a range of the old log, byte for byte. A log
// that restarts anywhere else (say empty at 0) loses the follower its place.
func TestTruncateFullyAndStartAtSurvivesACrashAtEveryStep(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   int64
	}{
		{"past the end", 500},
		{"below the start", 50},
		{"at the start", 100},
		{"inside the log", 107},
		{"at the end", 120},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, Config{SegmentBytes: 300})
			if err := l.TruncateFullyAndStartAt(100); err != nil {
				t.Fatal(err)
			}
			for i := range int64(20) {
				if _, err := l.AppendFollower(buildBatch(spec{base: 100 + i, epoch: 3 + int32(i/10), records: 1, valueSize: 80})); err != nil {
					t.Fatal(err)
				}
			}
			if len(segmentFiles(t, dir, logSuffix)) < 3 {
				t.Fatal("want a log of several segments")
			}
			old := batchesByOffset(t, l)
			var crashes []string
			l.afterDiskStep = func() { crashes = append(crashes, copyDir(t, dir)) }
			if err := l.TruncateFullyAndStartAt(tc.at); err != nil {
				t.Fatal(err)
			}
			l.afterDiskStep = nil
			if l.StartOffset() != tc.at || l.EndOffset() != tc.at || l.LatestEpoch() != -1 {
				t.Fatalf("after TruncateFullyAndStartAt(%d): start %d end %d epoch %d", tc.at, l.StartOffset(), l.EndOffset(), l.LatestEpoch())
			}
			crashes = append(crashes, copyDir(t, dir))
			for i, d := range crashes {
				c := openLog(t, d, Config{SegmentBytes: 300})
				start, end := c.StartOffset(), c.EndOffset()
				if start == tc.at && end == tc.at {
					continue // the new log
				}
				if start < 100 || end > 120 || start > end {
					t.Fatalf("crash %d of %d: log [%d, %d) is neither the old log's [100, 120) nor empty at %d", i+1, len(crashes), start, end, tc.at)
				}
				for off, b := range batchesByOffset(t, c) {
					if !bytes.Equal(b, old[off]) {
						t.Fatalf("crash %d: batch at %d differs from the old log's", i+1, off)
					}
				}
			}
		})
	}
}

// batchesByOffset returns every batch of l by base offset.
func batchesByOffset(t *testing.T, l *Log) map[int64][]byte {
	t.Helper()
	out := map[int64][]byte{}
	b := readAll(t, l)
	for len(b) > 0 {
		h, err := ParseBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		out[h.BaseOffset] = b[:h.Size()]
		b = b[h.Size():]
	}
	return out
}

// copyDir copies the regular files of dir into a new directory, as a crash
// would leave them.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return to
}
