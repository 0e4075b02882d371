package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
)

const (
	offsetEntrySize = 8
	timeEntrySize   = 12
)

// indexEntry is one sparse index point: the batch at file position pos has
// BaseOffset segment base + rel, and maxTs is the largest MaxTimestamp of
// the segment's batches up to and including it.
type indexEntry struct {
	rel   uint32
	pos   uint32
	maxTs int64
}

// lookupOffset returns the file position of the last indexed batch whose
// base offset is <= off, or 0 when there is none: the place to start
// scanning forward for off.
func lookupOffset(idx []indexEntry, base, off int64) int64 {
	rel := off - base
	i := sort.Search(len(idx), func(i int) bool { return int64(idx[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(idx[i-1].pos)
}

// lookupTimestamp returns the file position of the last indexed batch
// before which (inclusive) every batch has MaxTimestamp < ts, or 0: no
// batch before that position can have MaxTimestamp >= ts.
func lookupTimestamp(idx []indexEntry, ts int64) int64 {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].maxTs >= ts })
	if i == 0 {
		return 0
	}
	return int64(idx[i-1].pos)
}

// encodeIndex returns the contents of the .index and .timeindex files.
func encodeIndex(idx []indexEntry) (offsets, times []byte) {
	offsets = make([]byte, 0, len(idx)*offsetEntrySize)
	times = make([]byte, 0, len(idx)*timeEntrySize)
	for _, e := range idx {
		offsets = binary.BigEndian.AppendUint32(offsets, e.rel)
		offsets = binary.BigEndian.AppendUint32(offsets, e.pos)
		times = binary.BigEndian.AppendUint64(times, uint64(e.maxTs))
		times = binary.BigEndian.AppendUint32(times, e.rel)
	}
	return offsets, times
}

// decodeIndex parses .index and .timeindex contents for a segment of
// segSize bytes and checks that they are sane: whole entries, the same
// count in both, relative offsets and positions strictly increasing, every
// position inside the segment, max timestamps non-decreasing.
func decodeIndex(offsets, times []byte, segSize int64) ([]indexEntry, error) {
	if len(offsets)%offsetEntrySize != 0 || len(times)%timeEntrySize != 0 {
		return nil, fmt.Errorf("index sizes %d and %d are not whole entries", len(offsets), len(times))
	}
	n := len(offsets) / offsetEntrySize
	if len(times)/timeEntrySize != n {
		return nil, fmt.Errorf("offset index has %d entries, time index %d", n, len(times)/timeEntrySize)
	}
	idx := make([]indexEntry, n)
	be := binary.BigEndian
	for i := range idx {
		o, t := offsets[i*offsetEntrySize:], times[i*timeEntrySize:]
		e := indexEntry{rel: be.Uint32(o), pos: be.Uint32(o[4:]), maxTs: int64(be.Uint64(t))}
		switch {
		case be.Uint32(t[8:]) != e.rel:
			return nil, fmt.Errorf("entry %d: offset index says relative offset %d, time index %d", i, e.rel, be.Uint32(t[8:]))
		case e.pos == 0 || int64(e.pos) >= segSize:
			return nil, fmt.Errorf("entry %d: position %d outside (0, %d)", i, e.pos, segSize)
		case i > 0 && (e.rel <= idx[i-1].rel || e.pos <= idx[i-1].pos || e.maxTs < idx[i-1].maxTs):
			return nil, fmt.Errorf("entry %d does not follow entry %d", i, i-1)
		}
		idx[i] = e
	}
	return idx, nil
}

// readIndexFiles loads and checks the index files of a segment; any error
// means they must be rebuilt.
func readIndexFiles(logPath string, segSize int64) ([]indexEntry, error) {
	offsets, err := os.ReadFile(indexPath(logPath))
	if err != nil {
		return nil, err
	}
	times, err := os.ReadFile(timeIndexPath(logPath))
	if err != nil {
		return nil, err
	}
	return decodeIndex(offsets, times, segSize)
}

// writeIndexFiles writes both index files of a segment atomically.
func (d *Disk) writeIndexFiles(logPath string, idx []indexEntry) error {
	offsets, times := encodeIndex(idx)
	return errors.Join(
		d.WriteFileAtomic(indexPath(logPath), offsets),
		d.WriteFileAtomic(timeIndexPath(logPath), times),
	)
}

// removeIndexFiles deletes the index files of a segment, if any.
func (d *Disk) removeIndexFiles(logPath string) error {
	return errors.Join(d.remove(indexPath(logPath)), d.remove(timeIndexPath(logPath)))
}

// upperBoundPos returns a file position at or after the start of the first
// batch whose base offset is >= off: the position of the first indexed
// batch with base offset >= off, or end when there is none.
func upperBoundPos(idx []indexEntry, base, off, end int64) int64 {
	rel := off - base
	i := sort.Search(len(idx), func(i int) bool { return int64(idx[i].rel) >= rel })
	if i == len(idx) {
		return end
	}
	return int64(idx[i].pos)
}
