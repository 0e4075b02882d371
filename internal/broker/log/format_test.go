package log

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestParseBatchHeaderDecodesEveryField(t *testing.T) {
	b := buildBatch(spec{base: 42, epoch: 7, records: 3, valueSize: 10, ts: 1000, attrs: attrTransactional, producerID: 99, baseSeq: 5})
	h, err := ParseBatchHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	want := BatchHeader{
		BaseOffset: rb.FirstOffset, BatchLength: rb.Length, PartitionLeaderEpoch: rb.PartitionLeaderEpoch,
		Magic: rb.Magic, CRC: uint32(rb.CRC), Attributes: rb.Attributes, LastOffsetDelta: rb.LastOffsetDelta,
		FirstTimestamp: rb.FirstTimestamp, MaxTimestamp: rb.MaxTimestamp, ProducerID: rb.ProducerID,
		ProducerEpoch: rb.ProducerEpoch, BaseSequence: rb.FirstSequence, NumRecords: rb.NumRecords,
	}
	if h != want {
		t.Fatalf("got %+v\nwant %+v", h, want)
	}
	if h.Size() != len(b) || h.LastOffset() != 44 || h.NextOffset() != 45 || !h.IsTransactional() || h.IsControl() {
		t.Fatalf("derived values wrong: size %d (len %d) last %d", h.Size(), len(b), h.LastOffset())
	}
}

func TestParseBatchHeaderRejectsShortOrWrongMagic(t *testing.T) {
	b := buildBatch(spec{})
	if _, err := ParseBatchHeader(b[:HeaderSize-1]); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("short header: got %v", err)
	}
	b[posMagic] = 1
	if _, err := ParseBatchHeader(b); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("magic 1: got %v", err)
	}
}

func TestLastSequenceWrapsAsKafka(t *testing.T) {
	tests := []struct {
		base, delta, want int32
	}{
		{base: 0, delta: 0, want: 0},
		{base: 10, delta: 4, want: 14},
		{base: -1, delta: 4, want: -1}, // no sequence
		{base: math.MaxInt32, delta: 0, want: math.MaxInt32},
		{base: math.MaxInt32, delta: 1, want: 0},
		{base: math.MaxInt32 - 1, delta: 3, want: 1},
	}
	for _, tt := range tests {
		h := BatchHeader{BaseSequence: tt.base, LastOffsetDelta: tt.delta}
		if got := h.LastSequence(); got != tt.want {
			t.Errorf("LastSequence(base %d, delta %d) = %d, want %d", tt.base, tt.delta, got, tt.want)
		}
	}
}

func TestValidateBatchesAcceptsBatchesBackToBack(t *testing.T) {
	b1 := buildBatch(spec{records: 3, valueSize: 100})
	b2 := buildBatch(spec{records: 1})
	b3 := buildBatch(spec{records: 2, attrs: 1, tail: []byte("not really gzip")}) // compressed: records opaque
	hs, err := ValidateBatches(concat(b1, b2, b3), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 3 || hs[0].NumRecords != 3 || hs[1].Size() != len(b2) || hs[2].Compression() != 1 {
		t.Fatalf("headers wrong: %+v", hs)
	}
}

func TestValidateBatchesRejectsEachKindOfCorruption(t *testing.T) {
	good := buildBatch(spec{records: 2, valueSize: 20})
	mutate := func(f func(b []byte)) []byte {
		b := concat(good)
		f(b)
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		max     int
		wantErr error
		index   int
		reason  string
	}{
		{name: "empty", in: nil, wantErr: ErrCorruptBatch, reason: "no record batches"},
		{name: "partial header", in: good[:40], wantErr: ErrCorruptBatch, reason: "partial batch"},
		{name: "partial batch", in: good[:len(good)-1], wantErr: ErrCorruptBatch, reason: "partial batch"},
		{name: "trailing bytes", in: concat(good, []byte{1, 2, 3}), wantErr: ErrCorruptBatch, index: 1, reason: "partial batch"},
		{name: "magic 1", in: mutate(func(b []byte) { b[posMagic] = 1 }), wantErr: ErrCorruptBatch, reason: "magic 1"},
		{name: "length below minimum", in: mutate(func(b []byte) { binary.BigEndian.PutUint32(b[posBatchLength:], 20) }), wantErr: ErrCorruptBatch, reason: "below minimum"},
		{name: "length beyond input", in: mutate(func(b []byte) { binary.BigEndian.PutUint32(b[posBatchLength:], 1<<30) }), wantErr: ErrCorruptBatch, reason: "partial batch"},
		{name: "flipped value byte", in: mutate(func(b []byte) { b[len(b)-3] ^= 0x40 }), wantErr: ErrCorruptBatch, reason: "crc mismatch"},
		{name: "flipped attributes", in: mutate(func(b []byte) { b[posAttributes+1] ^= 0x10 }), wantErr: ErrCorruptBatch, reason: "crc mismatch"},
		{name: "zero records", in: mutate(func(b []byte) {
			binary.BigEndian.PutUint32(b[posNumRecords:], 0)
			fixCRC(b)
		}), wantErr: ErrCorruptBatch, reason: "record count 0"},
		{name: "last offset delta disagrees", in: mutate(func(b []byte) {
			binary.BigEndian.PutUint32(b[posLastOffsetDelta:], 5)
			fixCRC(b)
		}), wantErr: ErrCorruptBatch, reason: "last offset delta 5"},
		{name: "more records claimed than present", in: mutate(func(b []byte) {
			binary.BigEndian.PutUint32(b[posNumRecords:], 3)
			binary.BigEndian.PutUint32(b[posLastOffsetDelta:], 2)
			fixCRC(b)
		}), wantErr: ErrCorruptBatch, reason: "record 2"},
		{name: "record offset delta out of order", in: buildBatch(spec{records: 2, recHook: func(i int, r *kmsg.Record) {
			if i == 1 {
				r.OffsetDelta = 2
			}
		}}), wantErr: ErrCorruptBatch, reason: "offset delta 2, want 1"},
		{name: "record length too short", in: buildBatch(spec{records: 2, valueSize: 5, recHook: func(i int, r *kmsg.Record) {
			if i == 0 {
				r.Length -= 2
			}
		}}), wantErr: ErrCorruptBatch, reason: "record 0"},
		{name: "bytes after the last record", in: buildBatch(spec{records: 1, tail: []byte{0, 0}}), wantErr: ErrCorruptBatch, reason: "after the last of 1 records"},
		{name: "unknown compression", in: buildBatch(spec{attrs: 5, tail: []byte("x")}), wantErr: ErrCorruptBatch, reason: "compression codec 5"},
		{name: "too large", in: good, max: len(good) - 1, wantErr: ErrBatchTooLarge, reason: "limit"},
		{name: "second batch corrupt", in: concat(good, mutate(func(b []byte) { b[HeaderSize] ^= 1 })), wantErr: ErrCorruptBatch, index: 1, reason: "crc mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, err := ValidateBatches(tt.in, tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v (headers %v), want %v", err, hs, tt.wantErr)
			}
			var be *BatchError
			if !errors.As(err, &be) {
				t.Fatalf("error %T is not a *BatchError", err)
			}
			if be.Index != tt.index || be.Pos != int64(tt.index*len(good)) {
				t.Errorf("error at batch %d byte %d, want batch %d byte %d", be.Index, be.Pos, tt.index, tt.index*len(good))
			}
			if !strings.Contains(err.Error(), tt.reason) || !strings.HasPrefix(err.Error(), "log: batch ") {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
		})
	}
}

func TestValidateBatchesAllowsExactLimit(t *testing.T) {
	b := buildBatch(spec{records: 4, valueSize: 50})
	if _, err := ValidateBatches(b, len(b)); err != nil {
		t.Fatal(err)
	}
}
