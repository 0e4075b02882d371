package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestAppendLeaderAssignsOffsetsAndReadReturnsTheSameBytes(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	b1 := buildBatch(spec{base: 999, epoch: -1, records: 3, valueSize: 10})
	b2 := buildBatch(spec{records: 2})
	b3 := buildBatch(spec{records: 1})

	base, err := l.AppendLeader(concat(b1), 4)
	if err != nil || base != 0 {
		t.Fatalf("first append: base %d, err %v", base, err)
	}
	multi := concat(b2, b3)
	base, err = l.AppendLeader(multi, 4)
	if err != nil || base != 3 {
		t.Fatalf("second append: base %d, err %v", base, err)
	}
	if l.EndOffset() != 6 || l.StartOffset() != 0 {
		t.Fatalf("offsets [%d, %d), want [0, 6)", l.StartOffset(), l.EndOffset())
	}
	got := readAll(t, l)
	hs, err := ValidateBatches(got, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantBases := []int64{0, 3, 5}
	for i, h := range hs {
		if h.BaseOffset != wantBases[i] || h.PartitionLeaderEpoch != 4 {
			t.Errorf("batch %d: base %d epoch %d, want base %d epoch 4", i, h.BaseOffset, h.PartitionLeaderEpoch, wantBases[i])
		}
	}
	// Apart from offset and epoch, the stored bytes are the produced ones.
	want := concat(b1, multi)
	stamp := func(b []byte, pos int, base int64) {
		binary.BigEndian.PutUint64(b[pos:], uint64(base))
		binary.BigEndian.PutUint32(b[pos+posLeaderEpoch:], 4)
	}
	stamp(want, 0, 0)
	stamp(want, len(b1), 3)
	stamp(want, len(b1)+len(b2), 5)
	if !bytes.Equal(got, want) {
		t.Fatal("stored bytes differ from the appended batches")
	}
	if l.Size() != int64(len(want)) {
		t.Fatalf("Size %d, want %d", l.Size(), len(want))
	}
}

func TestAppendLeaderIsAllOrNothing(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	appendN(t, l, 2, 1, 10, 0, 0, 1)
	before := readAll(t, l)
	bad := buildBatch(spec{records: 2})
	bad[len(bad)-1] ^= 1
	if _, err := l.AppendLeader(concat(buildBatch(spec{}), bad), 0); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("got %v, want ErrCorruptBatch", err)
	}
	if l.EndOffset() != 2 || !bytes.Equal(readAll(t, l), before) {
		t.Fatal("failed append changed the log")
	}
}

func TestAppendLeaderRejectsStaleOrNegativeEpoch(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	appendN(t, l, 1, 1, 1, 5, 0, 1)
	if _, err := l.AppendLeader(buildBatch(spec{}), 4); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("epoch 4 after 5: got %v, want ErrStaleEpoch", err)
	}
	if _, err := l.AppendLeader(buildBatch(spec{}), -1); err == nil {
		t.Fatal("epoch -1 accepted")
	}
	if l.EndOffset() != 1 {
		t.Fatalf("EndOffset %d after rejected appends, want 1", l.EndOffset())
	}
}

func TestReadReturnsWholeBatchesWithinLimits(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	// 10 batches of 5 records: batch i holds offsets [5i, 5i+5).
	stored := appendN(t, l, 10, 5, 100, 0, 0, 1)
	bsz := len(stored[0])
	tests := []struct {
		name      string
		offset    int64
		maxBytes  int
		maxOffset int64
		first     int64 // base offset of the first batch returned
		batches   int
	}{
		{name: "from start, room for all", offset: 0, maxBytes: 1 << 20, maxOffset: 50, first: 0, batches: 10},
		{name: "offset inside a batch returns that whole batch", offset: 7, maxBytes: 1 << 20, maxOffset: 50, first: 5, batches: 9},
		{name: "maxBytes cuts at a batch boundary", offset: 0, maxBytes: 3*bsz + bsz/2, maxOffset: 50, first: 0, batches: 3},
		{name: "maxBytes smaller than a batch still returns one", offset: 12, maxBytes: 10, maxOffset: 50, first: 10, batches: 1},
		{name: "zero maxBytes returns one batch", offset: 0, maxBytes: 0, maxOffset: 50, first: 0, batches: 1},
		{name: "maxOffset excludes batches starting at or after it", offset: 0, maxBytes: 1 << 20, maxOffset: 20, first: 0, batches: 4},
		{name: "maxOffset inside a batch includes that batch", offset: 0, maxBytes: 1 << 20, maxOffset: 22, first: 0, batches: 5},
		{name: "maxOffset past the end is clamped", offset: 45, maxBytes: 1 << 20, maxOffset: 1000, first: 45, batches: 1},
		{name: "offset equal to maxOffset is empty", offset: 20, maxBytes: 1 << 20, maxOffset: 20, batches: 0},
		{name: "offset past maxOffset but in the log is empty", offset: 30, maxBytes: 1 << 20, maxOffset: 20, batches: 0},
		{name: "offset at the end is empty", offset: 50, maxBytes: 1 << 20, maxOffset: 50, batches: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Read(tt.offset, tt.maxBytes, tt.maxOffset)
			if err != nil {
				t.Fatal(err)
			}
			if tt.batches == 0 {
				if len(got) != 0 {
					t.Fatalf("got %d bytes, want none", len(got))
				}
				return
			}
			checkContiguous(t, got, tt.first, tt.first+int64(tt.batches)*5)
		})
	}
}

func TestReadOutsideTheLogIsOutOfRange(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	appendN(t, l, 3, 1, 1, 0, 0, 1)
	for _, off := range []int64{-1, 4, 1 << 40} {
		if _, err := l.Read(off, 100, 3); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Errorf("Read(%d): got %v, want ErrOffsetOutOfRange", off, err)
		}
		if _, err := l.ReadSlices(off, 100, 3); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Errorf("ReadSlices(%d): got %v, want ErrOffsetOutOfRange", off, err)
		}
		if err := l.Scan(off, func(BatchHeader) bool { return true }); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Errorf("Scan(%d): got %v, want ErrOffsetOutOfRange", off, err)
		}
	}
}

func TestReadResultIsACopy(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	appendN(t, l, 2, 1, 10, 0, 0, 1)
	got := readAll(t, l)
	saved := concat(got)
	if err := l.Truncate(0); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2, 1, 10, 0, 5000, 1) // same size, other timestamps: other bytes in the same place
	got[0] ^= 0xff                      // and scribbling on the copy must not reach the log
	if !bytes.Equal(got[1:], saved[1:]) {
		t.Fatal("returned slice changed after truncate and append")
	}
	if b := readAll(t, l); b[0] == got[0] {
		t.Fatal("writing into a returned slice changed the log")
	}
}

func TestRollAtSegmentBytesAndReadAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	b := buildBatch(spec{records: 2, valueSize: 200})
	per := 4 // batches per segment
	l := openLog(t, dir, Config{SegmentBytes: int64(per*len(b) + len(b)/2)})
	appendN(t, l, 10, 2, 200, 0, 0, 1)

	logs := segmentFiles(t, dir, logSuffix)
	want := []string{"00000000000000000000.log", "00000000000000000008.log", "00000000000000000016.log"}
	if len(logs) != len(want) {
		t.Fatalf("segments %v, want %v", logs, want)
	}
	for i := range want {
		if logs[i] != want[i] {
			t.Fatalf("segments %v, want %v", logs, want)
		}
	}
	if got := fileSize(t, filepath.Join(dir, logs[0])); got != int64(per*len(b)) {
		t.Fatalf("first segment %d bytes, want %d", got, per*len(b))
	}
	// Closed segments have index files; the active one only in memory.
	if idx := segmentFiles(t, dir, indexSuffix); len(idx) != 2 {
		t.Fatalf("index files %v, want the two closed segments'", idx)
	}
	checkContiguous(t, readAll(t, l), 0, 20)
	// A read starting in the first segment continues into the next ones.
	got, err := l.Read(6, 5*len(b), 20)
	if err != nil {
		t.Fatal(err)
	}
	checkContiguous(t, got, 6, 16)
}

func TestBatchLargerThanSegmentBytesGetsItsOwnSegment(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{SegmentBytes: 100})
	appendN(t, l, 3, 1, 500, 0, 0, 1)
	if n := len(segmentFiles(t, dir, logSuffix)); n != 3 {
		t.Fatalf("%d segments, want 3", n)
	}
	checkContiguous(t, readAll(t, l), 0, 3)
}

func TestMultiBatchAppendRollsMidway(t *testing.T) {
	dir := t.TempDir()
	b := buildBatch(spec{valueSize: 100})
	l := openLog(t, dir, Config{SegmentBytes: int64(2 * len(b))})
	var in []byte
	for range 5 {
		in = append(in, buildBatch(spec{valueSize: 100})...)
	}
	if _, err := l.AppendLeader(in, 0); err != nil {
		t.Fatal(err)
	}
	if n := len(segmentFiles(t, dir, logSuffix)); n != 3 {
		t.Fatalf("%d segments, want 3", n)
	}
	checkContiguous(t, readAll(t, l), 0, 5)
}

func TestSparseIndexHasAnEntryPerInterval(t *testing.T) {
	dir := t.TempDir()
	const interval = 1024
	l := openLog(t, dir, Config{IndexIntervalBytes: interval, SegmentBytes: 32 << 10})
	stored := appendN(t, l, 400, 1, 50, 0, 0, 1) // ~100-byte batches, several segments
	bsz := int64(len(stored[0]))

	l.mu.RLock()
	segs := append([]*segment(nil), l.segs...)
	l.mu.RUnlock()
	if len(segs) < 2 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	for _, s := range segs {
		// An entry is added once more than interval bytes followed the
		// last one, so entries are about interval+batch apart.
		per := (interval/bsz + 1) * bsz
		want := int((s.st.size - 1) / per)
		t.Logf("segment %d: %d bytes, %d index entries (want about %d)", s.base, s.st.size, len(s.st.index), want)
		if got := len(s.st.index); got < want-1 || got > want+1 {
			t.Errorf("segment %d: %d index entries for %d bytes, want about %d", s.base, got, s.st.size, want)
		}
		for _, e := range s.st.index {
			// Every entry points at the batch it names.
			var hdr [HeaderSize]byte
			if _, err := s.f.ReadAt(hdr[:], int64(e.pos)); err != nil {
				t.Fatal(err)
			}
			if h := decodeHeader(hdr[:]); h.BaseOffset != s.base+int64(e.rel) {
				t.Fatalf("entry (%d, %d) points at batch %d", e.rel, e.pos, h.BaseOffset)
			}
		}
		if s != segs[len(segs)-1] {
			if got := fileSize(t, indexPath(s.path)); got != int64(len(s.st.index)*offsetEntrySize) {
				t.Errorf("segment %d: index file %d bytes, want %d", s.base, got, len(s.st.index)*offsetEntrySize)
			}
		}
	}
}

func TestReadsUseTheIndexInsteadOfScanningFromTheSegmentStart(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{IndexIntervalBytes: 512})
	stored := appendN(t, l, 100, 1, 50, 0, 0, 1)
	bsz := int64(len(stored[0]))
	// Damage the header of batch 1 behind the log's back. A lookup that
	// walked from the segment start would trip over it; one that starts at
	// an index entry past it does not.
	f, err := os.OpenFile(filepath.Join(dir, segmentFileName(0)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, bsz+posMagic); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := l.Read(1, 1, 100); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("reading the damaged batch: got %v, want ErrCorruptBatch", err)
	}
	got, err := l.Read(90, 1, 100)
	if err != nil {
		t.Fatalf("reading past an index entry after the damage: %v", err)
	}
	checkContiguous(t, got, 90, 91)
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 2048, IndexIntervalBytes: 256}
	l, err := Open(dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 50, 2, 60, 3, 1000, 10)
	before := readAll(t, l)
	idxBefore := segmentIndexes(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	log := &testLogger{}
	l2, err := Open(dir, cfg, log.logger())
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.EndOffset() != 100 || l2.LatestEpoch() != 3 {
		t.Fatalf("reopened: end %d epoch %d, want 100 and 3", l2.EndOffset(), l2.LatestEpoch())
	}
	if !bytes.Equal(readAll(t, l2), before) {
		t.Fatal("bytes differ after reopen")
	}
	idxAfter := segmentIndexes(l2)
	for base, idx := range idxBefore {
		if len(idxAfter[base]) != len(idx) {
			t.Errorf("segment %d: %d index entries after reopen, %d before", base, len(idxAfter[base]), len(idx))
		}
	}
	if s := log.String(); bytes.Contains([]byte(s), []byte("WARN")) {
		t.Errorf("clean reopen logged warnings:\n%s", s)
	}
	appendN(t, l2, 1, 1, 1, 3, 0, 1)
	if l2.EndOffset() != 101 {
		t.Fatalf("append after reopen: end %d, want 101", l2.EndOffset())
	}
}

func segmentIndexes(l *Log) map[int64][]indexEntry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m := map[int64][]indexEntry{}
	for _, s := range l.segs {
		m[s.base] = s.st.index
	}
	return m
}

func TestClosedLogReturnsErrClosed(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	appendN(t, l, 1, 1, 1, 0, 0, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checks := map[string]error{}
	_, checks["AppendLeader"] = l.AppendLeader(buildBatch(spec{}), 0)
	_, checks["AppendFollower"] = l.AppendFollower(buildBatch(spec{base: 1}))
	_, checks["Read"] = l.Read(0, 100, 1)
	_, checks["ReadSlices"] = l.ReadSlices(0, 100, 1)
	checks["Scan"] = l.Scan(0, func(BatchHeader) bool { return true })
	checks["Truncate"] = l.Truncate(0)
	_, checks["ApplyRetention"] = l.ApplyRetention(timeNow(), math.MaxInt64)
	checks["Sync"] = l.Sync()
	_, _, _, checks["OffsetForTimestamp"] = l.OffsetForTimestamp(0)
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}

func TestDeleteRemovesTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "topic-0")
	l := openLog(t, dir, Config{})
	appendN(t, l, 3, 1, 1, 0, 0, 1)
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory still there: %v", err)
	}
	if _, err := l.Read(0, 1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Delete: got %v, want ErrClosed", err)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative segment bytes", Config{SegmentBytes: -1}, "Config.SegmentBytes"},
		{"segment bytes over 2 GiB", Config{SegmentBytes: 1 << 31}, "Config.SegmentBytes"},
		{"negative index interval", Config{IndexIntervalBytes: -5}, "Config.IndexIntervalBytes"},
		{"retention ms below -1", Config{RetentionMs: -2}, "Config.RetentionMs"},
		{"retention bytes below -1", Config{RetentionBytes: -2}, "Config.RetentionBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(t.TempDir(), tt.cfg, nil)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Fatalf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
	// Every problem is reported at once.
	_, err := Open(t.TempDir(), Config{SegmentBytes: -1, RetentionBytes: -7}, nil)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("SegmentBytes")) || !bytes.Contains([]byte(err.Error()), []byte("RetentionBytes")) {
		t.Fatalf("got %v, want both problems", err)
	}
}

func TestZeroConfigMeansKafkaDefaults(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{SegmentBytes: 1 << 30, IndexIntervalBytes: 4096, RetentionMs: 604800000, RetentionBytes: -1, FlushMessages: math.MaxInt64}
	if cfg != want {
		t.Fatalf("defaults %+v, want %+v", cfg, want)
	}
}

// TestSyncEveryAppendSurvivesPowerLoss appends with and without an fsync per append, crashes
// (no flush on close), cuts the files back to what was fsynced, and reopens: with the fsync every
// acknowledged append is there, without it the unsynced tail of the active segment is gone (which
// shows the cut can tell the difference).
func TestSyncEveryAppendSurvivesPowerLoss(t *testing.T) {
	for _, syncEvery := range []bool{true, false} {
		t.Run(fmt.Sprintf("SyncEveryAppend=%v", syncEvery), func(t *testing.T) {
			dir, disk := t.TempDir(), NewDisk()
			cfg := Config{SyncEveryAppend: syncEvery, SegmentBytes: 1024, Disk: disk}
			l := openLog(t, dir, cfg)
			appendN(t, l, 20, 2, 50, 1, 0, 1)
			want := readAll(t, l)
			l.Abandon()
			lost, removed, err := disk.PowerLoss()
			if err != nil {
				t.Fatal(err)
			}
			l2 := openLog(t, dir, cfg)
			if syncEvery {
				if lost != 0 || removed != 0 || l2.EndOffset() != 40 || !bytes.Equal(readAll(t, l2), want) {
					t.Fatalf("after the power loss: %d bytes and %d files lost, end offset %d; want nothing lost, end 40", lost, removed, l2.EndOffset())
				}
				return
			}
			if lost == 0 || l2.EndOffset() >= 40 {
				t.Fatalf("without fsync the power loss cut %d bytes and the log ends at %d; want the unsynced tail (below 40) gone", lost, l2.EndOffset())
			}
			checkContiguous(t, readAll(t, l2), 0, l2.EndOffset())
		})
	}
}

// TestFlushMessagesSyncsEveryNMessages: with FlushMessages 5 and appends of 2 messages, the
// third append (6 messages) fsyncs and the fourth does not, so a power loss keeps 6 messages;
// SetFlushMessages(1) then makes every append durable.
func TestFlushMessagesSyncsEveryNMessages(t *testing.T) {
	dir, disk := t.TempDir(), NewDisk()
	cfg := Config{FlushMessages: 5, Disk: disk}
	l := openLog(t, dir, cfg)
	appendN(t, l, 4, 2, 10, 0, 0, 1)
	l.Abandon()
	if _, _, err := disk.PowerLoss(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	if got := l.EndOffset(); got != 6 {
		t.Fatalf("after the power loss the log ends at %d, want 6 (fsynced by the third append)", got)
	}
	l.SetFlushMessages(1)
	appendN(t, l, 1, 3, 10, 0, 0, 1)
	l.Abandon()
	if _, _, err := disk.PowerLoss(); err != nil {
		t.Fatal(err)
	}
	if got := openLog(t, dir, cfg).EndOffset(); got != 9 {
		t.Fatalf("after SetFlushMessages(1) and a power loss the log ends at %d, want 9", got)
	}
}

// TestCloseSyncsAndAbandonDoesNot: Close is a clean shutdown (everything fsynced survives a
// power loss); Abandon is a crash that writes nothing, so a later power loss takes what was
// never fsynced.
func TestCloseSyncsAndAbandonDoesNot(t *testing.T) {
	for _, clean := range []bool{true, false} {
		dir, disk := t.TempDir(), NewDisk()
		cfg := Config{Disk: disk}
		l := openLog(t, dir, cfg)
		appendN(t, l, 5, 1, 10, 0, 0, 1)
		if clean {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			l.Abandon()
		}
		if _, err := l.AppendLeader(buildBatch(spec{records: 1}), 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("append after close (clean=%v): %v, want ErrClosed", clean, err)
		}
		if _, _, err := disk.PowerLoss(); err != nil {
			t.Fatal(err)
		}
		end := openLog(t, dir, cfg).EndOffset()
		if clean && end != 5 || !clean && end != 0 {
			t.Fatalf("clean=%v: after a power loss the log ends at %d", clean, end)
		}
	}
}
