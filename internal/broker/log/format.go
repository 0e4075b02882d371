package log

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

/*
Record batch (Kafka message format v2, magic 2), stored in .log files exactly
as received except for BaseOffset and PartitionLeaderEpoch, which the leader
assigns. All integers are big-endian.

	byte  0  BaseOffset           int64   first offset of the batch
	byte  8  BatchLength          int32   bytes after this field (whole batch = 12 + BatchLength)
	byte 12  PartitionLeaderEpoch int32   epoch of the leader that appended it
	byte 16  Magic                int8    2
	byte 17  CRC                  uint32  CRC-32C (Castagnoli) of bytes 21..end
	byte 21  Attributes           int16   bits 0-2 compression, 3 timestamp type,
	                                      4 transactional, 5 control
	byte 23  LastOffsetDelta      int32   NumRecords-1 for batches we accept
	byte 27  FirstTimestamp       int64
	byte 35  MaxTimestamp         int64
	byte 43  ProducerID           int64
	byte 51  ProducerEpoch        int16
	byte 53  BaseSequence         int32
	byte 57  NumRecords           int32
	byte 61  Records              (compressed as a whole when compression != 0)

Each uncompressed record is:

	Length varint, Attributes int8, TimestampDelta varlong, OffsetDelta varint,
	KeyLength varint (-1 = null), Key, ValueLength varint (-1 = null), Value,
	HeaderCount varint, then per header: KeyLength varint, Key,
	ValueLength varint (-1 = null), Value

where varints are zig-zag encoded as in protobuf (Go's binary.Varint).
BaseOffset and PartitionLeaderEpoch are outside the CRC, which is why the
leader may rewrite them without recomputing it.

Offset index (<base>.index): one 8-byte entry every IndexIntervalBytes of
log, as Kafka's:

	byte 0  relative offset  uint32  BaseOffset of the indexed batch - segment base
	byte 4  position         uint32  byte position of that batch in the .log file

Time index (<base>.timeindex): one 12-byte entry per offset-index entry,
same order:

	byte 0  max timestamp    int64   largest MaxTimestamp of the batches up to
	                                 and including the indexed batch
	byte 8  relative offset  uint32  same as in the offset index

Entries are strictly increasing in relative offset and position, and
non-decreasing in max timestamp. The first batch of a segment (position 0)
never needs an entry.

Leader-epoch checkpoint (leader-epoch-checkpoint), text as Kafka's:

	0                 version
	N                 number of entries
	<epoch> <offset>  N lines, the start offset of each leader epoch, ascending
*/

// HeaderSize is the size of the fixed header of a v2 record batch, up to
// and including NumRecords.
const HeaderSize = 61

// Byte positions of the header fields.
const (
	posBatchLength     = 8
	posLeaderEpoch     = 12
	posMagic           = 16
	posCRC             = 17
	posAttributes      = 21
	posLastOffsetDelta = 23
	posFirstTimestamp  = 27
	posMaxTimestamp    = 35
	posProducerID      = 43
	posProducerEpoch   = 51
	posBaseSequence    = 53
	posNumRecords      = 57

	// lengthPrefix is the bytes not counted by BatchLength.
	lengthPrefix = 12
	// minBatchLength is the smallest BatchLength a v2 batch can have.
	minBatchLength = HeaderSize - lengthPrefix

	magicV2 = 2

	attrCompressionMask = 0x07
	attrTransactional   = 0x10
	attrControl         = 0x20
	maxCompressionCodec = 4 // zstd

	// noSequence is Kafka's RecordBatch.NO_SEQUENCE.
	noSequence = -1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the fixed 61-byte header of a Kafka v2 record batch.
type BatchHeader struct {
	BaseOffset           int64
	BatchLength          int32 // bytes after the length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// LastOffset returns the offset of the batch's last record.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset returns the offset right after the batch, LastOffset()+1.
func (h BatchHeader) NextOffset() int64 { return h.LastOffset() + 1 }

// Size returns the size of the whole batch, 12 + BatchLength.
func (h BatchHeader) Size() int { return lengthPrefix + int(h.BatchLength) }

// IsTransactional reports whether the batch belongs to a transaction.
func (h BatchHeader) IsTransactional() bool { return h.Attributes&attrTransactional != 0 }

// IsControl reports whether the batch holds a control record (a
// transaction marker written by the broker).
func (h BatchHeader) IsControl() bool { return h.Attributes&attrControl != 0 }

// Compression returns the compression codec: 0 none, 1 gzip, 2 snappy,
// 3 lz4, 4 zstd.
func (h BatchHeader) Compression() int8 { return int8(h.Attributes & attrCompressionMask) }

// LastSequence returns the sequence number of the batch's last record,
// BaseSequence + LastOffsetDelta, wrapping past math.MaxInt32 to 0 as Kafka
// does. It returns -1 (no sequence) when BaseSequence is -1.
func (h BatchHeader) LastSequence() int32 {
	if h.BaseSequence == noSequence {
		return noSequence
	}
	inc := h.LastOffsetDelta
	if h.BaseSequence > math.MaxInt32-inc {
		return inc - (math.MaxInt32 - h.BaseSequence) - 1
	}
	return h.BaseSequence + inc
}

// ParseBatchHeader decodes the header at the start of b. It checks only
// what the header alone can show: b holds at least HeaderSize bytes, the
// magic byte is 2 and BatchLength is at least 49. It does not check the CRC
// or that b holds the whole batch; errors wrap ErrCorruptBatch.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < HeaderSize {
		return BatchHeader{}, fmt.Errorf("%w: short header: %d bytes, need %d", ErrCorruptBatch, len(b), HeaderSize)
	}
	h := decodeHeader(b)
	if reason := checkHeader(h); reason != "" {
		return h, fmt.Errorf("%w: %s", ErrCorruptBatch, reason)
	}
	return h, nil
}

// decodeHeader decodes the first HeaderSize bytes of b without checks.
func decodeHeader(b []byte) BatchHeader {
	_ = b[HeaderSize-1]
	be := binary.BigEndian
	return BatchHeader{
		BaseOffset:           int64(be.Uint64(b[0:])),
		BatchLength:          int32(be.Uint32(b[posBatchLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[posLeaderEpoch:])),
		Magic:                int8(b[posMagic]),
		CRC:                  be.Uint32(b[posCRC:]),
		Attributes:           int16(be.Uint16(b[posAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[posLastOffsetDelta:])),
		FirstTimestamp:       int64(be.Uint64(b[posFirstTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[posMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[posProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[posProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[posBaseSequence:])),
		NumRecords:           int32(be.Uint32(b[posNumRecords:])),
	}
}

// checkHeader returns why h cannot be the header of a v2 batch, or "".
func checkHeader(h BatchHeader) string {
	switch {
	case h.Magic != magicV2:
		return fmt.Sprintf("magic %d, want %d", h.Magic, magicV2)
	case h.BatchLength < minBatchLength:
		return fmt.Sprintf("batch length %d below minimum %d", h.BatchLength, minBatchLength)
	case h.BaseOffset < 0:
		return fmt.Sprintf("negative base offset %d", h.BaseOffset)
	case h.LastOffsetDelta < 0:
		return fmt.Sprintf("negative last offset delta %d", h.LastOffsetDelta)
	case h.BaseOffset > math.MaxInt64-int64(h.LastOffsetDelta)-1:
		return fmt.Sprintf("base offset %d + last offset delta %d overflows", h.BaseOffset, h.LastOffsetDelta)
	}
	return ""
}

// checkBatch returns why the whole batch b (exactly h.Size() bytes, with
// header h) is not valid, or "". It checks the header, the CRC, the record
// count and, for uncompressed batches, every record's framing.
func checkBatch(b []byte, h BatchHeader) string {
	if reason := checkFrame(b, h); reason != "" {
		return reason
	}
	_, reason := checkContents(b, h)
	return reason
}

// checkFrame returns why b, with header h, is not an intact v2 batch (a bad
// header or a CRC mismatch: Kafka's CorruptRecordException), or "".
func checkFrame(b []byte, h BatchHeader) string {
	if reason := checkHeader(h); reason != "" {
		return reason
	}
	if crc := crc32.Checksum(b[posAttributes:], castagnoli); crc != h.CRC {
		return fmt.Sprintf("crc mismatch: stored %#08x, computed %#08x", h.CRC, crc)
	}
	return ""
}

// checkContents returns why the intact batch b, with header h, does not hold
// what its header says (Kafka's InvalidRecordException), or "": the record
// count, the codec and, when uncompressed, every record's framing. For an
// uncompressed batch it also returns the largest timestamp delta of its
// records.
func checkContents(b []byte, h BatchHeader) (maxTSDelta int64, reason string) {
	if reason := checkCount(h); reason != "" {
		return 0, reason
	}
	codec := h.Compression()
	if codec > maxCompressionCodec {
		return 0, fmt.Sprintf("unknown compression codec %d", codec)
	}
	if codec == 0 {
		return checkRecords(b[HeaderSize:], h.NumRecords)
	}
	return 0, ""
}

// checkCount returns why h's record count and last offset delta disagree,
// or "".
func checkCount(h BatchHeader) string {
	if h.NumRecords < 1 {
		return fmt.Sprintf("record count %d, want at least 1", h.NumRecords)
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return fmt.Sprintf("last offset delta %d with %d records", h.LastOffsetDelta, h.NumRecords)
	}
	return ""
}

// checkRecords walks n uncompressed records in b and returns why they are
// malformed, or "", and the largest timestamp delta among them.
func checkRecords(b []byte, n int32) (maxTSDelta int64, reason string) {
	pos := 0
	maxTSDelta = math.MinInt64
	for i := range n {
		length, k := binary.Varint(b[pos:])
		if k <= 0 || length < 0 || length > int64(len(b)-pos-k) {
			return 0, fmt.Sprintf("record %d at batch byte %d: bad length", i, HeaderSize+pos)
		}
		start := pos + k
		d := recordDecoder{b: b[start : start+int(length)], end: int(length), ok: true}
		if reason := d.record(i); reason != "" {
			return 0, fmt.Sprintf("record %d at batch byte %d: %s", i, HeaderSize+pos, reason)
		}
		maxTSDelta = max(maxTSDelta, d.tsDelta)
		pos = start + int(length)
	}
	if pos != len(b) {
		return 0, fmt.Sprintf("%d bytes after the last of %d records", len(b)-pos, n)
	}
	return maxTSDelta, ""
}

// record checks the fields of record i, which ends d.end bytes from where d
// starts, and keeps its timestamp delta in d.tsDelta.
func (d *recordDecoder) record(i int32) string {
	d.fixed(1) // attributes
	d.tsDelta = d.varint()
	if od := d.varint(); d.ok && od != int64(i) {
		return fmt.Sprintf("offset delta %d, want %d", od, i)
	}
	d.bytes(true) // key
	d.bytes(true) // value
	headers := d.varint()
	if d.ok && headers < 0 {
		return fmt.Sprintf("negative header count %d", headers)
	}
	for j := int64(0); d.ok && j < headers; j++ {
		d.bytes(false) // header key
		d.bytes(true)  // header value
	}
	switch {
	case !d.ok:
		return "truncated or malformed field"
	case d.pos != d.end:
		return fmt.Sprintf("%d bytes after the record's last field", d.end-d.pos)
	}
	return ""
}

// recordDecoder reads the fields of one record of end bytes, from b or, when
// src is set, from src (a decompressed stream, read no further than the
// record's end). ok turns false at the first failure and every later read
// is then a no-op.
type recordDecoder struct {
	b       []byte
	src     *bufio.Reader
	pos     int
	end     int
	ok      bool
	tsDelta int64 // the record's timestamp delta, once read
}

// fixed skips n bytes.
func (d *recordDecoder) fixed(n int) {
	if !d.ok {
		return
	}
	if d.end-d.pos < n {
		d.ok = false
		return
	}
	if d.src != nil {
		if _, err := d.src.Discard(n); err != nil {
			d.ok = false
			return
		}
	}
	d.pos += n
}

func (d *recordDecoder) varint() int64 {
	if !d.ok {
		return 0
	}
	var p []byte
	if d.src != nil {
		p, _ = d.src.Peek(min(binary.MaxVarintLen64, d.end-d.pos)) // short at the end of the stream
	} else {
		p = d.b[d.pos:d.end]
	}
	v, k := binary.Varint(p)
	if k <= 0 {
		d.ok = false
		return 0
	}
	if d.src != nil {
		_, _ = d.src.Discard(k) // Peek returned these k bytes
	}
	d.pos += k
	return v
}

// bytes skips a varint-length-prefixed field; nullable allows length -1.
func (d *recordDecoder) bytes(nullable bool) {
	n := d.varint()
	if !d.ok {
		return
	}
	if n == -1 && nullable {
		return
	}
	if n < 0 || n > int64(d.end-d.pos) {
		d.ok = false
		return
	}
	d.fixed(int(n))
}

// ValidateBatches checks bytes as found in a Produce request's Records
// field: one or more complete v2 batches back to back, each with magic 2, a
// correct CRC-32C over attributes..end, a sane BatchLength, NumRecords >= 1
// and LastOffsetDelta == NumRecords-1, well-formed records when
// uncompressed, no trailing partial batch, and each batch at most
// maxBatchBytes long (<= 0: no limit). It returns the batches' headers.
//
// Errors are *BatchError values wrapping ErrCorruptBatch or
// ErrBatchTooLarge, naming the batch and its byte position:
//
//	log: batch 2 at byte 4096: crc mismatch: stored 0x1c2d3e4f, computed 0x0a0b0c0d
func ValidateBatches(b []byte, maxBatchBytes int) ([]BatchHeader, error) {
	if len(b) == 0 {
		return nil, &BatchError{Reason: "no record batches", Err: ErrCorruptBatch}
	}
	var hs []BatchHeader
	for i, pos := 0, 0; pos < len(b); i++ {
		h, err := nextBatch(b, pos, i, maxBatchBytes)
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
		pos += h.Size()
	}
	return hs, nil
}

// nextBatch validates the batch starting at b[pos:], the i-th in b.
func nextBatch(b []byte, pos, i, maxBatchBytes int) (BatchHeader, error) {
	h, err := nextHeader(b, pos, i, maxBatchBytes)
	if err != nil {
		return BatchHeader{}, err
	}
	if reason := checkBatch(b[pos:pos+h.Size()], h); reason != "" {
		return BatchHeader{}, &BatchError{Index: i, Pos: int64(pos), Reason: reason, Err: ErrCorruptBatch}
	}
	return h, nil
}

// nextHeader decodes the header of the batch starting at b[pos:], the i-th
// in b, and checks that the whole batch is there, within maxBatchBytes;
// neither the rest of the header nor the CRC is checked.
func nextHeader(b []byte, pos, i, maxBatchBytes int) (BatchHeader, error) {
	fail := func(err error, format string, args ...any) (BatchHeader, error) {
		return BatchHeader{}, &BatchError{Index: i, Pos: int64(pos), Reason: fmt.Sprintf(format, args...), Err: err}
	}
	rest := b[pos:]
	if len(rest) < HeaderSize {
		return fail(ErrCorruptBatch, "partial batch: %d bytes, header needs %d", len(rest), HeaderSize)
	}
	h := decodeHeader(rest)
	if h.BatchLength < minBatchLength {
		return fail(ErrCorruptBatch, "batch length %d below minimum %d", h.BatchLength, minBatchLength)
	}
	size := h.Size()
	if maxBatchBytes > 0 && size > maxBatchBytes {
		return fail(ErrBatchTooLarge, "%d bytes, limit %d", size, maxBatchBytes)
	}
	if size > len(rest) {
		return fail(ErrCorruptBatch, "partial batch: %d of %d bytes", len(rest), size)
	}
	return h, nil
}
