package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Truncate removes every batch with offsets >= to. When to falls inside a
// batch, that whole batch goes too, and EndOffset() becomes its base
// offset. Followers use it after a leader change (with the end offset
// OffsetForLeaderEpoch returned). It also drops the leader epochs that
// start at or after the new end. to >= EndOffset() does nothing; to <
// StartOffset() returns ErrOffsetOutOfRange.
//
// Readers holding a FileSlice of a truncated segment keep seeing the old
// bytes: a pinned segment is copied rather than cut in place.
func (l *Log) Truncate(to int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	return l.truncateLocked(to)
}

// truncateLocked is Truncate; the caller holds appendMu.
func (l *Log) truncateLocked(to int64) error {
	if to >= l.end {
		return nil
	}
	if to < l.start {
		return fmt.Errorf("%w: truncate to %d, log holds [%d, %d)", ErrOffsetOutOfRange, to, l.start, l.end)
	}
	i := segmentFor(l.segs, to)
	seg := l.segs[i]
	hr := headerReader{seg: seg}
	cut, h, found, err := locate(seg, seg.st, &hr, to)
	if err != nil {
		return err
	}
	newEnd := to
	if found && h.BaseOffset < to {
		newEnd = h.BaseOffset
	}
	st, err := truncatedState(seg, cut, newEnd)
	if err != nil {
		return err
	}

	// On disk, newest first, so that a crash leaves a prefix of the log.
	removed := l.segs[i+1:]
	for j := len(removed) - 1; j >= 0; j-- {
		l.removeSegmentFiles(removed[j])
	}
	if err := l.disk.removeIndexFiles(seg.path); err != nil {
		l.logger.Warn("log: cannot remove stale index", "segment", filepath.Base(seg.path), "err", err)
	}
	// The transaction state above the new end goes with it: the segment's
	// aborted transactions whose marker is cut, and the producer snapshots
	// past the end (Open rebuilds either from the log if a crash leaves
	// them behind).
	if err := errors.Join(l.truncateTxnIndexLocked(seg, newEnd), l.deleteSnapshotsLocked(func(off int64) bool { return off > newEnd })); err != nil {
		l.logger.Warn("log: cannot truncate the transaction index or producer snapshots", "segment", filepath.Base(seg.path), "err", err)
	}
	var repl *segment
	for {
		if repl == nil && seg.pinned() {
			if repl, err = l.disk.copySegmentPrefix(seg, cut); err != nil {
				l.fail(err)
				return fmt.Errorf("log: truncate: %w", err)
			}
		}
		l.mu.Lock()
		if repl == nil && seg.pinned() {
			// A reader pinned it since we looked: copy after all.
			l.mu.Unlock()
			continue
		}
		kept := repl
		if kept == nil {
			kept = seg
		}
		kept.st = st
		l.segs = append(slices.Clone(l.segs[:i]), kept)
		l.end = newEnd
		epochs, changed := truncateEpochsFromEnd(l.epochs, newEnd)
		l.epochs = epochs
		l.mu.Unlock()

		if repl == nil {
			if err := l.disk.truncate(seg.f, seg.path, cut); err != nil {
				l.fail(err)
				return fmt.Errorf("log: truncate: %w", err)
			}
		} else {
			seg.unpin()
		}
		for _, s := range removed {
			s.unpin()
		}
		if err := l.disk.syncDir(l.dir); err != nil { // the removals and a replacing copy's name
			l.logger.Warn("log: cannot sync directory", "err", err)
		}
		if changed || l.epochsDirty {
			_ = l.writeEpochsLocked()
		}
		return nil
	}
}

// truncatedState returns the state of seg cut at byte cut, where the batch
// starting at offset newEnd (or the segment end) begins.
func truncatedState(seg *segment, cut, newEnd int64) (segState, error) {
	n := 0
	for n < len(seg.st.index) && int64(seg.st.index[n].pos) < cut {
		n++
	}
	st := segState{size: cut, next: newEnd, maxTs: -1, index: slices.Clone(seg.st.index[:n]), sinceIndex: cut}
	pos := int64(0)
	if n > 0 {
		last := st.index[n-1]
		pos, st.maxTs, st.sinceIndex = int64(last.pos), last.maxTs, cut-int64(last.pos)
	}
	hr := headerReader{seg: seg}
	for pos < cut {
		h, err := hr.at(pos, cut)
		if err != nil {
			return st, err
		}
		st.maxTs = max(st.maxTs, h.MaxTimestamp)
		pos += int64(h.Size())
	}
	return st, nil
}

// copySegmentPrefix replaces seg's file by a copy of its first n bytes,
// leaving the open file of seg (and its readers) on the old contents, and
// returns the new segment (without state).
func (d *Disk) copySegmentPrefix(seg *segment, n int64) (*segment, error) {
	tmp := seg.path + swapSuffix
	f, err := d.create(tmp, os.O_TRUNC|os.O_RDWR)
	if err != nil {
		return nil, err
	}
	_, cerr := io.Copy(f, io.NewSectionReader(seg.f, 0, n))
	if err := errors.Join(cerr, d.sync(f, tmp)); err != nil {
		_ = f.Close()
		_ = d.remove(tmp)
		return nil, err
	}
	if err := d.rename(tmp, seg.path); err != nil {
		_ = f.Close()
		_ = d.remove(tmp)
		return nil, err
	}
	return newSegment(seg.base, seg.path, f), nil
}

// TruncateFullyAndStartAt empties the log and makes offset both its start
// and end offset, as a follower does when the leader's log starts past the
// follower's end. The leader-epoch cache is cleared.
//
// A crash leaves either the new empty log or a range of the old one (see
// the package documentation): when the log holds offset it is first
// truncated there, then an empty segment is created at offset and the old
// segments are deleted, oldest first.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("%w: negative start offset %d", ErrOffsetOutOfRange, offset)
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if offset >= l.start && offset < l.end {
		// Now the log ends at or below offset, and no segment but an empty
		// last one can start there.
		if err := l.truncateLocked(offset); err != nil {
			return err
		}
	}
	old := l.segs
	seg := old[len(old)-1]
	if seg.base == offset { // empty, since the log ends at or below offset
		old = old[:len(old)-1]
	} else {
		var err error
		if seg, err = l.disk.createSegment(l.dir, offset); err != nil {
			l.fail(err)
			return err
		}
		if err := l.disk.syncDir(l.dir); err != nil {
			l.fail(err)
			return fmt.Errorf("log: truncate fully: %w", err)
		}
		l.diskStep()
	}
	l.mu.Lock()
	l.segs = []*segment{seg}
	l.start, l.end = offset, offset
	l.epochs = nil
	l.mu.Unlock()
	for _, s := range old { // oldest first: see the package documentation
		l.removeSegmentFiles(s)
		s.unpin()
	}
	_ = l.writeEpochsLocked()
	if err := l.deleteSnapshotsLocked(func(int64) bool { return true }); err != nil {
		l.logger.Warn("log: cannot remove producer snapshots", "err", err)
	}
	if err := l.disk.syncDir(l.dir); err != nil {
		l.logger.Warn("log: cannot sync directory", "err", err)
	}
	return nil
}

// ApplyRetention deletes closed segments from the oldest on: those whose
// newest batch (largest MaxTimestamp, or the file's modification time when
// no batch has a timestamp) is more than RetentionMs older than now, then
// those whose removal keeps the log at or above RetentionBytes. It never
// deletes the active segment. StartOffset() advances to the first remaining
// segment's base offset, and the leader-epoch cache is trimmed to it. Only
// segments whose every record lies below below are deleted (the caller
// passes its high watermark: as Kafka's deletableSegments, retention never
// removes what consumers cannot read yet). It returns the number of
// segments deleted.
func (l *Log) ApplyRetention(now time.Time, below int64) (deletedSegments int, err error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return 0, err
	}
	segs := l.segs
	closedSegs := segs[:len(segs)-1]
	n := 0
	if l.cfg.RetentionMs >= 0 {
		nowMs := now.UnixMilli()
		for n < len(closedSegs) {
			ts, err := segmentTimestamp(closedSegs[n])
			if err != nil {
				return 0, err
			}
			if nowMs-ts <= l.cfg.RetentionMs {
				break
			}
			n++
		}
	}
	if l.cfg.RetentionBytes >= 0 {
		var diff int64
		for _, s := range segs[n:] {
			diff += s.st.size
		}
		diff -= l.cfg.RetentionBytes
		for n < len(closedSegs) && diff-closedSegs[n].st.size >= 0 {
			diff -= closedSegs[n].st.size
			n++
		}
	}
	for n > 0 && segs[n].base > below {
		n-- // segment n-1 holds records at or above below
	}
	if n == 0 {
		return 0, nil
	}
	removed := segs[:n]
	l.mu.Lock()
	l.segs = slices.Clone(segs[n:])
	l.start = l.segs[0].base
	epochs, changed := truncateEpochsFromStart(l.epochs, l.start)
	l.epochs = epochs
	l.mu.Unlock()
	for _, s := range removed { // oldest first, so a crash leaves a suffix
		l.removeSegmentFiles(s)
		s.unpin()
	}
	if err := l.disk.syncDir(l.dir); err != nil {
		l.logger.Warn("log: cannot sync directory", "err", err)
	}
	if changed || l.epochsDirty {
		_ = l.writeEpochsLocked()
	}
	// Snapshots of producer state older than the log go with it (Kafka's
	// deleteSnapshotsBefore); the segments' .txnindex files went with them.
	if err := l.deleteSnapshotsLocked(func(off int64) bool { return off < l.start }); err != nil {
		l.logger.Warn("log: cannot remove producer snapshots", "err", err)
	}
	l.logger.Info("log: retention deleted segments", "segments", n, "startOffset", l.start)
	return n, nil
}

// segmentTimestamp is the time retention judges a segment by, in ms.
func segmentTimestamp(s *segment) (int64, error) {
	if s.st.maxTs >= 0 {
		return s.st.maxTs, nil
	}
	fi, err := s.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("log: %w", err)
	}
	return fi.ModTime().UnixMilli(), nil
}
