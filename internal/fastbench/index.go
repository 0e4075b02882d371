package fastbench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// indexBatchRecords is how many records each batch of the lookup logs holds (about 2 KiB).
const indexBatchRecords = 8

// OffsetLookup compares, for a log of each size in logSizes, finding the batch that holds a
// random offset through the log's sparse offset index (binary search, then at most about 4 KiB
// of batch headers; log.Log.ReadSlices) against scanning batch headers from the start of the
// log (log.Log.Scan), for about d per side and size. The index lookup stays flat as the log
// grows; the scan grows with it.
func OffsetLookup(ctx context.Context, dir string, logSizes []int64, d time.Duration, progress func(string)) ([]Row, error) {
	var rows []Row
	for _, size := range logSizes {
		row, err := offsetLookup(ctx, filepath.Join(dir, fmt.Sprintf("lookup-%d", size)), size, d, progress)
		if err != nil {
			return rows, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func offsetLookup(ctx context.Context, dir string, size int64, d time.Duration, progress func(string)) (Row, error) {
	progress("offset lookup: writing a " + sizeText(size) + " log")
	l, err := log.Open(dir, log.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		return Row{}, fmt.Errorf("fastbench: %w", err)
	}
	defer l.Delete()
	recs := newOrders(3)
	in := make([]records.Record, indexBatchRecords)
	for l.Size() < size {
		for i := range in {
			in[i] = records.Record{Value: recs.next()}
		}
		if _, err := l.AppendLeader(records.Build(in, 1, records.NoProducer), 0); err != nil {
			return Row{}, fmt.Errorf("fastbench: %w", err)
		}
	}
	start, end := l.StartOffset(), l.EndOffset()
	rng := rand.New(rand.NewPCG(4, 5))

	progress("offset lookup: sparse index, " + sizeText(size) + " log")
	n, elapsed, err := until(ctx, d, func() error {
		ss, err := l.ReadSlices(start+rng.Int64N(end-start), 1, end)
		if err == nil && len(ss) == 0 {
			err = errEmpty
		}
		log.ReleaseSlices(ss)
		return err
	})
	if err != nil {
		return Row{}, fmt.Errorf("fastbench: index lookup: %w", err)
	}
	index := Side{Name: "sparse index", Value: elapsed.Seconds() * 1e6 / float64(n), Unit: "µs/lookup"}

	progress("offset lookup: linear scan, " + sizeText(size) + " log")
	n, elapsed, err = until(ctx, d, func() error {
		target, found := start+rng.Int64N(end-start), false
		err := l.Scan(start, func(h log.BatchHeader) bool {
			found = h.LastOffset() >= target
			return !found
		})
		if err == nil && !found {
			err = errEmpty
		}
		return err
	})
	if err != nil {
		return Row{}, fmt.Errorf("fastbench: scan: %w", err)
	}
	scan := Side{Name: "linear scan", Value: elapsed.Seconds() * 1e6 / float64(n), Unit: "µs/lookup"}
	return costRow(fmt.Sprintf("offset lookup: index beats scan, %s log", sizeText(size)), index, scan,
		fmt.Sprintf("%d records in %d-record batches", end-start, indexBatchRecords)), nil
}
