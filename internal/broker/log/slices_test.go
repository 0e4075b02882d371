package log

import (
	"bytes"
	"errors"
	"math"
	"os"
	"testing"
	"time"
)

func sliceBytes(t *testing.T, ss []FileSlice) []byte {
	t.Helper()
	var out []byte
	for _, s := range ss {
		b := make([]byte, s.Len)
		if _, err := s.File.ReadAt(b, s.Pos); err != nil {
			t.Fatalf("ReadAt slice: %v", err)
		}
		out = append(out, b...)
	}
	return out
}

func TestReadSlicesNameTheBytesReadReturns(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 1500, IndexIntervalBytes: 200})
	stored := appendN(t, l, 40, 2, 90, 0, 0, 1)
	bsz := len(stored[0])
	tests := []struct {
		offset    int64
		maxBytes  int
		maxOffset int64
	}{
		{0, 1 << 20, 80}, {7, 3 * bsz, 80}, {33, 1, 80}, {10, 1 << 20, 41}, {79, 100, 80}, {80, 100, 80}, {20, 100, 20},
	}
	for _, tt := range tests {
		want, err := l.Read(tt.offset, tt.maxBytes, tt.maxOffset)
		if err != nil {
			t.Fatal(err)
		}
		ss, err := l.ReadSlices(tt.offset, tt.maxBytes, tt.maxOffset)
		if err != nil {
			t.Fatal(err)
		}
		if got := sliceBytes(t, ss); !bytes.Equal(got, want) {
			t.Errorf("ReadSlices(%d, %d, %d): %d bytes in %d slices, Read gave %d", tt.offset, tt.maxBytes, tt.maxOffset, len(got), len(ss), len(want))
		}
		ReleaseSlices(ss)
	}
}

func TestReadSlicesKeepTheirBytesUntilReleased(t *testing.T) {
	bsz := int64(len(buildBatch(spec{valueSize: 100})))
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 4 * bsz, RetentionMs: 1})
	appendN(t, l, 10, 1, 100, 0, 0, 1) // segments at 0, 4, 8
	want := readAll(t, l)
	ss, err := l.ReadSlices(0, 1<<20, l.EndOffset())
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 3 {
		t.Fatalf("%d slices, want one per segment", len(ss))
	}
	// Truncate everything and write other bytes in the same places.
	if err := l.Truncate(0); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 10, 1, 100, 0, 777, 1)
	if bytes.Equal(readAll(t, l), want) {
		t.Fatal("test needs the new bytes to differ")
	}
	if got := sliceBytes(t, ss); !bytes.Equal(got, want) {
		t.Fatal("slice bytes changed under truncate and append")
	}
	// Retention deletes the new segments' files; the slices are unaffected.
	if n, err := l.ApplyRetention(time.Now(), math.MaxInt64); err != nil || n != 2 {
		t.Fatalf("retention deleted %d, err %v", n, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := sliceBytes(t, ss); !bytes.Equal(got, want) {
		t.Fatal("slice bytes changed under retention and Close")
	}
	ReleaseSlices(ss)
	ReleaseSlices(ss) // a second release does nothing
	if _, err := ss[0].File.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("file still open after release and Close: %v", err)
	}
}

func TestUnpinnedTruncateCutsInPlace(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	appendN(t, l, 5, 1, 10, 0, 0, 1)
	l.mu.RLock()
	before := l.segs[0]
	l.mu.RUnlock()
	if err := l.Truncate(2); err != nil {
		t.Fatal(err)
	}
	l.mu.RLock()
	after := l.segs[0]
	l.mu.RUnlock()
	if before != after {
		t.Fatal("truncate copied a segment no reader held")
	}
}
