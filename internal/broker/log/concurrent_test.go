package log

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentReadersAndWriter runs appends, truncations and retention
// against readers of every kind; run it with -race. Every successful read
// must return whole, valid batches starting with the one holding the
// requested offset.
func TestConcurrentReadersAndWriter(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 8 << 10, IndexIntervalBytes: 512, RetentionBytes: 64 << 10, RetentionMs: -1})
	var done atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}

	wg.Add(1)
	go func() { // the one writer: appends, now and then a truncation
		defer wg.Done()
		defer done.Store(true)
		rng := rand.New(rand.NewPCG(1, 1))
		// 600 batches of ~400 bytes roll 8 KiB segments ~30 times, let retention (64 KiB) delete
		// most of them under the readers, and truncate six times.
		for i := range 600 {
			b := buildBatch(spec{records: 1 + rng.IntN(4), valueSize: rng.IntN(300), ts: int64(i)})
			if _, err := l.AppendLeader(b, int32(i/120)); err != nil {
				report(err)
				return
			}
			if i%100 == 99 {
				if err := l.Truncate(l.EndOffset() - int64(rng.IntN(6))); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
					report(err)
					return
				}
			}
		}
	}()
	wg.Add(1)
	go func() { // retention
		defer wg.Done()
		for !done.Load() {
			if _, err := l.ApplyRetention(time.Now(), math.MaxInt64); err != nil {
				report(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()

	var reads atomic.Int64
	check := func(b []byte, offset int64) error {
		if len(b) == 0 {
			return nil
		}
		hs, err := ValidateBatches(b, 0)
		if err != nil {
			return err
		}
		if hs[0].BaseOffset > offset || hs[0].LastOffset() < offset {
			return errors.New("first batch does not hold the requested offset")
		}
		for i := 1; i < len(hs); i++ {
			if hs[i].BaseOffset != hs[i-1].NextOffset() {
				return errors.New("batches not contiguous")
			}
		}
		return nil
	}
	reader := func(seed uint64, read func(offset int64) error) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, seed))
		for !done.Load() {
			start, end := l.StartOffset(), l.EndOffset()
			offset := start + rng.Int64N(end-start+1)
			if err := read(offset); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
				report(err)
				return
			}
			reads.Add(1)
		}
	}
	for i := range 2 {
		wg.Add(1)
		go reader(uint64(10+i), func(offset int64) error {
			b, err := l.Read(offset, 4096, l.EndOffset())
			if err != nil {
				return err
			}
			return check(b, offset)
		})
	}
	wg.Add(1)
	go reader(20, func(offset int64) error {
		ss, err := l.ReadSlices(offset, 4096, l.EndOffset())
		if err != nil {
			return err
		}
		defer ReleaseSlices(ss)
		var buf bytes.Buffer
		for _, s := range ss {
			b := make([]byte, s.Len)
			if _, err := s.File.ReadAt(b, s.Pos); err != nil {
				return err
			}
			buf.Write(b)
		}
		return check(buf.Bytes(), offset)
	})
	wg.Add(1)
	go reader(30, func(offset int64) error {
		if _, _, _, err := l.OffsetForTimestamp(offset); err != nil {
			return err
		}
		next := int64(-1)
		return l.Scan(offset, func(h BatchHeader) bool {
			if next >= 0 && h.BaseOffset != next {
				report(errors.New("Scan: batches not contiguous"))
				return false
			}
			next = h.NextOffset()
			return true
		})
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if reads.Load() == 0 {
		t.Fatal("readers never ran")
	}
	t.Logf("%d reads; log now [%d, %d)", reads.Load(), l.StartOffset(), l.EndOffset())
	checkContiguous(t, readAll(t, l), l.StartOffset(), l.EndOffset())
}
