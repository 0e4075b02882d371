package log

import (
	"math/rand/v2"
	"testing"
)

// benchBatch is a ~16 KiB batch of 16 records of 1 KiB values.
func benchBatch() []byte { return buildBatch(spec{records: 16, valueSize: 1000, ts: 1}) }

func BenchmarkAppend(b *testing.B) {
	l := openLog(b, b.TempDir(), Config{SegmentBytes: 64 << 20})
	batch := benchBatch()
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.AppendLeader(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	l := openLog(b, b.TempDir(), Config{SegmentBytes: 16 << 20})
	batch := benchBatch()
	for range 4096 { // 64 MiB in 4 segments
		if _, err := l.AppendLeader(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	end := l.EndOffset()
	rng := rand.New(rand.NewPCG(1, 2))
	const maxBytes = 1 << 20
	b.SetBytes(maxBytes)
	b.ReportAllocs()
	for b.Loop() {
		got, err := l.Read(rng.Int64N(end), maxBytes, end)
		if err != nil || len(got) == 0 {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadSmallFetch(b *testing.B) {
	l := openLog(b, b.TempDir(), Config{SegmentBytes: 16 << 20})
	for range 100_000 { // ~100-byte batches: lookups walk headers after the index
		if _, err := l.AppendLeader(buildBatch(spec{valueSize: 30}), 0); err != nil {
			b.Fatal(err)
		}
	}
	end := l.EndOffset()
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Read(rng.Int64N(end), 1, end); err != nil {
			b.Fatal(err)
		}
	}
}
