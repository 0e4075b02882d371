package log

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Limits on what a compressed batch may cost to check.
const (
	// minDecompressedLimit is the least a batch may decompress to, whatever
	// max.message.bytes is.
	minDecompressedLimit = 64 << 20
	// decompressedPerBatchByte is how many times max.message.bytes a batch
	// may decompress to when that is more than minDecompressedLimit.
	decompressedPerBatchByte = 16
	// maxZstdWindow bounds the history a zstd frame may ask the decoder to
	// keep (zstd level 19 uses 8 MiB; the format allows up to 2 GiB).
	maxZstdWindow = 32 << 20
	// streamBufferSize is the read-ahead over a decompressed stream.
	streamBufferSize = 32 << 10
)

// TimestampAfterMax is how far ahead of the broker's clock a record's
// timestamp may be: Kafka 4.x's default message.timestamp.after.max.ms
// (KIP-1030), with message.timestamp.type=CreateTime, the only type this
// broker has. Kafka's message.timestamp.before.max.ms defaults to no bound,
// and so does this broker.
const TimestampAfterMax = time.Hour

// DecompressedLimit returns how many bytes the records of one batch may
// decompress to before ProduceValidator.Validate refuses the batch as too
// large: the larger of 64 MiB and 16 times maxBatchBytes (max.message.bytes).
// Kafka sets no such bound; it is the broker's defence against a
// decompression bomb, far above what a producer's batch.size gives.
func DecompressedLimit(maxBatchBytes int) int64 {
	return max(minDecompressedLimit, decompressedPerBatchByte*int64(maxBatchBytes))
}

// ProduceValidator checks the records of one partition in a Produce request
// as Kafka's leader does before appending them (ProduceRequest.validateRecords,
// UnifiedLog.analyzeAndValidateRecords and LogValidator with a client
// origin). It decompresses gzip, snappy (raw or xerial-framed), lz4 and zstd
// batches as a stream: checking a gzip, lz4, zstd or xerial-framed batch
// holds one window of its decompressed bytes, whatever it decompresses to
// (a raw snappy block is decoded whole, within DecompressedLimit). It pools
// its decoders and is safe for concurrent use; use NewProduceValidator.
type ProduceValidator struct {
	now                              func() time.Time
	gzip, lz4, zstd, snappy, streams sync.Pool
}

// Pooled decoders, each with the reader of the compressed bytes it was
// last given, so that it can be cleared before it goes back to its pool.
type (
	gzipDecoder struct {
		src   bytes.Reader
		inner gzip.Reader
	}
	lz4Decoder struct {
		src   bytes.Reader
		inner *lz4.Reader
	}
	snappyDecoder struct {
		xerial xerialReader
		raw    bytes.Reader
		buf    []byte // a raw block's decoded bytes
	}
	zstdDecoder struct {
		src   bytes.Reader
		inner *zstd.Decoder
		err   error // from zstd.NewReader: only for invalid options
	}
)

// NewProduceValidator returns a ProduceValidator with empty pools that
// reads the time (for record timestamps) from now, or time.Now if nil.
func NewProduceValidator(now func() time.Time) *ProduceValidator {
	if now == nil {
		now = time.Now
	}
	v := &ProduceValidator{now: now}
	v.gzip.New = func() any { return new(gzipDecoder) }
	v.lz4.New = func() any { return &lz4Decoder{inner: lz4.NewReader(nil)} }
	v.zstd.New = func() any {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1), // decode on the caller's goroutine
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		z := &zstdDecoder{inner: d, err: err}
		if err == nil {
			runtime.SetFinalizer(z, func(z *zstdDecoder) { z.inner.Close() })
		}
		return z
	}
	v.snappy.New = func() any { return new(snappyDecoder) }
	v.streams.New = func() any { return bufio.NewReaderSize(nil, streamBufferSize) }
	return v
}

// Validate checks b, the Records of one partition in a Produce request, and
// returns the header of its one batch. In Kafka's order, and with its error
// codes:
//
//   - b must be exactly one intact v2 batch: a short, torn or over-long
//     first batch, a bad magic byte or CRC is ErrCorruptBatch
//     (CORRUPT_MESSAGE); a batch larger than maxBatchBytes (<= 0: no limit)
//     is ErrBatchTooLarge (MESSAGE_TOO_LARGE); a second batch after the
//     first is ErrInvalidRecord (INVALID_RECORD: Kafka's "more than one
//     batch", whatever the producer), and fewer bytes than a batch after
//     the first are ErrCorruptBatch.
//   - a base offset other than 0, a record count below 1 or other than
//     LastOffsetDelta+1, a control batch, or a producer id >= 0 with a base
//     sequence < 0 is ErrInvalidRecord.
//   - every record is read, decompressing the batch if needed: malformed
//     framing, offset deltas other than 0, 1, 2..., more or fewer records
//     than the header counts, or compressed data that does not decompress
//     is ErrInvalidRecord; records that decompress to more than
//     DecompressedLimit(maxBatchBytes) are ErrBatchTooLarge.
//   - a record timestamp more than TimestampAfterMax ahead of now is
//     ErrInvalidTimestamp (INVALID_TIMESTAMP).
//
// Errors are *BatchError values naming the batch and its position.
func (v *ProduceValidator) Validate(b []byte, maxBatchBytes int) (BatchHeader, error) {
	return v.validate(b, maxBatchBytes, DecompressedLimit(maxBatchBytes))
}

func (v *ProduceValidator) validate(b []byte, maxBatchBytes int, limit int64) (BatchHeader, error) {
	fail := func(err error, format string, args ...any) (BatchHeader, error) {
		return BatchHeader{}, &BatchError{Reason: fmt.Sprintf(format, args...), Err: err}
	}
	if len(b) == 0 {
		return fail(ErrInvalidRecord, "no record batch")
	}
	h, err := nextHeader(b, 0, 0, maxBatchBytes)
	if err != nil {
		return BatchHeader{}, err
	}
	if reason := checkFrame(b[:h.Size()], h); reason != "" {
		return fail(ErrCorruptBatch, "%s", reason)
	}
	if rest := b[h.Size():]; len(rest) > 0 {
		if len(rest) >= lengthPrefix && int64(binary.BigEndian.Uint32(rest[posBatchLength:])) <= int64(len(rest)-lengthPrefix) {
			return fail(ErrInvalidRecord, "more than one record batch (%d bytes after the first); a producer sends exactly one per partition", len(rest))
		}
		return fail(ErrCorruptBatch, "%d bytes after the batch are not a whole batch", len(rest))
	}
	switch {
	case h.BaseOffset != 0:
		return fail(ErrInvalidRecord, "base offset %d, a producer's batch starts at 0", h.BaseOffset)
	case h.IsControl():
		return fail(ErrInvalidRecord, "clients may not write control batches")
	case h.ProducerID >= 0 && h.BaseSequence < 0:
		return fail(ErrInvalidRecord, "producer id %d with base sequence %d", h.ProducerID, h.BaseSequence)
	}
	maxTSDelta, reason := checkContents(b, h)
	if reason != "" {
		return fail(ErrInvalidRecord, "%s", reason)
	}
	if h.Compression() != 0 {
		var err error
		if maxTSDelta, reason, err = v.checkCompressed(b[HeaderSize:], h, limit); err != nil {
			return fail(err, "%s", reason)
		}
	}
	// As Kafka, each record's own timestamp (a timestamp of -1, "none", is
	// never ahead).
	ts := h.FirstTimestamp + maxTSDelta
	if maxTSDelta > 0 && h.FirstTimestamp > math.MaxInt64-maxTSDelta {
		ts = math.MaxInt64
	}
	if bound := v.now().Add(TimestampAfterMax).UnixMilli(); ts > bound {
		return fail(ErrInvalidTimestamp, "record timestamp %d is more than %v ahead of the broker's clock (message.timestamp.after.max.ms)", ts, TimestampAfterMax)
	}
	return h, nil
}

// errDecompressLimit is returned for a snappy block that says it decodes to
// more than the limit.
var errDecompressLimit = errors.New("decompressed size limit reached")

// limitedReader reads from r at most n bytes; it remembers the first error
// r returned other than io.EOF.
type limitedReader struct {
	r   io.Reader
	n   int64
	err error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	if err != nil && err != io.EOF && l.err == nil {
		l.err = err
	}
	return k, err
}

// checkCompressed reads the h.NumRecords records of the compressed batch
// body through its codec. It returns their largest timestamp delta, or the
// reason and ErrInvalidRecord or ErrBatchTooLarge.
func (v *ProduceValidator) checkCompressed(body []byte, h BatchHeader, limit int64) (int64, string, error) {
	codec := h.Compression()
	tooLarge := fmt.Sprintf("codec %d: records decompress to more than %d bytes", codec, limit)
	src, done, err := v.decoder(codec, body, limit)
	if err != nil {
		if errors.Is(err, errDecompressLimit) {
			return 0, tooLarge, ErrBatchTooLarge
		}
		return 0, fmt.Sprintf("codec %d: %v", codec, err), ErrInvalidRecord
	}
	defer done()
	// One byte past the limit tells a stream that ends at the limit from
	// one that goes on.
	lr := &limitedReader{r: src, n: limit + 1}
	br := v.streams.Get().(*bufio.Reader)
	br.Reset(lr)
	defer func() { br.Reset(nil); v.streams.Put(br) }()
	maxTSDelta, reason := checkStream(br, h.NumRecords)
	switch {
	case lr.n <= 0:
		return 0, tooLarge, ErrBatchTooLarge
	case lr.err != nil:
		return 0, fmt.Sprintf("codec %d: decompress: %v", codec, lr.err), ErrInvalidRecord
	case reason != "":
		return 0, fmt.Sprintf("codec %d: %s", codec, reason), ErrInvalidRecord
	}
	return maxTSDelta, "", nil
}

// checkStream reads n records from br, which must end right after them, and
// returns their largest timestamp delta.
func checkStream(br *bufio.Reader, n int32) (maxTSDelta int64, reason string) {
	maxTSDelta = math.MinInt64
	for i := range n {
		length, err := binary.ReadVarint(br)
		if err != nil || length < 0 || length > math.MaxInt32 {
			return 0, fmt.Sprintf("record %d: bad length", i)
		}
		d := recordDecoder{src: br, end: int(length), ok: true}
		if reason := d.record(i); reason != "" {
			return 0, fmt.Sprintf("record %d: %s", i, reason)
		}
		maxTSDelta = max(maxTSDelta, d.tsDelta)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return 0, fmt.Sprintf("data after the last of %d records", n)
	}
	return maxTSDelta, ""
}

// decoder returns a reader of body's decompressed bytes for codec, and a
// func that returns the pooled decoder.
func (v *ProduceValidator) decoder(codec int8, body []byte, limit int64) (io.Reader, func(), error) {
	switch codec {
	case 1: // gzip
		d := v.gzip.Get().(*gzipDecoder)
		done := func() { d.src.Reset(nil); v.gzip.Put(d) }
		d.src.Reset(body)
		if err := d.inner.Reset(&d.src); err != nil {
			done()
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return &d.inner, done, nil
	case 2: // snappy
		d := v.snappy.Get().(*snappyDecoder)
		r, err := d.reset(body, limit)
		done := func() { d.reset(nil, 0); v.snappy.Put(d) }
		if err != nil {
			done()
			return nil, nil, err
		}
		return r, done, nil
	case 3: // lz4
		d := v.lz4.Get().(*lz4Decoder)
		d.src.Reset(body)
		d.inner.Reset(&d.src)
		return d.inner, func() { d.src.Reset(nil); v.lz4.Put(d) }, nil
	case 4: // zstd
		d := v.zstd.Get().(*zstdDecoder)
		if d.err != nil {
			return nil, nil, fmt.Errorf("zstd decoder: %w", d.err)
		}
		done := func() { d.src.Reset(nil); v.zstd.Put(d) }
		d.src.Reset(body)
		if err := d.inner.Reset(&d.src); err != nil {
			done()
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return d.inner, done, nil
	}
	return nil, nil, fmt.Errorf("unknown compression codec %d", codec)
}

// xerialMagic starts snappy data framed as Java's xerial SnappyOutputStream
// writes it: the magic, a version and a compatible version (4 bytes each),
// then blocks, each a big-endian int32 length and a raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16

// reset makes d read body, xerial-framed or one raw snappy block (as
// librdkafka and Sarama send it), and returns the reader. A block that says
// it decodes to more than limit bytes is refused before anything is
// allocated for it. reset(nil, 0) drops body.
func (d *snappyDecoder) reset(body []byte, limit int64) (io.Reader, error) {
	d.raw.Reset(nil)
	d.xerial = xerialReader{buf: d.xerial.buf[:0], limit: limit}
	if len(body) >= xerialHeaderSize && bytes.HasPrefix(body, xerialMagic) {
		d.xerial.src = body[xerialHeaderSize:]
		return &d.xerial, nil
	}
	if body == nil {
		return nil, nil
	}
	out, err := decodeSnappyBlock(d.buf, body, limit)
	if err != nil {
		return nil, err
	}
	d.buf = out
	d.raw.Reset(out)
	return &d.raw, nil
}

// maxSnappyRatio bounds what a snappy block can decode to per byte: its
// densest element is a 3-byte copy of 64 bytes (S2's denser extensions are
// not snappy, and Kafka's Java clients cannot read them).
const maxSnappyRatio = 22

// decodeSnappyBlock decodes one raw snappy block into buf's storage.
func decodeSnappyBlock(buf, block []byte, limit int64) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if int64(n) > limit {
		return nil, errDecompressLimit
	}
	// The decoded length is the block's own claim, and the output is
	// allocated before decoding: a claim no snappy block of this size can
	// back is refused before it costs memory.
	if int64(n) > int64(len(block))*maxSnappyRatio {
		return nil, fmt.Errorf("snappy: a %d-byte block cannot decode to the %d bytes it claims", len(block), n)
	}
	out, err := s2.Decode(slices.Grow(buf[:0], n)[:n], block)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	return out, nil
}

// xerialReader reads the decoded blocks of xerial-framed snappy data one
// block at a time.
type xerialReader struct {
	src   []byte // blocks not yet decoded
	buf   []byte // storage for the current block
	out   []byte // what is left of the current block
	limit int64
}

func (x *xerialReader) Read(p []byte) (int, error) {
	for len(x.out) == 0 {
		if len(x.src) == 0 {
			return 0, io.EOF
		}
		if len(x.src) < 4 {
			return 0, errors.New("snappy: torn xerial block length")
		}
		n := int64(binary.BigEndian.Uint32(x.src))
		if n > int64(len(x.src)-4) {
			return 0, fmt.Errorf("snappy: xerial block of %d bytes with %d left", n, len(x.src)-4)
		}
		block := x.src[4 : 4+n]
		x.src = x.src[4+n:]
		out, err := decodeSnappyBlock(x.buf, block, x.limit)
		if err != nil {
			return 0, err
		}
		x.buf, x.out = out, out
	}
	k := copy(p, x.out)
	x.out = x.out[k:]
	return k, nil
}
