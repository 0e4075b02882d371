package log

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// recover loads the directory into l; see the package documentation for
// the steps. It runs before l is shared, so it takes no locks.
func (l *Log) recover() error {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	var bases []int64
	haveLog := map[int64]bool{}
	var indexFiles []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) || strings.HasSuffix(name, swapSuffix) {
			l.logger.Info("log: removing leftover temporary file", "file", name)
			if err := l.disk.remove(filepath.Join(l.dir, name)); err != nil {
				return err
			}
			continue
		}
		if base, ok := parseSegmentFileName(name, logSuffix); ok && e.Type().IsRegular() {
			bases = append(bases, base)
			haveLog[base] = true
			continue
		}
		if _, ok := parseSegmentFileName(name, indexSuffix); ok {
			indexFiles = append(indexFiles, name)
		} else if _, ok := parseSegmentFileName(name, timeIndexSuffix); ok {
			indexFiles = append(indexFiles, name)
		} else if _, ok := parseSegmentFileName(name, txnIndexSuffix); ok {
			indexFiles = append(indexFiles, name)
		}
	}
	for _, name := range indexFiles {
		base, ok := parseSegmentFileName(name, filepath.Ext(name))
		if ok && !haveLog[base] {
			l.logger.Info("log: removing index of a missing segment", "file", name)
			if err := l.disk.remove(filepath.Join(l.dir, name)); err != nil {
				return err
			}
		}
	}
	slices.Sort(bases)

	sizes := make([]int64, 0, len(bases))
	for _, base := range bases {
		path := filepath.Join(l.dir, segmentFileName(base))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
		l.segs = append(l.segs, newSegment(base, path, f))
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
		sizes = append(sizes, fi.Size())
	}

	for i := 0; i < len(l.segs); i++ {
		seg := l.segs[i]
		if i < len(l.segs)-1 {
			bad, err := l.loadClosedSegment(seg, sizes[i])
			if err != nil {
				return err
			}
			if bad == "" && seg.st.next == l.segs[i+1].base {
				continue
			}
			if bad == "" {
				bad = fmt.Sprintf("segment ends at offset %d but the next one starts at %d", seg.st.next, l.segs[i+1].base)
			}
			// The log ends in or right after this segment: as Kafka does,
			// drop everything after the first damage.
			l.logger.Warn("log: damaged segment; deleting the segments after it",
				"segment", filepath.Base(seg.path), "reason", bad, "deletedSegments", len(l.segs)-i-1)
			for j := len(l.segs) - 1; j > i; j-- {
				l.removeSegmentFiles(l.segs[j])
				l.segs[j].unpin()
			}
			l.segs = l.segs[:i+1]
		}
		if err := l.recoverActiveSegment(seg, sizes[i]); err != nil {
			return err
		}
	}
	if len(l.segs) == 0 {
		seg, err := l.disk.createSegment(l.dir, 0)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, seg)
	}
	l.start = l.segs[0].base
	l.end = l.segs[len(l.segs)-1].st.next
	return l.recoverEpochs()
}

// loadClosedSegment loads a segment that is not the last one: it uses the
// index files if they are present and sane, and verifies the batches from
// the last index entry to the end of the file; otherwise it rebuilds the
// index by verifying every batch. It returns why the segment's data is
// damaged, or "".
func (l *Log) loadClosedSegment(seg *segment, size int64) (bad string, err error) {
	idx, ierr := readIndexFiles(seg.path, size)
	if ierr == nil && len(idx) > 0 {
		ierr = l.checkFirstBatch(seg, size)
	}
	if ierr == nil {
		st := segState{next: seg.base, maxTs: -1, index: idx}
		if n := len(idx); n > 0 {
			last := idx[n-1]
			st.size, st.next, st.maxTs = int64(last.pos), seg.base+int64(last.rel), last.maxTs
		}
		bad, err := scanSegment(seg, &st, size, l.cfg.IndexIntervalBytes, nil)
		if err != nil {
			return "", err
		}
		if bad == "" {
			seg.st = st
			return "", nil
		}
		ierr = errors.New(bad) // maybe the index lies; find out with a full scan
	}
	if !errors.Is(ierr, fs.ErrNotExist) {
		l.logger.Warn("log: rebuilding segment index", "segment", filepath.Base(seg.path), "reason", ierr)
	}
	st := segState{next: seg.base, maxTs: -1}
	bad, err = scanSegment(seg, &st, size, l.cfg.IndexIntervalBytes, nil)
	if err != nil {
		return "", err
	}
	seg.st = st
	if bad == "" {
		if err := l.disk.writeIndexFiles(seg.path, st.index); err != nil {
			l.logger.Warn("log: cannot write segment index", "segment", filepath.Base(seg.path), "err", err)
		}
	}
	return bad, nil
}

// checkFirstBatch checks that the segment's first batch starts at its
// base offset.
func (l *Log) checkFirstBatch(seg *segment, size int64) error {
	hr := headerReader{seg: seg}
	h, err := hr.at(0, size)
	if err != nil {
		return err
	}
	if h.BaseOffset != seg.base {
		return fmt.Errorf("first batch has base offset %d, want %d", h.BaseOffset, seg.base)
	}
	return nil
}

// recoverActiveSegment verifies every batch of the last segment and cuts
// the file at the first torn or bad one. Its index is rebuilt in memory;
// index files on disk are stale and removed.
func (l *Log) recoverActiveSegment(seg *segment, size int64) error {
	st := segState{next: seg.base, maxTs: -1}
	bad, err := scanSegment(seg, &st, size, l.cfg.IndexIntervalBytes, nil)
	if err != nil {
		return err
	}
	if err := l.disk.removeIndexFiles(seg.path); err != nil {
		l.logger.Warn("log: cannot remove stale index", "segment", filepath.Base(seg.path), "err", err)
	}
	if bad != "" {
		l.logger.Warn("log: truncating torn or corrupt tail of the active segment",
			"segment", filepath.Base(seg.path), "position", st.size, "bytesCut", size-st.size, "reason", bad)
		if err := l.disk.truncate(seg.f, seg.path, st.size); err != nil {
			return fmt.Errorf("log: truncate %s: %w", filepath.Base(seg.path), err)
		}
		if err := l.disk.sync(seg.f, seg.path); err != nil {
			return fmt.Errorf("log: sync %s: %w", filepath.Base(seg.path), err)
		}
	}
	seg.st = st
	return nil
}

// recoverEpochs loads the leader-epoch checkpoint, trims it to the log and
// checks it against the batches; if it is missing or does not match, it is
// rebuilt from the batch headers.
func (l *Log) recoverEpochs() error {
	entries, err := readEpochCheckpoint(l.dir)
	if err == nil {
		trimmed, endCut := truncateEpochsFromEnd(entries, l.end)
		trimmed, startCut := truncateEpochsFromStart(trimmed, l.start)
		reason, err := l.verifyEpochs(trimmed)
		if err != nil {
			return err
		}
		if reason == "" {
			l.epochs = trimmed
			if endCut || startCut {
				_ = l.writeEpochsLocked()
			}
			return nil
		}
		l.logger.Warn("log: leader-epoch checkpoint does not match the log; rebuilding", "reason", reason)
	} else if !errors.Is(err, fs.ErrNotExist) {
		l.logger.Warn("log: unreadable leader-epoch checkpoint; rebuilding", "err", err)
	}
	var rebuilt []epochEntry
	err = l.scanHeaders(l.start, func(h BatchHeader) bool {
		rebuilt, _ = assignEpoch(rebuilt, h.PartitionLeaderEpoch, h.BaseOffset)
		return true
	})
	if err != nil {
		return err
	}
	l.epochs = rebuilt
	_ = l.writeEpochsLocked()
	return nil
}

// verifyEpochs returns why entries do not describe the log, or "": each
// entry must start at a batch stamped with its epoch that follows a batch
// of an older epoch, and the log's last stamped batch must carry the
// latest epoch.
func (l *Log) verifyEpochs(entries []epochEntry) (string, error) {
	for _, e := range entries {
		h, ok, err := l.batchAt(e.StartOffset)
		if err != nil {
			return "", err
		}
		if !ok || h.BaseOffset != e.StartOffset || h.PartitionLeaderEpoch != e.Epoch {
			return fmt.Sprintf("no batch of epoch %d starts at offset %d", e.Epoch, e.StartOffset), nil
		}
		if e.StartOffset == l.start {
			continue
		}
		// The epoch must start there, not earlier.
		if prev, _, err := l.batchAt(e.StartOffset - 1); err != nil {
			return "", err
		} else if prev.PartitionLeaderEpoch >= e.Epoch {
			return fmt.Sprintf("epoch %d already holds offset %d", prev.PartitionLeaderEpoch, e.StartOffset-1), nil
		}
	}
	if l.end == l.start {
		return "", nil
	}
	h, _, err := l.batchAt(l.end - 1)
	if err != nil {
		return "", err
	}
	latest := int32(-1)
	if len(entries) > 0 {
		latest = entries[len(entries)-1].Epoch
	}
	if h.PartitionLeaderEpoch >= 0 && h.PartitionLeaderEpoch != latest {
		return fmt.Sprintf("last batch has epoch %d, checkpoint's latest is %d", h.PartitionLeaderEpoch, latest), nil
	}
	return "", nil
}

// batchAt returns the header of the batch containing offset. Only for use
// by the appendMu holder (or during recovery).
func (l *Log) batchAt(offset int64) (BatchHeader, bool, error) {
	if offset < l.start || offset >= l.end {
		return BatchHeader{}, false, nil
	}
	seg := l.segs[segmentFor(l.segs, offset)]
	hr := headerReader{seg: seg}
	_, h, found, err := locate(seg, seg.st, &hr, offset)
	return h, found, err
}

// scanHeaders calls fn with the header of every batch from the one holding
// from to the end, until fn returns false. Only for use by the appendMu
// holder (or during recovery).
func (l *Log) scanHeaders(from int64, fn func(BatchHeader) bool) error {
	if from >= l.end {
		return nil
	}
	i := segmentFor(l.segs, from)
	for j, seg := range l.segs[i:] {
		hr := headerReader{seg: seg}
		pos := int64(0)
		if j == 0 {
			var err error
			if pos, _, _, err = locate(seg, seg.st, &hr, from); err != nil {
				return err
			}
		}
		for pos < seg.st.size {
			h, err := hr.at(pos, seg.st.size)
			if err != nil {
				return err
			}
			if !fn(h) {
				return nil
			}
			pos += int64(h.Size())
		}
	}
	return nil
}
