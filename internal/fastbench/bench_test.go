package fastbench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The benchmarks run the same comparisons as Run, one per claim, each side for benchSide per
// iteration, and report both sides and the ratio of the last iteration. Run them with
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/fastbench/
const benchSide = time.Second

func noProgress(string) {}

// report reports row's sides and ratio as benchmark metrics.
func report(b *testing.B, row Row) {
	unit := func(s Side) string {
		return strings.NewReplacer(" ", "-", "µ", "u").Replace(s.Name) + "_" + strings.ReplaceAll(s.Unit, "µ", "u")
	}
	b.ReportMetric(row.Claimed.Value, unit(row.Claimed))
	b.ReportMetric(row.Opposite.Value, unit(row.Opposite))
	b.ReportMetric(row.Ratio, "x-ratio")
}

func BenchmarkDiskSequentialVsRandom(b *testing.B) {
	var row Row
	for b.Loop() {
		var err error
		if row, err = DiskWrites(context.Background(), b.TempDir(), 64<<20, benchSide, noProgress); err != nil {
			b.Fatal(err)
		}
	}
	report(b, row)
	b.Log(row.Note)
}

func BenchmarkProduceBatchedVsOnePerRequest(b *testing.B) {
	var row Row
	for b.Loop() {
		var err error
		if row, err = Produce(context.Background(), b.TempDir(), benchSide, noProgress); err != nil {
			b.Fatal(err)
		}
	}
	report(b, row)
}

func BenchmarkCompressionVsNone(b *testing.B) {
	var rows []Row
	for b.Loop() {
		var err error
		if rows, err = Compression(context.Background(), benchSide, noProgress); err != nil {
			b.Fatal(err)
		}
	}
	for _, row := range rows {
		b.ReportMetric(row.Ratio, row.Claimed.Name+"-x-smaller")
	}
}

func BenchmarkOffsetLookupIndexVsScan(b *testing.B) {
	for _, size := range []int64{1 << 20, 8 << 20, 64 << 20} {
		b.Run(sizeText(size), func(b *testing.B) {
			var rows []Row
			for b.Loop() {
				var err error
				if rows, err = OffsetLookup(context.Background(), b.TempDir(), []int64{size}, benchSide, noProgress); err != nil {
					b.Fatal(err)
				}
			}
			report(b, rows[0])
		})
	}
}

func BenchmarkFetchSendfileVsCopy(b *testing.B) {
	var row Row
	for b.Loop() {
		var err error
		if row, err = Fetch(context.Background(), b.TempDir(), 64<<20, benchSide, noProgress); err != nil {
			b.Fatal(err)
		}
	}
	report(b, row)
}
