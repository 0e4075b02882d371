package log

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
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

// BenchmarkProduceValidation measures, in one run, what reading every record costs on the
// produce path of a 16 KiB batch (16 records of 1 KiB values of random text from a 32-letter
// alphabet, which the codecs shrink to about 60-70 %): "before" is the check the produce path did before
// ProduceValidator (ValidateBatches: header, CRC, and the records only when uncompressed),
// "after" is ProduceValidator.Validate, and "append" is the log append both are followed by.
// It reports each per op and the ratios after/before (validation alone) and
// (after+append)/(before+append) (the produce path below the request handling).
func BenchmarkProduceValidation(b *testing.B) {
	for codec, name := range codecs {
		b.Run("codec="+name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			batch := buildBatch(spec{records: 16, ts: 1, codec: int8(codec), recHook: func(_ int, r *kmsg.Record) {
				r.Value = make([]byte, 1000)
				for i := range r.Value {
					r.Value[i] = "abcdefghijklmnopqrstuvwxyz ,.\n{}"[rng.IntN(32)]
				}
				r.Length = 0
				r.Length = int32(len(r.AppendTo(nil)) - 1)
			}})
			l := openLog(b, b.TempDir(), Config{SegmentBytes: 256 << 20})
			v := NewProduceValidator(nil)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			var before, after, appendTime time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := ValidateBatches(batch, 0); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				h, err := v.Validate(batch, 0)
				if err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				if _, err := l.AppendValidated(batch, []BatchHeader{h}, 0); err != nil {
					b.Fatal(err)
				}
				binary.BigEndian.PutUint64(batch, 0) // a producer's base offset again
				before, after, appendTime = before+t1.Sub(t0), after+t2.Sub(t1), appendTime+time.Since(t2)
			}
			n := float64(b.N)
			b.ReportMetric(float64(before.Nanoseconds())/n, "before-ns/op")
			b.ReportMetric(float64(after.Nanoseconds())/n, "after-ns/op")
			b.ReportMetric(float64(appendTime.Nanoseconds())/n, "append-ns/op")
			b.ReportMetric(float64(after)/float64(before), "validate-x")
			b.ReportMetric(float64(after+appendTime)/float64(before+appendTime), "path-x")
		})
	}
}
