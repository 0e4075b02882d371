package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// AppendLeader appends batches, one or more complete v2 batches back to
// back as accepted by ValidateBatches, assigning offsets from EndOffset():
// it rewrites each batch's BaseOffset (bytes 0..8) and PartitionLeaderEpoch
// (bytes 12..16) in place, neither of which the CRC covers, then writes
// them. The caller may pass a slice it owns; AppendLeader modifies it.
//
// The batches are validated again (errors wrap ErrCorruptBatch).
// leaderEpoch must be >= 0 and not older than LatestEpoch() (else
// ErrStaleEpoch). All or nothing: on error nothing becomes visible and
// EndOffset() is unchanged. It returns the base offset of the first batch.
func (l *Log) AppendLeader(batches []byte, leaderEpoch int32) (baseOffset int64, err error) {
	hs, err := ValidateBatches(batches, 0)
	if err != nil {
		return -1, err
	}
	return l.AppendValidated(batches, hs, leaderEpoch)
}

// AppendValidated is AppendLeader for batches the caller has already checked: hs must be what
// ValidateBatches (or ProduceValidator.Validate, as one header) returned for exactly these bytes,
// so the CRCs are not computed a second time on the produce path. On success each header's BaseOffset and PartitionLeaderEpoch are set to what
// was written.
func (l *Log) AppendValidated(batches []byte, hs []BatchHeader, leaderEpoch int32) (baseOffset int64, err error) {
	if len(hs) == 0 {
		return -1, fmt.Errorf("%w: no batches to append", ErrCorruptBatch)
	}
	if leaderEpoch < 0 {
		return -1, fmt.Errorf("log: invalid leader epoch %d", leaderEpoch)
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return -1, err
	}
	if latest := l.latestEpochLocked(); leaderEpoch < latest {
		return -1, fmt.Errorf("%w: append with epoch %d, log has epoch %d", ErrStaleEpoch, leaderEpoch, latest)
	}
	base := l.end
	next, pos := base, 0
	for i := range hs {
		h := &hs[i]
		if next > maxOffset-int64(h.LastOffsetDelta)-1 {
			return -1, fmt.Errorf("log: offset %d + %d records overflows", next, h.NumRecords)
		}
		h.BaseOffset, h.PartitionLeaderEpoch = next, leaderEpoch
		binary.BigEndian.PutUint64(batches[pos:], uint64(next))
		binary.BigEndian.PutUint32(batches[pos+posLeaderEpoch:], uint32(leaderEpoch))
		next = h.NextOffset()
		pos += h.Size()
	}
	if pos != len(batches) {
		return -1, fmt.Errorf("%w: headers cover %d of %d bytes", ErrCorruptBatch, pos, len(batches))
	}
	if err := l.write(batches, hs); err != nil {
		return -1, err
	}
	return base, nil
}

const maxOffset = 1<<63 - 1

// AppendFollower appends batches whose offsets the leader assigned, as read
// from the leader's Fetch response: complete v2 batches back to back,
// possibly followed by a partial batch, which is ignored. The first batch's
// BaseOffset must equal EndOffset() and each next batch must start right
// after the previous one (else ErrOffsetMismatch); every batch is verified
// as by ValidateBatches. All or nothing, as AppendLeader. It returns the
// number of bytes appended, which is len(batches) minus the ignored partial
// batch; 0 with a nil error when there was no complete batch.
func (l *Log) AppendFollower(batches []byte) (appended int, err error) {
	var hs []BatchHeader
	for pos := 0; pos < len(batches); {
		if len(batches)-pos < lengthPrefix {
			break
		}
		length := int32(binary.BigEndian.Uint32(batches[pos+posBatchLength:]))
		if length >= minBatchLength && int64(len(batches)-pos) < lengthPrefix+int64(length) {
			break // the partial batch Kafka fetch responses may end with
		}
		h, err := nextBatch(batches, pos, len(hs), 0)
		if err != nil {
			return 0, err
		}
		hs = append(hs, h)
		pos += h.Size()
		appended = pos
	}
	if len(hs) == 0 {
		return 0, nil
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return 0, err
	}
	next := l.end
	for i, h := range hs {
		if h.BaseOffset != next {
			return 0, fmt.Errorf("%w: batch %d has base offset %d, want %d", ErrOffsetMismatch, i, h.BaseOffset, next)
		}
		next = h.NextOffset()
	}
	if err := l.write(batches[:appended], hs); err != nil {
		return 0, err
	}
	return appended, nil
}

// writable reports why the log cannot take writes; the caller holds
// appendMu.
func (l *Log) writable() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, l.failed)
	}
	return nil
}

func (l *Log) latestEpochLocked() int32 {
	if len(l.epochs) == 0 {
		return -1
	}
	return l.epochs[len(l.epochs)-1].Epoch
}

// stage is the part of an append that goes into one segment.
type stage struct {
	seg      *segment
	created  bool  // the segment was created by this append
	from, to int   // the bytes of the append that go here
	pos      int64 // where in the file they go
	st       segState
}

// write appends data, whose batches (with final offsets) are hs, rolling
// segments as needed, then publishes the result. The caller holds appendMu
// and has checked that hs[0].BaseOffset == l.end.
func (l *Log) write(data []byte, hs []BatchHeader) error {
	active := l.segs[len(l.segs)-1]
	cur := &stage{seg: active, pos: active.st.size, st: active.st}
	var stages []*stage
	epochs, epochsChanged := l.epochs, false
	p := 0
	for _, h := range hs {
		n := int64(h.Size())
		if cur.st.size > 0 && (cur.st.size+n > l.cfg.SegmentBytes || h.LastOffset()-cur.seg.base > maxRelOffset) {
			seg, err := l.disk.createSegment(l.dir, h.BaseOffset)
			if err != nil {
				l.rollback(append(stages, cur))
				return err
			}
			stages = append(stages, cur)
			cur = &stage{seg: seg, created: true, from: p, to: p, st: seg.st}
		}
		cur.st.add(cur.seg.base, h, l.cfg.IndexIntervalBytes)
		cur.to += int(n)
		p += int(n)
		var changed bool
		if epochs, changed = assignEpoch(epochs, h.PartitionLeaderEpoch, h.BaseOffset); changed {
			epochsChanged = true
		}
	}
	stages = append(stages, cur)

	for _, s := range stages {
		if _, err := s.seg.f.WriteAt(data[s.from:s.to], s.pos); err != nil {
			l.rollback(stages)
			return fmt.Errorf("log: write %s: %w", filepath.Base(s.seg.path), err)
		}
	}
	if err := l.maybeFlush(stages, cur.st.next-hs[0].BaseOffset); err != nil {
		l.rollback(stages)
		return err
	}

	l.mu.Lock()
	for _, s := range stages {
		s.seg.st = s.st
		if s.created {
			l.segs = append(l.segs, s.seg)
		}
	}
	l.end = cur.st.next
	l.epochs = epochs
	l.mu.Unlock()

	for _, s := range stages[:len(stages)-1] {
		l.seal(s.seg)
	}
	if epochsChanged || l.epochsDirty {
		_ = l.writeEpochsLocked()
	}
	return nil
}

// maybeFlush counts n more unflushed messages and, once Config.FlushMessages
// are reached, fsyncs the files of the append's stages (older segments were
// flushed when they were rolled) and, if the append created a segment, the
// directory, so that the new file's name is durable too.
func (l *Log) maybeFlush(stages []*stage, n int64) error {
	if l.unflushed+n < l.cfg.FlushMessages {
		l.unflushed += n
		return nil
	}
	created := false
	for _, s := range stages {
		if err := l.disk.sync(s.seg.f, s.seg.path); err != nil {
			return fmt.Errorf("log: sync %s: %w", filepath.Base(s.seg.path), err)
		}
		created = created || s.created
	}
	if created {
		if err := l.disk.syncDir(l.dir); err != nil {
			return fmt.Errorf("log: sync %s: %w", l.dir, err)
		}
	}
	l.unflushed = 0
	return nil
}

// rollback undoes the file changes of an unpublished append: it cuts the
// previously active segment back to its size and deletes new segments.
// If that fails the log is marked failed.
func (l *Log) rollback(stages []*stage) {
	for _, s := range stages {
		if s.created {
			_ = s.seg.f.Close()
			if err := errors.Join(l.disk.remove(s.seg.path), l.disk.removeIndexFiles(s.seg.path)); err != nil {
				l.fail(err)
			}
			continue
		}
		if err := l.disk.truncate(s.seg.f, s.seg.path, s.pos); err != nil {
			l.fail(err)
		}
	}
}

// fail marks the log unusable for writes after an I/O error it could not
// undo.
func (l *Log) fail(err error) {
	l.logger.Error("log: cannot undo a failed write; the log refuses writes until reopened", "err", err)
	if l.failed == nil {
		l.failed = err
	}
}

// seal finishes a segment that is no longer active: it flushes the file
// and writes its index files. Failures are logged only: indexes are
// rebuilt on Open, and durability comes from replication.
func (l *Log) seal(s *segment) {
	err := errors.Join(l.disk.sync(s.f, s.path), l.disk.writeIndexFiles(s.path, s.st.index),
		l.disk.syncFileIfExists(txnIndexPath(s.path)), l.disk.syncDir(l.dir))
	if err != nil {
		l.logger.Warn("log: cannot seal segment", "segment", filepath.Base(s.path), "err", err)
	}
}

// createSegment creates the empty file of a new segment with base offset
// base, removing index files a deleted segment of that name may have left.
func (d *Disk) createSegment(dir string, base int64) (*segment, error) {
	path := filepath.Join(dir, segmentFileName(base))
	if err := errors.Join(d.removeIndexFiles(path), d.remove(txnIndexPath(path))); err != nil {
		return nil, err
	}
	f, err := d.create(path, os.O_EXCL|os.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("log: create segment: %w", err)
	}
	return newSegment(base, path, f), nil
}
