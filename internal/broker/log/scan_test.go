package log

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestScanVisitsHeadersFromTheBatchHoldingFrom(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 500, IndexIntervalBytes: 100})
	for i := range 20 {
		b := buildBatch(spec{records: 2, producerID: 7, baseSeq: int32(2 * i)})
		if _, err := l.AppendLeader(b, 0); err != nil {
			t.Fatal(err)
		}
	}
	var got []int64
	err := l.Scan(13, func(h BatchHeader) bool {
		got = append(got, h.BaseOffset)
		if h.ProducerID != 7 || h.BaseSequence != int32(h.BaseOffset) {
			t.Errorf("batch %d: producer %d sequence %d", h.BaseOffset, h.ProducerID, h.BaseSequence)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 14 || got[0] != 12 || got[13] != 38 {
		t.Fatalf("visited %v, want 12, 14, ..., 38", got)
	}
	var n int
	if err := l.Scan(0, func(BatchHeader) bool { n++; return n < 3 }); err != nil || n != 3 {
		t.Fatalf("early stop: %d calls, err %v", n, err)
	}
	if err := l.Scan(40, func(BatchHeader) bool { t.Fatal("called at the end"); return false }); err != nil {
		t.Fatal(err)
	}
	if err := l.Scan(41, func(BatchHeader) bool { return true }); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Scan past the end: %v", err)
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	for _, ts := range []int64{100, 200, 300} { // two records: max = ts+1
		if _, err := l.AppendLeader(buildBatch(spec{records: 2, ts: ts}), 0); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		ts         int64
		wantOffset int64
		wantTs     int64
		wantFound  bool
	}{
		{ts: 0, wantOffset: 0, wantTs: 101, wantFound: true},
		{ts: 101, wantOffset: 0, wantTs: 101, wantFound: true},
		{ts: 102, wantOffset: 2, wantTs: 201, wantFound: true},
		{ts: 301, wantOffset: 4, wantTs: 301, wantFound: true},
		{ts: 302, wantOffset: -1, wantTs: -1, wantFound: false},
	}
	for _, tt := range tests {
		off, ts, found, err := l.OffsetForTimestamp(tt.ts)
		if err != nil || off != tt.wantOffset || ts != tt.wantTs || found != tt.wantFound {
			t.Errorf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d, %d, %v", tt.ts, off, ts, found, err, tt.wantOffset, tt.wantTs, tt.wantFound)
		}
	}
}

func TestOffsetForTimestampMatchesALinearSearch(t *testing.T) {
	// Timestamps mostly rise but jump back now and then, across several
	// segments with a dense index.
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 2000, IndexIntervalBytes: 150})
	rng := rand.New(rand.NewPCG(1, 2))
	ts := int64(1000)
	for range 300 {
		ts += rng.Int64N(50)
		bts := ts
		if rng.IntN(10) == 0 {
			bts -= rng.Int64N(400)
		}
		if _, err := l.AppendLeader(buildBatch(spec{records: 1 + rng.IntN(3), ts: bts}), 0); err != nil {
			t.Fatal(err)
		}
	}
	var hs []BatchHeader
	if err := l.Scan(0, func(h BatchHeader) bool { hs = append(hs, h); return true }); err != nil {
		t.Fatal(err)
	}
	for q := int64(500); q < ts+100; q += 7 {
		wantOff, wantTs, wantFound := int64(-1), int64(-1), false
		for _, h := range hs {
			if h.MaxTimestamp >= q {
				wantOff, wantTs, wantFound = h.BaseOffset, h.MaxTimestamp, true
				break
			}
		}
		off, gotTs, found, err := l.OffsetForTimestamp(q)
		if err != nil || off != wantOff || gotTs != wantTs || found != wantFound {
			t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d, %d, %v", q, off, gotTs, found, err, wantOff, wantTs, wantFound)
		}
	}
}
