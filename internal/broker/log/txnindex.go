package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// File names of the transaction state kept next to the segments.
const (
	txnIndexSuffix = ".txnindex" // a segment's aborted transactions
	snapshotSuffix = ".snapshot" // producer state as of the offset in the name

	// txnEntrySize is the size of one .txnindex entry: version (int16),
	// producer id, first offset, last offset and last stable offset (int64s),
	// big-endian, as Kafka's AbortedTxn.
	txnEntrySize    = 2 + 4*8
	txnEntryVersion = 0
)

// ErrCorruptTxnState is returned (wrapped) when a .txnindex or .snapshot
// file does not hold what it should: its owner rebuilds it from the log.
var ErrCorruptTxnState = errors.New("log: corrupt transaction index or producer snapshot")

// AbortedTxn is one entry of a segment's .txnindex: a transaction aborted
// by the marker at LastOffset, whose first record is at FirstOffset, and the
// partition's last stable offset when the marker was appended.
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64
	LastOffset       int64
	LastStableOffset int64
}

// EncodeTxnIndex returns the bytes of a .txnindex holding entries.
func EncodeTxnIndex(entries []AbortedTxn) []byte {
	b := make([]byte, 0, len(entries)*txnEntrySize)
	for _, a := range entries {
		b = binary.BigEndian.AppendUint16(b, txnEntryVersion)
		b = binary.BigEndian.AppendUint64(b, uint64(a.ProducerID))
		b = binary.BigEndian.AppendUint64(b, uint64(a.FirstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(a.LastOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(a.LastStableOffset))
	}
	return b
}

// DecodeTxnIndex decodes a .txnindex. It fails with ErrCorruptTxnState
// unless the file holds whole entries of version 0, each with a producer id
// and 0 <= FirstOffset <= LastOffset, in increasing LastOffset order.
func DecodeTxnIndex(b []byte) ([]AbortedTxn, error) {
	if len(b)%txnEntrySize != 0 {
		return nil, fmt.Errorf("%w: .txnindex of %d bytes is not whole entries of %d", ErrCorruptTxnState, len(b), txnEntrySize)
	}
	out := make([]AbortedTxn, 0, len(b)/txnEntrySize)
	for pos := 0; pos < len(b); pos += txnEntrySize {
		e := b[pos : pos+txnEntrySize]
		if v := binary.BigEndian.Uint16(e); v != txnEntryVersion {
			return nil, fmt.Errorf("%w: .txnindex entry %d has version %d", ErrCorruptTxnState, len(out), v)
		}
		a := AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(e[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(e[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(e[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(e[26:])),
		}
		switch {
		case a.ProducerID < 0 || a.FirstOffset < 0 || a.FirstOffset > a.LastOffset || a.LastStableOffset < 0:
			return nil, fmt.Errorf("%w: .txnindex entry %d is impossible: %+v", ErrCorruptTxnState, len(out), a)
		case len(out) > 0 && a.LastOffset <= out[len(out)-1].LastOffset:
			return nil, fmt.Errorf("%w: .txnindex entry %d does not follow the previous one", ErrCorruptTxnState, len(out))
		}
		out = append(out, a)
	}
	return out, nil
}

func txnIndexPath(logPath string) string {
	return strings.TrimSuffix(logPath, logSuffix) + txnIndexSuffix
}

func snapshotPath(dir string, offset int64) string {
	return filepath.Join(dir, fmt.Sprintf("%0*d%s", baseDigits, offset, snapshotSuffix))
}

// appendFile appends data to path, creating it if needed, without fsyncing.
func (d *Disk) appendFile(path string, data []byte) error {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		d.record(path, func(s *diskFile) { *s = diskFile{} })
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("log: append to %s: %w", filepath.Base(path), err)
	}
	return nil
}

// syncFileIfExists fsyncs path if it exists.
func (d *Disk) syncFileIfExists(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	return errors.Join(d.sync(f, path), f.Close())
}

// AppendAbortedTxn adds a to the .txnindex of the segment holding its
// marker (a.LastOffset), which must be in the log. The entry is written,
// not fsynced: a roll fsyncs the index of the segment it closes, and Open
// does not trust an index blindly (see AbortedTxns).
func (l *Log) AppendAbortedTxn(a AbortedTxn) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if a.LastOffset < l.start || a.LastOffset >= l.end {
		return fmt.Errorf("%w: aborted transaction marker at %d, log holds [%d, %d)", ErrOffsetOutOfRange, a.LastOffset, l.start, l.end)
	}
	seg := l.segs[segmentFor(l.segs, a.LastOffset)]
	return l.disk.appendFile(txnIndexPath(seg.path), EncodeTxnIndex([]AbortedTxn{a}))
}

// AbortedTxns reads the .txnindex of every segment and returns the entries
// whose marker is below offset, in marker order, and how many of them each
// segment (by base offset) holds. A missing file holds none. It fails with
// ErrCorruptTxnState when a file does not decode or names a marker outside
// its segment.
func (l *Log) AbortedTxns(below int64) (entries []AbortedTxn, perSegment map[int64]int, err error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	perSegment = map[int64]int{}
	for i, seg := range l.segs {
		if seg.base >= below {
			break
		}
		b, err := os.ReadFile(txnIndexPath(seg.path))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, nil, fmt.Errorf("log: %w", err)
		}
		es, err := DecodeTxnIndex(b)
		if err != nil {
			return nil, nil, fmt.Errorf("segment %d: %w", seg.base, err)
		}
		next := l.end
		if i+1 < len(l.segs) {
			next = l.segs[i+1].base
		}
		for _, a := range es {
			if a.LastOffset < seg.base || a.LastOffset >= next {
				return nil, nil, fmt.Errorf("%w: segment %d: .txnindex names a marker at %d, outside [%d, %d)", ErrCorruptTxnState, seg.base, a.LastOffset, seg.base, next)
			}
			if a.LastOffset < below {
				entries = append(entries, a)
				perSegment[seg.base]++
			}
		}
	}
	return entries, perSegment, nil
}

// SegmentOf returns the base offset of the segment holding offset (the
// first segment's for an offset below the log, the active one's above it).
func (l *Log) SegmentOf(offset int64) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segs[segmentFor(l.segs, offset)].base
}

// WriteTxnIndexes makes the .txnindex files from the segment holding from
// on hold exactly the entries they already have below from and then the
// given entries (those of a scan of the log from from, in marker order;
// entries below from or outside the log are ignored): how an index is
// rebuilt after a scan. A file that would not change is not written; one
// that does not decode keeps nothing below from; a segment with no entry
// has no file.
func (l *Log) WriteTxnIndexes(entries []AbortedTxn, from int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	first := segmentFor(l.segs, from)
	bySeg := make([][]AbortedTxn, len(l.segs))
	for _, a := range entries {
		if a.LastOffset >= from && a.LastOffset >= l.start && a.LastOffset < l.end {
			i := segmentFor(l.segs, a.LastOffset)
			bySeg[i] = append(bySeg[i], a)
		}
	}
	var errs []error
	for i := first; i < len(l.segs); i++ {
		path := txnIndexPath(l.segs[i].path)
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		kept, err := DecodeTxnIndex(old)
		if err != nil {
			kept = nil
		}
		kept = slices.DeleteFunc(kept, func(a AbortedTxn) bool { return a.LastOffset >= from })
		want := EncodeTxnIndex(append(kept, bySeg[i]...))
		switch {
		case len(want) == 0 && old == nil:
		case len(want) == 0:
			errs = append(errs, l.disk.remove(path))
		case !bytes.Equal(want, old):
			errs = append(errs, l.disk.WriteFileAtomic(path, want))
		}
	}
	return errors.Join(errs...)
}

// truncateTxnIndexLocked keeps in seg's .txnindex only the entries whose
// marker is below end, after a truncation. A file that does not decode is
// removed: Open then finds it short and rebuilds it.
func (l *Log) truncateTxnIndexLocked(seg *segment, end int64) error {
	path := txnIndexPath(seg.path)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	es, err := DecodeTxnIndex(b)
	if err != nil {
		return l.disk.remove(path)
	}
	kept := slices.DeleteFunc(es, func(a AbortedTxn) bool { return a.LastOffset >= end })
	if len(kept) == len(es) {
		return nil
	}
	if len(kept) == 0 {
		return l.disk.remove(path)
	}
	return l.disk.WriteFileAtomic(path, EncodeTxnIndex(kept))
}

// WriteProducerSnapshot writes data as the producer snapshot at offset
// (producer state before offset), atomically: a temporary file, fsynced,
// renamed over the name, and the directory fsynced.
func (l *Log) WriteProducerSnapshot(offset int64, data []byte) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	return l.disk.writeFileAtomic(snapshotPath(l.dir, offset), data, l.diskStep)
}

// ProducerSnapshots returns the offsets of the producer snapshots in the
// directory, ascending.
func (l *Log) ProducerSnapshots() ([]int64, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	var out []int64
	for _, e := range ents {
		if off, ok := parseSegmentFileName(e.Name(), snapshotSuffix); ok && e.Type().IsRegular() {
			out = append(out, off)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ReadProducerSnapshot returns the bytes of the producer snapshot at offset.
func (l *Log) ReadProducerSnapshot(offset int64) ([]byte, error) {
	b, err := os.ReadFile(snapshotPath(l.dir, offset))
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return b, nil
}

// DeleteProducerSnapshots removes the producer snapshots at offsets for
// which drop returns true.
func (l *Log) DeleteProducerSnapshots(drop func(offset int64) bool) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.deleteSnapshotsLocked(drop)
}

func (l *Log) deleteSnapshotsLocked(drop func(offset int64) bool) error {
	offs, err := l.ProducerSnapshots()
	if err != nil {
		return err
	}
	var errs []error
	for _, off := range offs {
		if drop(off) {
			errs = append(errs, l.disk.remove(snapshotPath(l.dir, off)))
		}
	}
	return errors.Join(errs...)
}
