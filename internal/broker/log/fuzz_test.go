package log

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are inputs both fuzz targets start from (testdata/fuzz holds
// more).
func fuzzSeeds() [][]byte {
	a := buildBatch(spec{base: 0, epoch: 1, records: 3, valueSize: 20, ts: 100})
	b := buildBatch(spec{base: 3, epoch: 2, records: 1, ts: 200})
	c := buildBatch(spec{base: 4, epoch: 2, records: 2, attrs: 2, tail: []byte("snappy?")})
	flipped := concat(a, b)
	flipped[len(a)+HeaderSize+2] ^= 0x80
	return [][]byte{
		{},
		a,
		concat(a, b, c),
		concat(a, b)[:len(a)+len(b)/2],
		concat(a, []byte("garbage after a good batch")),
		flipped,
		make([]byte, 100),
	}
}

func FuzzValidateBatches(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, 0)
	}
	f.Fuzz(func(t *testing.T, data []byte, maxBatchBytes int) {
		hs, err := ValidateBatches(data, maxBatchBytes)
		if err != nil {
			var be *BatchError
			if !errors.As(err, &be) || !(errors.Is(err, ErrCorruptBatch) || errors.Is(err, ErrBatchTooLarge)) {
				t.Fatalf("error %v is not a *BatchError wrapping a sentinel", err)
			}
			if be.Pos < 0 || (len(data) > 0 && be.Pos >= int64(len(data))) {
				t.Fatalf("error position %d outside the %d-byte input", be.Pos, len(data))
			}
			return
		}
		pos := 0
		for i, h := range hs {
			again, err := ParseBatchHeader(data[pos:])
			if err != nil || again != h {
				t.Fatalf("batch %d: header does not re-parse: %v", i, err)
			}
			if h.NumRecords < 1 || h.LastOffsetDelta != h.NumRecords-1 {
				t.Fatalf("batch %d: accepted %d records with last offset delta %d", i, h.NumRecords, h.LastOffsetDelta)
			}
			if maxBatchBytes > 0 && h.Size() > maxBatchBytes {
				t.Fatalf("batch %d: %d bytes accepted over the %d limit", i, h.Size(), maxBatchBytes)
			}
			pos += h.Size()
		}
		if pos != len(data) {
			t.Fatalf("batches cover %d of %d bytes", pos, len(data))
		}
	})
}

// FuzzRecover opens a log whose active segment holds arbitrary bytes. Open
// must succeed and yield a consistent log: a valid prefix of the bytes,
// contiguous offsets, appends that continue it, and the same state again
// after a reopen.
func FuzzRecover(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(checkRecover)
}

func checkRecover(t *testing.T, data []byte) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, segmentFileName(0)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{IndexIntervalBytes: 64}
	l, err := Open(dir, cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l.Close()
	if l.StartOffset() != 0 || l.EndOffset() < 0 {
		t.Fatalf("offsets [%d, %d)", l.StartOffset(), l.EndOffset())
	}
	got := readAll(t, l)
	checkContiguous(t, got, 0, l.EndOffset())
	if !bytes.HasPrefix(data, got) {
		t.Fatal("recovered bytes are not a prefix of the file")
	}
	if l.Size() != int64(len(got)) || fileSize(t, filepath.Join(dir, segmentFileName(0))) != int64(len(got)) {
		t.Fatalf("size %d, file %d, recovered %d", l.Size(), fileSize(t, filepath.Join(dir, segmentFileName(0))), len(got))
	}
	// Every offset is readable on its own, through the index.
	for off := int64(0); off < l.EndOffset(); off++ {
		b, err := l.Read(off, 1, l.EndOffset())
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if hs, err := ValidateBatches(b, 0); err != nil || len(hs) != 1 || hs[0].BaseOffset > off || hs[0].LastOffset() < off {
			t.Fatalf("Read(%d) returned the wrong batch (%v)", off, err)
		}
	}
	end := l.EndOffset()
	epoch := max(l.LatestEpoch(), 0)
	if base, err := l.AppendLeader(buildBatch(spec{records: 2}), epoch); err != nil || base != end {
		t.Fatalf("append after recovery: base %d, err %v, want %d", base, err, end)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(dir, cfg, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer l2.Close()
	if l2.EndOffset() != end+2 || !bytes.HasPrefix(readAll(t, l2), got) {
		t.Fatalf("reopen: end %d, want %d", l2.EndOffset(), end+2)
	}
}
