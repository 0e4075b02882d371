package log

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// File names in a log directory.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	tmpSuffix       = ".tmp"  // a file being written atomically; removed on Open
	swapSuffix      = ".swap" // a truncated copy of a segment; removed on Open
	checkpointName  = "leader-epoch-checkpoint"

	baseDigits = 20
)

// segmentFileName returns the .log file name of the segment with base
// offset base: the offset zero-padded to 20 digits, so names sort as the
// offsets do.
func segmentFileName(base int64) string {
	return fmt.Sprintf("%0*d%s", baseDigits, base, logSuffix)
}

// parseSegmentFileName returns the base offset named by a file name of the
// form <20 digits><suffix>.
func parseSegmentFileName(name, suffix string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, suffix)
	if !ok || len(digits) != baseDigits {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	base, err := strconv.ParseInt(digits, 10, 64)
	return base, err == nil
}

func indexPath(logPath string) string {
	return strings.TrimSuffix(logPath, logSuffix) + indexSuffix
}

func timeIndexPath(logPath string) string {
	return strings.TrimSuffix(logPath, logSuffix) + timeIndexSuffix
}

// segState is what the log knows about a segment's contents. The published
// copy lives in segment.st; an appender stages changes in a copy.
type segState struct {
	size       int64        // bytes of whole, valid batches
	next       int64        // offset after the last batch; the base offset when empty
	maxTs      int64        // largest batch MaxTimestamp, -1 when none
	index      []indexEntry // sparse offset/time index
	sinceIndex int64        // bytes appended since the last index entry (appender only)
}

// add records that the batch h was appended at position s.size of a
// segment with base offset base, adding an index entry first when more
// than interval bytes were appended since the last one (as Kafka's
// LogSegment.append does).
func (s *segState) add(base int64, h BatchHeader, interval int) {
	n := int64(h.Size())
	maxTs := max(s.maxTs, h.MaxTimestamp)
	if s.sinceIndex > int64(interval) {
		s.index = append(s.index, indexEntry{rel: uint32(h.BaseOffset - base), pos: uint32(s.size), maxTs: maxTs})
		s.sinceIndex = 0
	}
	s.sinceIndex += n
	s.size += n
	s.next = h.NextOffset()
	s.maxTs = maxTs
}

// A segment is one .log file and its in-memory index.
//
// st is written only by a goroutine holding Log.appendMu, and then only
// under Log.mu's write lock; it is read under Log.mu's read lock or by the
// holder of Log.appendMu. The file's bytes below st.size never change
// while the segment is pinned (Truncate copies a pinned segment instead of
// cutting it), and bytes at or above st.size are never read.
type segment struct {
	base int64
	path string
	f    *os.File

	// refs counts the log's own reference (while the segment is in
	// Log.segs) plus one per reader that pinned it. The file is closed when
	// it drops to zero.
	refs atomic.Int32

	st segState
}

func newSegment(base int64, path string, f *os.File) *segment {
	s := &segment{base: base, path: path, f: f, st: segState{next: base, maxTs: -1}}
	s.refs.Store(1)
	return s
}

// pin keeps the file open until the matching unpin.
func (s *segment) pin() { s.refs.Add(1) }

// unpin drops a reference; the last one closes the file.
func (s *segment) unpin() {
	if s.refs.Add(-1) == 0 {
		_ = s.f.Close()
	}
}

// pinned reports whether a reader holds the segment. Meaningful only under
// Log.mu's write lock, when no new pins can be taken.
func (s *segment) pinned() bool { return s.refs.Load() > 1 }

// corruptAt builds the error for a batch found damaged in a segment file
// after it was accepted (a disk problem or outside interference).
func (s *segment) corruptAt(pos int64, reason string) error {
	return fmt.Errorf("log: segment %s: batch at byte %d: %s: %w", filepath.Base(s.path), pos, reason, ErrCorruptBatch)
}

// headerReader reads batch headers from a file, a chunk at a time, so that
// walking many small batches costs few system calls.
type headerReader struct {
	seg  *segment
	buf  []byte
	off  int64      // file position of buf[0]
	n    int        // valid bytes in buf
	pool *sync.Pool // where buf comes from and goes back to (release), if set
	bufp *[]byte    // buf's handle in pool
}

// newHeaderReader returns a header reader of seg whose buffer comes from pool; release gives it
// back. Reads run for every fetch: the chunk is not allocated for each.
func newHeaderReader(seg *segment, pool *sync.Pool) headerReader {
	return headerReader{seg: seg, pool: pool}
}

// moveTo points the reader at another segment, keeping its buffer.
func (r *headerReader) moveTo(seg *segment) { r.seg, r.off, r.n = seg, 0, 0 }

// release gives the buffer back to the pool. The reader must not be used after.
func (r *headerReader) release() {
	if r.pool != nil && r.bufp != nil {
		r.pool.Put(r.bufp)
		r.buf, r.bufp = nil, nil
	}
}

const headerChunk = 4096

// at returns the header of the batch at pos, which with its whole body must
// lie below limit.
func (r *headerReader) at(pos, limit int64) (BatchHeader, error) {
	if pos+HeaderSize > limit {
		return BatchHeader{}, r.seg.corruptAt(pos, fmt.Sprintf("header crosses the segment end %d", limit))
	}
	if pos < r.off || pos+HeaderSize > r.off+int64(r.n) {
		if r.buf == nil && r.pool != nil {
			r.bufp, _ = r.pool.Get().(*[]byte)
			if r.bufp == nil {
				b := make([]byte, headerChunk)
				r.bufp = &b
			}
			r.buf = *r.bufp
		}
		if r.buf == nil {
			r.buf = make([]byte, headerChunk)
		}
		want := min(int64(len(r.buf)), limit-pos)
		n, err := r.seg.f.ReadAt(r.buf[:want], pos)
		if n < HeaderSize {
			r.n = 0
			return BatchHeader{}, fmt.Errorf("log: segment %s: read at byte %d: %w", filepath.Base(r.seg.path), pos, err)
		}
		r.off, r.n = pos, n
	}
	h := decodeHeader(r.buf[pos-r.off:])
	if reason := checkHeader(h); reason != "" {
		return h, r.seg.corruptAt(pos, reason)
	}
	if pos+int64(h.Size()) > limit {
		return h, r.seg.corruptAt(pos, fmt.Sprintf("%d-byte batch crosses the segment end %d", h.Size(), limit))
	}
	return h, nil
}

// batchScanner reads whole batches sequentially for recovery, through a
// large buffer.
type batchScanner struct {
	f   io.ReaderAt
	buf []byte
	off int64
	n   int
}

const scanChunk = 1 << 20

// batch returns the sz bytes at pos, valid until the next call.
func (s *batchScanner) batch(pos int64, sz int) ([]byte, error) {
	if pos >= s.off && pos+int64(sz) <= s.off+int64(s.n) {
		return s.buf[pos-s.off : pos-s.off+int64(sz)], nil
	}
	if sz > scanChunk {
		b := make([]byte, sz)
		if _, err := s.f.ReadAt(b, pos); err != nil {
			return nil, err
		}
		return b, nil
	}
	if s.buf == nil {
		s.buf = make([]byte, scanChunk)
	}
	n, err := s.f.ReadAt(s.buf, pos)
	s.off, s.n = pos, n
	if n < sz {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return s.buf[:sz], nil
}

// scanSegment reads the batches of seg from position st.size, where a batch
// with base offset st.next must start, up to fileSize, verifying each one
// wholly (header, CRC, records) and that offsets continue without gaps. It
// advances st as appending the batches would have and calls visit, if not
// nil, with each good batch. It stops at the first batch that is torn or
// bad and returns why ("" when it reached fileSize); I/O errors are
// returned as err.
func scanSegment(seg *segment, st *segState, fileSize int64, interval int, visit func(BatchHeader)) (bad string, err error) {
	sc := batchScanner{f: seg.f}
	for st.size < fileSize {
		pos, rest := st.size, fileSize-st.size
		if rest < HeaderSize {
			return fmt.Sprintf("torn batch header: %d bytes", rest), nil
		}
		hb, err := sc.batch(pos, HeaderSize)
		if err != nil {
			return "", fmt.Errorf("log: segment %s: read at byte %d: %w", filepath.Base(seg.path), pos, err)
		}
		h := decodeHeader(hb)
		if reason := checkHeader(h); reason != "" {
			return reason, nil
		}
		if int64(h.Size()) > rest {
			return fmt.Sprintf("torn batch: %d of %d bytes", rest, h.Size()), nil
		}
		if h.BaseOffset != st.next {
			return fmt.Sprintf("base offset %d, want %d", h.BaseOffset, st.next), nil
		}
		if h.LastOffset()-seg.base > maxRelOffset {
			return fmt.Sprintf("last offset %d too far from segment base %d", h.LastOffset(), seg.base), nil
		}
		b, err := sc.batch(pos, h.Size())
		if err != nil {
			return "", fmt.Errorf("log: segment %s: read at byte %d: %w", filepath.Base(seg.path), pos, err)
		}
		if reason := checkBatch(b, h); reason != "" {
			return reason, nil
		}
		st.add(seg.base, h, interval)
		if visit != nil {
			visit(h)
		}
	}
	return "", nil
}

// maxRelOffset is the largest offset distance from a segment's base that
// its index can hold; a batch reaching further starts a new segment.
const maxRelOffset = 1<<31 - 1
