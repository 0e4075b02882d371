package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceSeeds are inputs FuzzProduceValidator starts from (testdata/fuzz
// holds more): batches of every codec, and damaged ones.
func produceSeeds() [][]byte {
	var seeds [][]byte
	for codec := range int8(5) {
		b := buildBatch(spec{records: 3, valueSize: 40, codec: codec})
		seeds = append(seeds, b)
		torn := bytes.Clone(b)
		torn[len(torn)-3] ^= 0x40
		fixCRC(torn)
		seeds = append(seeds, torn)
	}
	return append(seeds, nil, concat(seeds[0], seeds[0]), buildBatch(spec{producerID: 3, baseSeq: -1}))
}

// FuzzProduceValidator checks that Validate classifies any input with one of
// its four errors, never panics, and accepts only what the rest of the log
// accepts: one whole batch, starting at offset 0, whose header re-parses.
func FuzzProduceValidator(f *testing.F) {
	for _, s := range produceSeeds() {
		f.Add(s, 0)
	}
	v := NewProduceValidator(nil)
	f.Fuzz(func(t *testing.T, data []byte, maxBatchBytes int) {
		h, err := v.validate(data, maxBatchBytes, 1<<20)
		if err != nil {
			var be *BatchError
			if !errors.As(err, &be) || !(errors.Is(err, ErrCorruptBatch) || errors.Is(err, ErrBatchTooLarge) || errors.Is(err, ErrInvalidRecord) || errors.Is(err, ErrInvalidTimestamp)) {
				t.Fatalf("error %v is not a *BatchError wrapping a sentinel", err)
			}
			return
		}
		if h.Size() != len(data) || h.BaseOffset != 0 || h.IsControl() || (h.ProducerID >= 0 && h.BaseSequence < 0) {
			t.Fatalf("accepted %+v for %d bytes", h, len(data))
		}
		if hs, err := ValidateBatches(data, maxBatchBytes); err != nil || len(hs) != 1 || hs[0] != h {
			t.Fatalf("Validate accepted %+v, ValidateBatches says %v, %v", h, hs, err)
		}
	})
}

// FuzzCompressedRecordsAsUncompressed compresses arbitrary record bytes with
// each codec: the stream reader must accept exactly what the slice reader
// accepts for the same bytes uncompressed.
func FuzzCompressedRecordsAsUncompressed(f *testing.F) {
	good := buildBatch(spec{records: 3, valueSize: 10, recHook: func(i int, r *kmsg.Record) {
		if i == 1 {
			r.Headers = []kmsg.Header{{Key: "h", Value: []byte("v")}}
			r.Length = 0
			r.Length = int32(len(r.AppendTo(nil)) - 1)
		}
	}})
	f.Add(good[HeaderSize:], int32(3), uint8(4))
	f.Add(good[HeaderSize:], int32(2), uint8(1))
	f.Add(good[HeaderSize:len(good)-4], int32(3), uint8(3))
	f.Add([]byte{0x02, 0x00}, int32(1), uint8(2))
	v := NewProduceValidator(nil)
	f.Fuzz(func(t *testing.T, records []byte, n int32, codec uint8) {
		n = max(1, n%64)
		codec = 1 + codec%4
		plain := buildBatch(spec{records: 1})
		binary.BigEndian.PutUint32(plain[posNumRecords:], uint32(n))
		binary.BigEndian.PutUint32(plain[posLastOffsetDelta:], uint32(n-1))
		plain = withBody(plain, records)
		zipped := withBody(plain, compress(int8(codec), records))
		binary.BigEndian.PutUint16(zipped[posAttributes:], uint16(codec))
		fixCRC(zipped)
		_, errPlain := v.validate(plain, 0, 1<<20)
		_, errZipped := v.validate(zipped, 0, 1<<20)
		if (errPlain == nil) != (errZipped == nil) {
			t.Fatalf("codec %d, %d records: uncompressed %v, compressed %v", codec, n, errPlain, errZipped)
		}
	})
}
