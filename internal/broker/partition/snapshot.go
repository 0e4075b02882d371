package partition

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// A producer snapshot (<offset>.snapshot in the log directory, Kafka's
// ProducerStateManager snapshots) is the idempotence and transaction state
// of a partition before offset: per producer its epoch, the max timestamp of
// its last batch, the first offset of its open transaction and the batches
// it has cached (up to maxCachedBatches: sequences and offsets), and per
// segment the number of aborted transactions its .txnindex holds below
// offset, which tells Open whether the .txnindex files are whole. The
// layout, big-endian:
//
//	version int16 (1) | crc32c uint32 of what follows | offset int64
//	segments int32, each: base int64, aborted int32
//	producers int32, each: id int64, epoch int16 (-1: no producer state,
//	  only a transaction or a coordinator epoch), lastTimestamp int64 (-1
//	  with epoch -1), coordinatorEpoch int32 (of its last marker, -1: none),
//	  txnFirstOffset int64 (-1: none), batches int8, each: firstSeq int32,
//	  lastSeq int32, firstOffset int64, lastOffset int64
//
// The file is written atomically (log.Log.WriteProducerSnapshot) at segment
// rolls and on a clean close; one that does not decode, or disagrees with
// the .txnindex files, is ignored and the state rebuilt from the log.
const snapshotVersion = 1

// producerSnapshot is the decoded content of a producer snapshot.
type producerSnapshot struct {
	offset    int64
	segments  map[int64]int // segment base -> aborted transactions below offset
	producers producers
	open      map[int64]int64 // producer id -> first offset of its open transaction
	// coordinatorEpochs is, per producer id, the coordinator epoch of its last marker, as
	// Kafka's snapshots keep it (see coordinator_epochs.go).
	coordinatorEpochs map[int64]int32
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// encodeProducerSnapshot encodes s; producers and segments are written in
// increasing order, so equal states encode equally.
func encodeProducerSnapshot(s producerSnapshot) []byte {
	b := binary.BigEndian.AppendUint16(nil, snapshotVersion)
	b = append(b, 0, 0, 0, 0) // crc
	b = binary.BigEndian.AppendUint64(b, uint64(s.offset))
	bases := slices.Sorted(maps.Keys(s.segments))
	b = binary.BigEndian.AppendUint32(b, uint32(len(bases)))
	for _, base := range bases {
		b = binary.BigEndian.AppendUint64(b, uint64(base))
		b = binary.BigEndian.AppendUint32(b, uint32(s.segments[base]))
	}
	ids := slices.Collect(maps.Keys(s.producers))
	ids = slices.AppendSeq(ids, maps.Keys(s.open))
	ids = slices.AppendSeq(ids, maps.Keys(s.coordinatorEpochs))
	slices.SortFunc(ids, cmp.Compare)
	ids = slices.Compact(ids)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := s.producers[id]
		epoch, ts := int16(-1), int64(-1)
		var batches []batchMeta
		if e != nil {
			epoch, ts, batches = e.epoch, e.lastTimestamp, e.batches
		}
		txnFirst, ok := s.open[id]
		if !ok {
			txnFirst = -1
		}
		coordEpoch, ok := s.coordinatorEpochs[id]
		if !ok {
			coordEpoch = -1
		}
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(ts))
		b = binary.BigEndian.AppendUint32(b, uint32(coordEpoch))
		b = binary.BigEndian.AppendUint64(b, uint64(txnFirst))
		b = append(b, byte(len(batches)))
		for _, m := range batches {
			b = binary.BigEndian.AppendUint32(b, uint32(m.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(m.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(m.firstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(m.lastOffset))
		}
	}
	binary.BigEndian.PutUint32(b[2:], crc32.Checksum(b[6:], crc32c))
	return b
}

// errBadSnapshot is wrapped by every decoding failure.
var errBadSnapshot = fmt.Errorf("producer snapshot: %w", log.ErrCorruptTxnState)

// snapshotReader reads big-endian fields, remembering the first shortfall.
type snapshotReader struct {
	b   []byte
	err error
}

func (r *snapshotReader) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = fmt.Errorf("%w: truncated", errBadSnapshot)
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *snapshotReader) i8() int8   { return int8(r.take(1)[0]) }
func (r *snapshotReader) i16() int16 { return int16(binary.BigEndian.Uint16(r.take(2))) }
func (r *snapshotReader) i32() int32 { return int32(binary.BigEndian.Uint32(r.take(4))) }
func (r *snapshotReader) i64() int64 { return int64(binary.BigEndian.Uint64(r.take(8))) }

// decodeProducerSnapshot decodes a snapshot and checks it is one this
// package could have written for offset: the version and CRC, counts that
// fit the bytes, no trailing bytes, each producer once, at most
// maxCachedBatches batches in increasing offsets below offset, open
// transactions starting below offset.
func decodeProducerSnapshot(b []byte, offset int64) (producerSnapshot, error) {
	fail := func(format string, args ...any) (producerSnapshot, error) {
		return producerSnapshot{}, fmt.Errorf("%w: %s", errBadSnapshot, fmt.Sprintf(format, args...))
	}
	if len(b) < 6 {
		return fail("%d bytes", len(b))
	}
	if v := int16(binary.BigEndian.Uint16(b)); v != snapshotVersion {
		return fail("version %d", v)
	}
	if want, got := binary.BigEndian.Uint32(b[2:]), crc32.Checksum(b[6:], crc32c); want != got {
		return fail("crc %08x, computed %08x", want, got)
	}
	r := &snapshotReader{b: b[6:]}
	s := producerSnapshot{segments: map[int64]int{}, producers: producers{}, open: map[int64]int64{}, coordinatorEpochs: map[int64]int32{}}
	if s.offset = r.i64(); s.offset != offset {
		return fail("offset %d in the file named %d", s.offset, offset)
	}
	nseg := r.i32()
	if nseg < 0 || int(nseg) > len(r.b)/12 {
		return fail("%d segments", nseg)
	}
	for range nseg {
		base, n := r.i64(), r.i32()
		if _, dup := s.segments[base]; dup || base < 0 || base >= offset || n <= 0 {
			return fail("segment %d with %d aborted transactions", base, n)
		}
		s.segments[base] = int(n)
	}
	nprod := r.i32()
	if nprod < 0 || int(nprod) > len(r.b)/31 {
		return fail("%d producers", nprod)
	}
	for range nprod {
		id, epoch, ts, coordEpoch, txnFirst, nb := r.i64(), r.i16(), r.i64(), r.i32(), r.i64(), r.i8()
		if r.err != nil {
			return producerSnapshot{}, r.err
		}
		_, dupOpen := s.open[id]
		_, dupCoord := s.coordinatorEpochs[id]
		if id < 0 || s.producers[id] != nil || dupOpen || dupCoord || epoch < -1 || coordEpoch < -1 ||
			txnFirst < -1 || txnFirst >= offset || nb < 0 || nb > maxCachedBatches ||
			(epoch == -1 && (nb != 0 || ts != -1 || (txnFirst < 0 && coordEpoch < 0))) {
			return fail("producer %d: epoch %d, timestamp %d, coordinator epoch %d, transaction at %d, %d batches", id, epoch, ts, coordEpoch, txnFirst, nb)
		}
		e := &producerEntry{epoch: epoch, lastTimestamp: ts}
		for range nb {
			m := batchMeta{firstSeq: r.i32(), lastSeq: r.i32(), firstOffset: r.i64(), lastOffset: r.i64()}
			if m.firstOffset < 0 || m.firstOffset > m.lastOffset || m.lastOffset >= offset || m.firstSeq < 0 || m.lastSeq < 0 ||
				(len(e.batches) > 0 && m.firstOffset <= e.batches[len(e.batches)-1].lastOffset) {
				return fail("producer %d: batch %+v", id, m)
			}
			e.batches = append(e.batches, m)
		}
		if epoch >= 0 {
			s.producers[id] = e
		}
		if txnFirst >= 0 {
			s.open[id] = txnFirst
		}
		if coordEpoch >= 0 {
			s.coordinatorEpochs[id] = coordEpoch
		}
	}
	if r.err != nil {
		return producerSnapshot{}, r.err
	}
	if len(r.b) != 0 {
		return fail("%d trailing bytes", len(r.b))
	}
	return s, nil
}

// snapshotLocked returns the snapshot of the replica's state now, at the
// log end offset.
func (r *Replica) snapshotLocked() producerSnapshot {
	end := r.log.EndOffset()
	segs := map[int64]int{}
	for _, a := range r.txns.aborted {
		if a.LastOffset >= r.log.StartOffset() {
			segs[r.log.SegmentOf(a.LastOffset)]++
		}
	}
	return producerSnapshot{offset: end, segments: segs, producers: r.producers, open: r.txns.open,
		coordinatorEpochs: r.txns.coordinatorEpochs}
}

// writeSnapshot writes an encoded snapshot; failures are logged only (Open
// then scans more of the log).
func (r *Replica) writeSnapshot(offset int64, data []byte) {
	if err := r.log.WriteProducerSnapshot(offset, data); err != nil {
		r.lg.Warn("cannot write a producer snapshot", "offset", offset, "err", err)
	}
}

// rolledLocked reports whether the active segment changed since the last
// call: the moment to snapshot producer state, as Kafka does at a roll.
func (r *Replica) rolledLocked() bool {
	active := r.log.SegmentOf(r.log.EndOffset())
	rolled := active != r.activeSeg
	r.activeSeg = active
	return rolled
}

// loadTxnStateLocked rebuilds idempotence and transaction state: from the
// latest producer snapshot within the log, the aborted transactions the
// .txnindex files hold below it, and a scan of the log after it; or, when
// there is no usable snapshot or the files disagree with it, from a scan of
// the whole log, rewriting the .txnindex files. Snapshots past the log end
// are deleted. The .txnindex files of the scanned segments are rewritten if
// they differ from what the scan found.
func (r *Replica) loadTxnStateLocked() error {
	clear(r.producers)
	r.txns.reset()
	start, end := r.log.StartOffset(), r.log.EndOffset()
	if err := r.log.DeleteProducerSnapshots(func(off int64) bool { return off > end }); err != nil {
		r.lg.Warn("cannot delete producer snapshots past the log end", "err", err)
	}
	from := start
	if s, aborted, ok := r.latestSnapshotLocked(start); ok {
		maps.Copy(r.producers, s.producers)
		maps.Copy(r.txns.open, s.open)
		maps.Copy(r.txns.coordinatorEpochs, s.coordinatorEpochs)
		r.txns.aborted = append(r.txns.aborted, aborted...)
		from = s.offset
	}
	var readErr error
	r.scanned = 0
	err := r.log.Scan(from, func(h log.BatchHeader) bool {
		r.scanned++
		r.producers.update(h)
		var m records.Marker
		if h.IsControl() {
			b, err := r.log.Read(h.BaseOffset, h.Size(), h.NextOffset())
			if err != nil {
				readErr = fmt.Errorf("read the marker at %d: %w", h.BaseOffset, err)
				return false
			}
			m = r.markerOf(h, b)
		}
		if a, ok := r.txns.observeMarker(h, m); ok {
			r.scannedAborts = append(r.scannedAborts, a)
		}
		return true
	})
	if err := cmp.Or(err, readErr); err != nil {
		return err
	}
	if err := r.log.WriteTxnIndexes(r.scannedAborts, from); err != nil {
		r.lg.Warn("cannot write the transaction index", "err", err)
	}
	r.scannedAborts = r.scannedAborts[:0]
	r.activeSeg = r.log.SegmentOf(end)
	if from == start && end > start {
		r.writeSnapshot(end, encodeProducerSnapshot(r.snapshotLocked()))
	}
	return nil
}

// latestSnapshotLocked returns the latest producer snapshot at or above the
// log start that decodes and agrees with the .txnindex files, with the
// aborted transactions below it. Snapshots that fail are deleted.
func (r *Replica) latestSnapshotLocked(start int64) (producerSnapshot, []AbortedTxn, bool) {
	offs, err := r.log.ProducerSnapshots()
	if err != nil {
		r.lg.Warn("cannot list producer snapshots", "err", err)
		return producerSnapshot{}, nil, false
	}
	for i := len(offs) - 1; i >= 0 && offs[i] >= start; i-- {
		off := offs[i]
		s, aborted, err := r.readSnapshotLocked(off)
		if err == nil {
			return s, aborted, true
		}
		r.lg.Warn("producer snapshot not usable, ignored", "offset", off, "err", err)
		if err := r.log.DeleteProducerSnapshots(func(o int64) bool { return o == off }); err != nil {
			r.lg.Warn("cannot delete a producer snapshot", "offset", off, "err", err)
		}
	}
	return producerSnapshot{}, nil, false
}

func (r *Replica) readSnapshotLocked(off int64) (producerSnapshot, []AbortedTxn, error) {
	b, err := r.log.ReadProducerSnapshot(off)
	if err != nil {
		return producerSnapshot{}, nil, err
	}
	s, err := decodeProducerSnapshot(b, off)
	if err != nil {
		return producerSnapshot{}, nil, err
	}
	entries, perSeg, err := r.log.AbortedTxns(off)
	if err != nil {
		return producerSnapshot{}, nil, err
	}
	start := r.log.StartOffset()
	for base, n := range s.segments {
		if base >= start && perSeg[base] != n {
			return producerSnapshot{}, nil, fmt.Errorf("%w: segment %d has %d aborted transactions below %d in its .txnindex, the snapshot counts %d",
				log.ErrCorruptTxnState, base, perSeg[base], off, n)
		}
	}
	for base, n := range perSeg {
		if _, ok := s.segments[base]; !ok {
			return producerSnapshot{}, nil, fmt.Errorf("%w: segment %d has %d aborted transactions below %d in its .txnindex, the snapshot none",
				log.ErrCorruptTxnState, base, n, off)
		}
	}
	aborted := make([]AbortedTxn, len(entries))
	for i, a := range entries {
		aborted[i] = AbortedTxn{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset, LastOffset: a.LastOffset}
	}
	return s, aborted, nil
}
