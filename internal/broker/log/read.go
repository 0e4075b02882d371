package log

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
)

// segView is a pinned segment with the state it had when pinned.
type segView struct {
	seg *segment
	st  segState
}

func release(vs []segView) {
	for _, v := range vs {
		v.seg.unpin()
	}
}

// acquire pins the segments holding offsets [from, min(maxOffset, end))
// and returns them with the clamped limit. from == fromStart means the log
// start offset. An empty result with a nil error means there is nothing to
// read. The caller must release the views.
func (l *Log) acquire(from, maxOffset int64) ([]segView, int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, 0, ErrClosed
	}
	if from == fromStart {
		from = l.start
	}
	if from < l.start || from > l.end {
		return nil, 0, fmt.Errorf("%w: offset %d, log holds [%d, %d)", ErrOffsetOutOfRange, from, l.start, l.end)
	}
	limit := min(maxOffset, l.end)
	if from >= limit {
		return nil, limit, nil
	}
	var vs []segView
	for _, s := range l.segs[segmentFor(l.segs, from):] {
		if s.base >= limit {
			break
		}
		s.pin()
		vs = append(vs, segView{seg: s, st: s.st})
	}
	return vs, limit, nil
}

const fromStart = math.MinInt64

// Read returns whole batches, starting with the one that contains offset,
// up to maxBytes in total but always at least one whole batch if any is
// available (as Kafka's fetch), and only batches whose BaseOffset <
// maxOffset (the caller passes the high watermark or EndOffset()). Reading
// may continue across segments.
//
// offset >= maxOffset returns no bytes and no error; offset < StartOffset()
// or > EndOffset() returns ErrOffsetOutOfRange. The returned slice is a
// copy owned by the caller, unaffected by later appends and truncations.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	vs, limit, err := l.acquire(offset, maxOffset)
	if err != nil || len(vs) == 0 {
		return nil, err
	}
	defer release(vs)
	hr := newHeaderReader(vs[0].seg, &l.hdrBufs)
	defer hr.release()
	pos, _, _, err := locate(vs[0].seg, vs[0].st, &hr, offset)
	if err != nil {
		return nil, err
	}
	var out []byte
	for i, v := range vs {
		if i > 0 {
			pos = 0
		}
		full, err := readBatches(v, pos, &out, maxBytes, limit)
		if err != nil {
			return nil, err
		}
		if !full {
			break
		}
	}
	return out, nil
}

// readBatches appends to *out the whole batches of v from pos on that fit
// in maxBytes (at least one if *out is empty) and start below limit,
// reading the file once in the common case. It reports whether it reached
// the end of the segment, so that reading may go on in the next one.
func readBatches(v segView, pos int64, out *[]byte, maxBytes int, limit int64) (reachedEnd bool, err error) {
	avail := v.st.size - pos
	if avail <= 0 {
		return true, nil
	}
	budget := int64(maxBytes - len(*out))
	first := len(*out) == 0
	if first {
		budget = max(budget, min(avail, HeaderSize))
	}
	want := min(avail, budget)
	if limit < v.st.next {
		// Do not read far past the batches below limit. The first batch
		// (base offset < limit) always lies below the bound.
		want = min(want, upperBoundPos(v.st.index, v.seg.base, limit, v.st.size)-pos)
	}
	if want < HeaderSize {
		return false, nil
	}
	start := len(*out)
	buf := grow(out, int(want))
	if _, err := v.seg.f.ReadAt(buf, pos); err != nil {
		*out = (*out)[:start]
		return false, fmt.Errorf("log: read %s at byte %d: %w", filepath.Base(v.seg.path), pos, err)
	}
	k := int64(0) // bytes of buf holding whole batches to keep
	for k+HeaderSize <= int64(len(buf)) {
		h := decodeHeader(buf[k:])
		if reason := checkHeader(h); reason != "" {
			*out = (*out)[:start]
			return false, v.seg.corruptAt(pos+k, reason)
		}
		if h.BaseOffset >= limit {
			break
		}
		sz := int64(h.Size())
		if pos+k+sz > v.st.size {
			*out = (*out)[:start]
			return false, v.seg.corruptAt(pos+k, "batch crosses the segment end")
		}
		if k+sz > int64(len(buf)) {
			if !first || k > 0 {
				break
			}
			// The first batch alone is larger than maxBytes: return it whole.
			*out = (*out)[:start]
			buf = grow(out, int(sz))
			if _, err := v.seg.f.ReadAt(buf, pos); err != nil {
				*out = (*out)[:start]
				return false, fmt.Errorf("log: read %s at byte %d: %w", filepath.Base(v.seg.path), pos, err)
			}
		}
		k += sz
	}
	*out = (*out)[:start+int(k)]
	return pos+k == v.st.size, nil
}

// grow extends *out by n bytes and returns them.
func grow(out *[]byte, n int) []byte {
	l := len(*out)
	if cap(*out)-l < n {
		b := make([]byte, l, l+n)
		copy(b, *out)
		*out = b
	}
	*out = (*out)[:l+n]
	return (*out)[l:]
}

// A FileSlice names a byte range of a segment file holding whole batches,
// for sending with sendfile. File stays open, and the bytes in range stay
// as they are, until Release is called, even if the log meanwhile closes,
// truncates or deletes the segment.
type FileSlice struct {
	File     *os.File
	Pos, Len int64

	rel *sliceRelease
}

type sliceRelease struct {
	once sync.Once
	seg  *segment
}

// Release lets the log close and delete the file again. Call it exactly
// once per slice when done with it; further calls do nothing.
func (s FileSlice) Release() {
	if s.rel != nil {
		s.rel.once.Do(s.rel.seg.unpin)
	}
}

// ReleaseSlices calls Release on every slice.
func ReleaseSlices(ss []FileSlice) {
	for _, s := range ss {
		s.Release()
	}
}

// ReadSlices is Read without the copy: it returns the file ranges that hold
// the batches Read would return, one per segment, in order. The caller
// must Release every returned slice (ReleaseSlices does) after using it;
// until then the files stay open and unchanged. Do not write to or close
// the files.
func (l *Log) ReadSlices(offset int64, maxBytes int, maxOffset int64) ([]FileSlice, error) {
	vs, limit, err := l.acquire(offset, maxOffset)
	if err != nil || len(vs) == 0 {
		return nil, err
	}
	defer release(vs)
	var (
		slices []FileSlice
		total  int64
	)
	hr := newHeaderReader(vs[0].seg, &l.hdrBufs)
	defer hr.release()
	pos, _, _, err := locate(vs[0].seg, vs[0].st, &hr, offset)
	if err != nil {
		return nil, err
	}
walk:
	for i, v := range vs {
		if i > 0 {
			pos = 0
			hr.moveTo(v.seg)
		}
		begin := pos
		for pos < v.st.size {
			h, err := hr.at(pos, v.st.size)
			if err != nil {
				ReleaseSlices(slices)
				return nil, err
			}
			sz := int64(h.Size())
			if h.BaseOffset >= limit || (total > 0 && total+sz > int64(maxBytes)) {
				break
			}
			pos += sz
			total += sz
		}
		if pos > begin {
			v.seg.pin()
			slices = append(slices, FileSlice{File: v.seg.f, Pos: begin, Len: pos - begin, rel: &sliceRelease{seg: v.seg}})
		}
		if pos < v.st.size {
			break walk
		}
	}
	return slices, nil
}

// Scan calls fn with the header of each batch from the one containing from
// to the end of the log (as it was when Scan began), in offset order,
// stopping early when fn returns false. from must lie in [StartOffset(),
// EndOffset()], else ErrOffsetOutOfRange. fn runs without any lock held.
func (l *Log) Scan(from int64, fn func(h BatchHeader) bool) error {
	vs, _, err := l.acquire(from, math.MaxInt64)
	if err != nil || len(vs) == 0 {
		return err
	}
	defer release(vs)
	for i, v := range vs {
		hr := headerReader{seg: v.seg}
		pos := int64(0)
		if i == 0 {
			if pos, _, _, err = locate(v.seg, v.st, &hr, from); err != nil {
				return err
			}
		}
		for pos < v.st.size {
			h, err := hr.at(pos, v.st.size)
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

// OffsetForTimestamp finds the first batch whose MaxTimestamp is >= ts and
// returns its base offset and MaxTimestamp (as ListOffsets by timestamp,
// at batch granularity); found is false when no batch qualifies. Kafka's
// special timestamps -1 (latest) and -2 (earliest) are the caller's to map
// to EndOffset and StartOffset.
func (l *Log) OffsetForTimestamp(ts int64) (offset int64, timestamp int64, found bool, err error) {
	vs, _, err := l.acquire(fromStart, math.MaxInt64)
	if err != nil || len(vs) == 0 {
		return -1, -1, false, err
	}
	defer release(vs)
	for _, v := range vs {
		if v.st.maxTs < ts {
			continue
		}
		hr := headerReader{seg: v.seg}
		for pos := lookupTimestamp(v.st.index, ts); pos < v.st.size; {
			h, err := hr.at(pos, v.st.size)
			if err != nil {
				return -1, -1, false, err
			}
			if h.MaxTimestamp >= ts {
				return h.BaseOffset, h.MaxTimestamp, true, nil
			}
			pos += int64(h.Size())
		}
	}
	return -1, -1, false, nil
}
