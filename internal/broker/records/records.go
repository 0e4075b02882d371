// Package records builds and reads uncompressed Kafka v2 record batches with kmsg. The broker uses
// it for the records it writes itself (consumer-group offsets) and tests use it to craft exact
// batches (duplicates, gaps, corruption) to send over the wire.
package records

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCompressed is returned by Decode for a compressed batch, which this package does not read.
var ErrCompressed = errors.New("records: compressed batch")

// Producer identifies an idempotent producer's batch: id, epoch and first sequence. The zero
// value is not idempotent (use NoProducer).
type Producer struct {
	ID       int64
	Epoch    int16
	Sequence int32
}

// NoProducer marks a batch without idempotence.
var NoProducer = Producer{ID: -1, Epoch: -1, Sequence: -1}

// Record is one key/value to put in a batch.
type Record struct {
	Key, Value []byte
	Headers    []kmsg.Header
}

// Build encodes an uncompressed v2 batch of recs with base offset 0, timestamps ts (ms), the
// producer's identity and a correct CRC-32C.
func Build(recs []Record, ts int64, p Producer) []byte { return build(recs, ts, p, 0) }

// BuildTxn encodes recs as Build does, as a transactional batch of the producer: what a group
// coordinator writes for a TxnOffsetCommit (Kafka gives it no sequence: p.Sequence -1).
func BuildTxn(recs []Record, ts int64, p Producer) []byte { return build(recs, ts, p, txnAttr) }

func build(recs []Record, ts int64, p Producer, attrs int16) []byte {
	var body []byte
	for i, r := range recs {
		kr := kmsg.Record{OffsetDelta: int32(i), Key: r.Key, Value: r.Value, Headers: r.Headers}
		enc := kr.AppendTo(nil)
		// Length counts the bytes after the length varint; the first byte encodes a zero length.
		kr.Length = int32(len(enc) - 1)
		body = kr.AppendTo(body)
	}
	b := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       ts,
		MaxTimestamp:         ts,
		ProducerID:           p.ID,
		ProducerEpoch:        p.Epoch,
		FirstSequence:        p.Sequence,
		NumRecords:           int32(len(recs)),
		Records:              body,
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], castagnoli))
	return out
}

// Attributes of a transactional batch, and of a transaction marker batch: transactional and
// control.
const (
	txnAttr     = 0x10
	markerAttrs = txnAttr | 0x20
)

// Control record types of a transaction marker's key (Kafka's
// ControlRecordType).
const (
	controlAbort  = 0
	controlCommit = 1
)

// ErrNotMarker is returned by MarkerOf for a batch that is not a
// transaction marker.
var ErrNotMarker = errors.New("records: not a transaction marker")

// BuildMarker encodes a transaction marker as Kafka's partition leaders write
// it: a transactional control batch of the producer's id and epoch (no
// sequence) holding one control record, key (version 0, COMMIT or ABORT),
// value (version 0, the coordinator epoch).
func BuildMarker(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, ts int64) []byte {
	typ := int16(controlAbort)
	if commit {
		typ = controlCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	value := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(coordinatorEpoch))
	return build([]Record{{Key: key, Value: value}}, ts, Producer{ID: producerID, Epoch: epoch, Sequence: -1}, markerAttrs)
}

// Marker is what a transaction marker says: whether it commits, and the
// epoch of the transaction coordinator that wrote it (Kafka's
// EndTransactionMarker).
type Marker struct {
	Commit           bool
	CoordinatorEpoch int32
}

// MarkerOf decodes the first batch of b as a transaction marker; any other
// batch is ErrNotMarker, a marker whose value is too short to hold the
// coordinator epoch an error.
func MarkerOf(b []byte) (Marker, error) {
	bs, err := Decode(b)
	if err != nil {
		return Marker{}, err
	}
	if len(bs) == 0 {
		return Marker{}, ErrNotMarker
	}
	commit, ok := bs[0].Marker()
	if !ok {
		return Marker{}, ErrNotMarker
	}
	// The value: version (int16), coordinator epoch (int32).
	v := bs[0].Recs[0].Value
	if len(v) < 6 {
		return Marker{Commit: commit, CoordinatorEpoch: -1}, fmt.Errorf("records: marker value of %d bytes has no coordinator epoch", len(v))
	}
	return Marker{Commit: commit, CoordinatorEpoch: int32(binary.BigEndian.Uint32(v[2:]))}, nil
}

// Batch is a decoded batch: its header fields and records.
type Batch struct {
	kmsg.RecordBatch
	Recs []kmsg.Record
}

// Transactional reports whether b belongs to a producer's transaction: a transactional data
// batch or a transaction marker.
func (b Batch) Transactional() bool { return b.Attributes&txnAttr != 0 && b.ProducerID >= 0 }

// Marker reports whether b is a transaction marker (ok) and whether it commits.
func (b Batch) Marker() (commit, ok bool) {
	if b.Attributes&markerAttrs != markerAttrs || len(b.Recs) != 1 || len(b.Recs[0].Key) < 4 {
		return false, false
	}
	switch binary.BigEndian.Uint16(b.Recs[0].Key[2:]) {
	case controlAbort:
		return false, true
	case controlCommit:
		return true, true
	}
	return false, false
}

// Decode splits b into batches and decodes each uncompressed one; it stops at a trailing partial
// batch (as a fetch response may end with one). Compressed batches return ErrCompressed.
func Decode(b []byte) ([]Batch, error) {
	var out []Batch
	for len(b) >= 12 {
		size := int(int32(binary.BigEndian.Uint32(b[8:]))) + 12
		if size < 61 {
			return out, fmt.Errorf("records: batch length %d is too small", size-12)
		}
		if size > len(b) {
			break
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b[:size]); err != nil {
			return out, fmt.Errorf("records: batch at offset %d: %w", int64(binary.BigEndian.Uint64(b)), err)
		}
		if rb.Attributes&0x07 != 0 {
			return out, fmt.Errorf("%w: codec %d at offset %d", ErrCompressed, rb.Attributes&0x07, rb.FirstOffset)
		}
		recs, err := decodeRecords(rb.Records, int(rb.NumRecords))
		if err != nil {
			return out, fmt.Errorf("records: batch at offset %d: %w", rb.FirstOffset, err)
		}
		out = append(out, Batch{RecordBatch: rb, Recs: recs})
		b = b[size:]
	}
	return out, nil
}

func decodeRecords(b []byte, n int) ([]kmsg.Record, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative record count %d", n)
	}
	recs := make([]kmsg.Record, 0, min(n, len(b)))
	for i := 0; i < n; i++ {
		rd := kbin.Reader{Src: b}
		l := rd.Varint()
		if !rd.Ok() || l < 0 || int(l) > len(rd.Src) {
			return nil, fmt.Errorf("record %d: bad length %d", i, l)
		}
		used := len(b) - len(rd.Src) + int(l)
		var r kmsg.Record
		if err := r.ReadFrom(b[:used]); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		recs = append(recs, r)
		b = b[used:]
	}
	return recs, nil
}
