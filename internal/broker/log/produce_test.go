package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// codecs are the compression codecs, by attribute value.
var codecs = map[int8]string{0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

// compress compresses data as codec; snappy is framed as Java's xerial
// stream writes it, in 32 KiB blocks.
func compress(codec int8, data []byte) []byte {
	var buf bytes.Buffer
	switch codec {
	case 1:
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(data)
		_ = w.Close()
	case 2:
		buf.Write(xerialMagic)
		buf.Write([]byte{0, 0, 0, 1, 0, 0, 0, 1})
		for len(data) > 0 {
			n := min(len(data), 32<<10)
			block := s2.EncodeSnappy(nil, data[:n])
			buf.Write(binary.BigEndian.AppendUint32(nil, uint32(len(block))))
			buf.Write(block)
			data = data[n:]
		}
	case 3:
		w := lz4.NewWriter(&buf)
		_, _ = w.Write(data)
		_ = w.Close()
	case 4:
		w, _ := zstd.NewWriter(&buf)
		_, _ = w.Write(data)
		_ = w.Close()
	default:
		panic(fmt.Sprintf("codec %d", codec))
	}
	return buf.Bytes()
}

// withBody replaces the records of the single batch b with body (as
// compressed bytes, say) and fixes its length and CRC.
func withBody(b, body []byte) []byte {
	out := append(append([]byte{}, b[:HeaderSize]...), body...)
	binary.BigEndian.PutUint32(out[posBatchLength:], uint32(len(out)-lengthPrefix))
	fixCRC(out)
	return out
}

func TestProduceValidatorAcceptsOneBatchOfEachCodec(t *testing.T) {
	v := NewProduceValidator(nil)
	for codec, name := range codecs {
		for _, valueSize := range []int{10, 100 << 10} { // the second is longer than the stream buffer
			b := buildBatch(spec{records: 5, valueSize: valueSize, codec: codec})
			h, err := v.Validate(b, 0)
			if err != nil {
				t.Errorf("%s, %d-byte values: %v", name, valueSize, err)
				continue
			}
			if h.NumRecords != 5 || h.Compression() != codec {
				t.Errorf("%s: header %+v", name, h)
			}
		}
	}
	// A raw snappy block, as librdkafka and Sarama send it.
	recs := buildBatch(spec{records: 3, valueSize: 50})
	raw := withBody(recs, s2.EncodeSnappy(nil, recs[HeaderSize:]))
	binary.BigEndian.PutUint16(raw[posAttributes:], 2)
	fixCRC(raw)
	if _, err := v.Validate(raw, 0); err != nil {
		t.Errorf("raw snappy: %v", err)
	}
}

func TestProduceValidatorRefusesWhatKafkaRefusesWithItsCode(t *testing.T) {
	one := buildBatch(spec{records: 2})
	idem := buildBatch(spec{records: 2, producerID: 7, baseSeq: 0})
	tests := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrInvalidRecord, "no record batch"},
		{"two batches", concat(one, one), ErrInvalidRecord, "more than one record batch"},
		{"new and retried idempotent batch", concat(buildBatch(spec{producerID: 7, baseSeq: 2}), idem), ErrInvalidRecord, "more than one record batch"},
		{"partial second batch", concat(one, one[:30]), ErrCorruptBatch, "not a whole batch"},
		{"bad crc", func() []byte { b := concat(one); b[len(b)-1] ^= 1; return b }(), ErrCorruptBatch, "crc mismatch"},
		{"base offset", buildBatch(spec{base: 5}), ErrInvalidRecord, "base offset 5"},
		{"control batch", buildBatch(spec{attrs: attrControl}), ErrInvalidRecord, "control"},
		{"producer id without sequence", buildBatch(spec{producerID: 7, baseSeq: -1}), ErrInvalidRecord, "base sequence -1"},
		{"count and deltas disagree", func() []byte {
			b := buildBatch(spec{records: 3})
			binary.BigEndian.PutUint32(b[posNumRecords:], 2)
			fixCRC(b)
			return b
		}(), ErrInvalidRecord, "last offset delta 2 with 2 records"},
		{"unknown codec", buildBatch(spec{attrs: 5}), ErrInvalidRecord, "codec 5"},
	}
	for codec, name := range codecs {
		if codec == 0 {
			continue
		}
		tests = append(tests,
			struct {
				name string
				in   []byte
				want error
				msg  string
			}{name + " fewer records than counted", func() []byte {
				b := buildBatch(spec{records: 3, codec: codec})
				binary.BigEndian.PutUint32(b[posNumRecords:], 4)
				binary.BigEndian.PutUint32(b[posLastOffsetDelta:], 3)
				fixCRC(b)
				return b
			}(), ErrInvalidRecord, "record 3: bad length"},
			struct {
				name string
				in   []byte
				want error
				msg  string
			}{name + " bytes after the records", buildBatch(spec{records: 2, codec: codec, tail: []byte{0}}), ErrInvalidRecord, "data after the last of 2 records"},
			struct {
				name string
				in   []byte
				want error
				msg  string
			}{name + " offset delta out of order", buildBatch(spec{records: 2, codec: codec, recHook: func(i int, r *kmsg.Record) { r.OffsetDelta = int32(1 - i) }}), ErrInvalidRecord, "offset delta 1, want 0"},
			struct {
				name string
				in   []byte
				want error
				msg  string
			}{name + " record longer than its fields", buildBatch(spec{records: 1, codec: codec, recHook: func(_ int, r *kmsg.Record) { r.Length += 3 }}), ErrInvalidRecord, "codec"},
			struct {
				name string
				in   []byte
				want error
				msg  string
			}{name + " garbage", func() []byte {
				b := buildBatch(spec{records: 2, valueSize: 200, codec: codec})
				body := append([]byte{}, b[HeaderSize:]...)
				for i := len(body) / 3; i < len(body); i++ {
					body[i] ^= 0x5a
				}
				return withBody(b, body)
			}(), ErrInvalidRecord, "codec"},
		)
	}
	v := NewProduceValidator(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Validate(tt.in, 0)
			var be *BatchError
			if !errors.Is(err, tt.want) || !errors.As(err, &be) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want a *BatchError wrapping %v saying %q", err, tt.want, tt.msg)
			}
		})
	}
}

// A raw snappy block states its decoded length up front; one claiming far
// more than snappy can encode in its size is refused before the claimed
// size is allocated, and the densest real block is accepted.
func TestProduceValidatorRefusesASnappyBlockClaimingMoreThanItCanHold(t *testing.T) {
	v := NewProduceValidator(nil)
	batch := buildBatch(spec{records: 1})
	claim := binary.AppendUvarint(nil, 60<<20) // 60 MiB from a 10-byte block
	lie := withBody(batch, append(claim, 0, 0, 0, 0, 0, 0))
	binary.BigEndian.PutUint16(lie[posAttributes:], 2)
	fixCRC(lie)
	if _, err := v.Validate(lie, 0); !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), "cannot decode") {
		t.Fatalf("raw snappy block claiming 60 MiB: %v, want ErrInvalidRecord", err)
	}
	zeros := buildBatch(spec{records: 1, recHook: func(_ int, r *kmsg.Record) {
		r.Value = make([]byte, 1<<20)
		r.Length = 0
		r.Length = int32(len(r.AppendTo(nil)) - 1)
	}})
	dense := withBody(zeros, s2.EncodeSnappy(nil, zeros[HeaderSize:]))
	binary.BigEndian.PutUint16(dense[posAttributes:], 2)
	fixCRC(dense)
	if _, err := v.Validate(dense, 0); err != nil {
		t.Fatalf("1 MiB of zeros as one raw snappy block (%d bytes): %v", len(dense), err)
	}
}

// A batch whose records decompress past the limit is refused as too large
// after reading just past the limit, however far it would decompress.
func TestProduceValidatorRefusesADecompressionBomb(t *testing.T) {
	const limit = 1 << 20
	v := NewProduceValidator(nil)
	for codec, name := range codecs {
		if codec == 0 {
			continue
		}
		// One record with a 4 MiB value of zeros: a few KiB compressed.
		b := buildBatch(spec{records: 1, codec: codec, recHook: func(_ int, r *kmsg.Record) {
			r.Value = make([]byte, 4<<20)
			r.Length = 0
			r.Length = int32(len(r.AppendTo(nil)) - 1)
		}})
		if codec != 2 && len(b) > limit/8 { // snappy compresses at most ~20:1
			t.Fatalf("%s: bomb is %d bytes", name, len(b))
		}
		if _, err := v.validate(b, 0, limit); !errors.Is(err, ErrBatchTooLarge) {
			t.Errorf("%s: %d-byte batch of 4 MiB with a 1 MiB limit: %v, want ErrBatchTooLarge", name, len(b), err)
		}
		if _, err := v.validate(b, 0, 8<<20); err != nil {
			t.Errorf("%s: the same batch with an 8 MiB limit: %v", name, err)
		}
	}
}

// As Kafka 4.x by default: the last record may be stamped up to an hour
// ahead of the broker's clock, not a millisecond more; old timestamps and
// "no timestamp" (-1) are kept.
func TestProduceValidatorRefusesATimestampMoreThanAnHourAhead(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	v := NewProduceValidator(func() time.Time { return now })
	limit := now.Add(TimestampAfterMax).UnixMilli()
	for codec, name := range codecs {
		// Record i is stamped ts+i: the third record decides.
		if _, err := v.Validate(buildBatch(spec{records: 3, ts: limit - 2, codec: codec}), 0); err != nil {
			t.Errorf("%s: last record exactly an hour ahead: %v", name, err)
		}
		if _, err := v.Validate(buildBatch(spec{records: 3, ts: limit - 1, codec: codec}), 0); !errors.Is(err, ErrInvalidTimestamp) {
			t.Errorf("%s: last record an hour and 1 ms ahead: %v, want ErrInvalidTimestamp", name, err)
		}
		for _, ts := range []int64{-1, 0, 1, now.Add(-365 * 24 * time.Hour).UnixMilli()} {
			if _, err := v.Validate(buildBatch(spec{records: 1, ts: ts, codec: codec}), 0); err != nil {
				t.Errorf("%s: timestamp %d: %v", name, ts, err)
			}
		}
	}
}

func TestDecompressedLimitIsAtLeast64MiBAnd16TimesTheBatchLimit(t *testing.T) {
	for _, tt := range []struct {
		max  int
		want int64
	}{{0, 64 << 20}, {1 << 20, 64 << 20}, {8 << 20, 128 << 20}} {
		if got := DecompressedLimit(tt.max); got != tt.want {
			t.Errorf("DecompressedLimit(%d) = %d, want %d", tt.max, got, tt.want)
		}
	}
}
