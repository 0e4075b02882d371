package log

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRecoveryCutsTheActiveSegmentAtTheFirstBadBatch damages the active
// segment the ways a crash or a bad disk can, reopens, and checks that
// every batch before the damage is intact and appends continue.
func TestRecoveryCutsTheActiveSegmentAtTheFirstBadBatch(t *testing.T) {
	const n = 10 // batches of 3 records
	tests := []struct {
		name      string
		damage    func(t *testing.T, path string, bsz int64)
		wantEnd   int64 // offsets kept
		wantWarn  bool
		wantBytes int64 // bytes cut, when a warning is expected
	}{
		{name: "clean", damage: func(*testing.T, string, int64) {}, wantEnd: 3 * n},
		{name: "cut mid-batch", damage: func(t *testing.T, p string, bsz int64) { truncateFile(t, p, 9*bsz+bsz/2) },
			wantEnd: 27, wantWarn: true},
		{name: "cut mid-header", damage: func(t *testing.T, p string, bsz int64) { truncateFile(t, p, 9*bsz+20) },
			wantEnd: 27, wantWarn: true},
		{name: "cut inside the length field", damage: func(t *testing.T, p string, bsz int64) { truncateFile(t, p, 9*bsz+5) },
			wantEnd: 27, wantWarn: true},
		{name: "garbage appended", damage: func(t *testing.T, p string, bsz int64) { appendFile(t, p, []byte("not a batch at all, just noise")) },
			wantEnd: 30, wantWarn: true},
		{name: "zeros appended", damage: func(t *testing.T, p string, bsz int64) { appendFile(t, p, make([]byte, 4096)) },
			wantEnd: 30, wantWarn: true},
		{name: "byte flipped in the last batch", damage: func(t *testing.T, p string, bsz int64) { flipByte(t, p, 9*bsz+bsz-2) },
			wantEnd: 27, wantWarn: true},
		{name: "byte flipped in a middle batch", damage: func(t *testing.T, p string, bsz int64) { flipByte(t, p, 4*bsz+HeaderSize+3) },
			wantEnd: 12, wantWarn: true},
		{name: "length field says more than the file holds", damage: func(t *testing.T, p string, bsz int64) { flipByte(t, p, 6*bsz+posBatchLength) },
			wantEnd: 18, wantWarn: true},
		{name: "base offset breaks the sequence", damage: func(t *testing.T, p string, bsz int64) { flipByte(t, p, 7*bsz+7) },
			wantEnd: 21, wantWarn: true},
		{name: "first batch bad", damage: func(t *testing.T, p string, bsz int64) { flipByte(t, p, HeaderSize) },
			wantEnd: 0, wantWarn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, Config{IndexIntervalBytes: 256}, nil)
			if err != nil {
				t.Fatal(err)
			}
			stored := appendN(t, l, n, 3, 40, 2, 100, 1)
			all := readAll(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			bsz := int64(len(stored[0]))
			path := filepath.Join(dir, segmentFileName(0))
			tt.damage(t, path, bsz)
			sizeBefore := fileSize(t, path)

			log := &testLogger{}
			l2, err := Open(dir, Config{IndexIntervalBytes: 256}, log.logger())
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer l2.Close()
			if got := l2.EndOffset(); got != tt.wantEnd {
				t.Fatalf("EndOffset %d, want %d", got, tt.wantEnd)
			}
			keep := tt.wantEnd / 3 * bsz
			got := readAll(t, l2)
			if !bytes.Equal(got, all[:keep]) {
				t.Fatalf("recovered %d bytes differ from the first %d written", len(got), keep)
			}
			if fileSize(t, path) != keep {
				t.Fatalf("file is %d bytes, want %d", fileSize(t, path), keep)
			}
			out := log.String()
			if tt.wantWarn != strings.Contains(out, "level=WARN") {
				t.Fatalf("warning logged = %v, want %v:\n%s", !tt.wantWarn, tt.wantWarn, out)
			}
			if tt.wantWarn {
				for _, want := range []string{"position=" + strconv.FormatInt(keep, 10), "bytesCut=" + strconv.FormatInt(sizeBefore-keep, 10)} {
					if !strings.Contains(out, want) {
						t.Errorf("warning lacks %q:\n%s", want, out)
					}
				}
			}
			// The log goes on from where recovery left it.
			if base, err := l2.AppendLeader(buildBatch(spec{records: 2}), 2); err != nil || base != tt.wantEnd {
				t.Fatalf("append after recovery: base %d, err %v; want %d", base, err, tt.wantEnd)
			}
			checkContiguous(t, readAll(t, l2), 0, tt.wantEnd+2)
		})
	}
}

func TestRecoveryRebuildsMissingOrDamagedIndexes(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, logPath string)
	}{
		{"index deleted", func(t *testing.T, p string) { removeFile(t, indexPath(p)) }},
		{"time index deleted", func(t *testing.T, p string) { removeFile(t, timeIndexPath(p)) }},
		{"index cut mid-entry", func(t *testing.T, p string) { truncateFile(t, indexPath(p), fileSize(t, indexPath(p))-3) }},
		{"index entries scrambled", func(t *testing.T, p string) {
			b := readFile(t, indexPath(p))
			copy(b[8:16], b[0:8]) // entry 1 repeats entry 0
			writeFile(t, indexPath(p), b)
		}},
		{"index points at the wrong place", func(t *testing.T, p string) {
			b := readFile(t, indexPath(p))
			last := len(b) - 8
			b[last+7]++ // last entry's position off by one
			writeFile(t, indexPath(p), b)
		}},
		{"index of zeros", func(t *testing.T, p string) { writeFile(t, indexPath(p), make([]byte, fileSize(t, indexPath(p)))) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{SegmentBytes: 4096, IndexIntervalBytes: 300}
			l, err := Open(dir, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 60, 1, 100, 0, 0, 1)
			all := readAll(t, l)
			want := segmentIndexes(l)
			l.Close()
			first := filepath.Join(dir, segmentFileName(0))
			tt.damage(t, first)

			l2 := openLog(t, dir, cfg)
			if l2.EndOffset() != 60 || !bytes.Equal(readAll(t, l2), all) {
				t.Fatal("log changed because of a bad index")
			}
			got := segmentIndexes(l2)
			if len(got[0]) != len(want[0]) || len(got[0]) == 0 {
				t.Fatalf("rebuilt index has %d entries, want %d", len(got[0]), len(want[0]))
			}
			for i := range want[0] {
				if got[0][i] != want[0][i] {
					t.Fatalf("rebuilt entry %d = %+v, want %+v", i, got[0][i], want[0][i])
				}
			}
			if _, err := readIndexFiles(first, fileSize(t, first)); err != nil {
				t.Fatalf("index files not rewritten: %v", err)
			}
			for off := int64(0); off < 60; off += 7 {
				b, err := l2.Read(off, 1, 60)
				if err != nil {
					t.Fatal(err)
				}
				checkContiguous(t, b, off, off+1)
			}
		})
	}
}

func TestRecoveryDeletesSegmentsAfterADamagedClosedSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 2048}
	l, err := Open(dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored := appendN(t, l, 40, 1, 100, 0, 0, 1)
	all := readAll(t, l)
	l.Close()
	segs := segmentFiles(t, dir, logSuffix)
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments, got %v", segs)
	}
	// Damage the last batch of the first segment (after its last index
	// entry, where recovery verifies).
	first := filepath.Join(dir, segs[0])
	size := fileSize(t, first)
	bsz := int64(len(stored[0]))
	flipByte(t, first, size-bsz+HeaderSize+1)

	log := &testLogger{}
	l2, err := Open(dir, cfg, log.logger())
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	wantEnd := size/bsz - 1
	if l2.EndOffset() != wantEnd {
		t.Fatalf("EndOffset %d, want %d", l2.EndOffset(), wantEnd)
	}
	if !bytes.Equal(readAll(t, l2), all[:wantEnd*bsz]) {
		t.Fatal("kept bytes differ")
	}
	if got := segmentFiles(t, dir, logSuffix); len(got) != 1 {
		t.Fatalf("segments after recovery %v, want only the first", got)
	}
	if !strings.Contains(log.String(), "deletedSegments="+strconv.Itoa(len(segs)-1)) {
		t.Errorf("no warning about deleted segments:\n%s", log.String())
	}
}

func TestRecoveryRemovesLeftoversAndOrphanIndexes(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3, 1, 1, 0, 0, 1)
	l.Close()
	junk := []string{
		"00000000000000000000.log.swap",
		"00000000000000000000.index.tmp",
		"leader-epoch-checkpoint.tmp",
		"00000000000000000500.index",
		"00000000000000000500.timeindex",
	}
	for _, name := range junk {
		writeFile(t, filepath.Join(dir, name), []byte("junk"))
	}
	writeFile(t, filepath.Join(dir, "producer-state.snapshot"), []byte("someone else's"))
	l2 := openLog(t, dir, Config{})
	if l2.EndOffset() != 3 {
		t.Fatalf("EndOffset %d, want 3", l2.EndOffset())
	}
	for _, name := range junk {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s survived Open", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "producer-state.snapshot")); err != nil {
		t.Errorf("Open removed a file it does not own: %v", err)
	}
}

func TestOpenEmptyDirectoryStartsAtZero(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "topic-3")
	l := openLog(t, dir, Config{})
	if l.StartOffset() != 0 || l.EndOffset() != 0 || l.LatestEpoch() != -1 || l.Size() != 0 {
		t.Fatalf("new log: start %d end %d epoch %d size %d", l.StartOffset(), l.EndOffset(), l.LatestEpoch(), l.Size())
	}
	if b, err := l.Read(0, 100, 0); err != nil || len(b) != 0 {
		t.Fatalf("Read on empty log: %d bytes, %v", len(b), err)
	}
	if segs := segmentFiles(t, dir, logSuffix); len(segs) != 1 || segs[0] != segmentFileName(0) {
		t.Fatalf("segments %v", segs)
	}
}

func truncateFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, pos int64) {
	t.Helper()
	b := readFile(t, path)
	b[pos] ^= 0x5a
	writeFile(t, path, b)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
