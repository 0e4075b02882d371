package records

import (
	"bytes"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestBuildThenDecodeRoundTrips(t *testing.T) {
	recs := []Record{
		{Key: []byte("k1"), Value: []byte("v1")},
		{Value: []byte("v2"), Headers: []kmsg.Header{{Key: "h", Value: []byte("x")}}},
		{Key: []byte("k3")},
	}
	p := Producer{ID: 42, Epoch: 3, Sequence: 17}
	one := Build(recs, 1_700_000_000_123, p)
	two := Build(recs[:1], 1_700_000_000_456, NoProducer)
	// A fetch response may end with a partial batch: Decode stops before it.
	in := append(append(append([]byte{}, one...), two...), two[:30]...)

	bs, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 {
		t.Fatalf("decoded %d batches, want 2", len(bs))
	}
	b := bs[0]
	if b.ProducerID != 42 || b.ProducerEpoch != 3 || b.FirstSequence != 17 || b.NumRecords != 3 || b.LastOffsetDelta != 2 ||
		b.FirstTimestamp != 1_700_000_000_123 || b.Magic != 2 {
		t.Fatalf("batch header %+v", b.RecordBatch)
	}
	if len(b.Recs) != 3 || !bytes.Equal(b.Recs[0].Key, []byte("k1")) || !bytes.Equal(b.Recs[1].Value, []byte("v2")) ||
		b.Recs[1].Headers[0].Key != "h" || b.Recs[2].Value != nil || b.Recs[2].OffsetDelta != 2 {
		t.Fatalf("records %+v", b.Recs)
	}
	if bs[1].ProducerID != -1 || bs[1].FirstSequence != -1 || len(bs[1].Recs) != 1 {
		t.Fatalf("second batch %+v", bs[1].RecordBatch)
	}
	// The CRC covers everything after it, with Castagnoli's polynomial.
	if got := crc32.Checksum(one[21:], crc32.MakeTable(crc32.Castagnoli)); uint32(b.CRC) != got {
		t.Fatalf("CRC %08x, want %08x", uint32(b.CRC), got)
	}
}

func TestDecodeRefusesCompressedAndMalformedBatches(t *testing.T) {
	b := Build([]Record{{Value: []byte("v")}}, 1, NoProducer)
	gz := bytes.Clone(b)
	gz[22] |= 1 // attributes: gzip
	if _, err := Decode(gz); !errors.Is(err, ErrCompressed) {
		t.Fatalf("compressed batch: %v, want ErrCompressed", err)
	}
	short := bytes.Clone(b)
	short[11] = 10 // batch length below the header size
	if _, err := Decode(short); err == nil {
		t.Fatal("a batch length below the header size was accepted")
	}
	lying := bytes.Clone(b)
	lying[60]++ // NumRecords says 2
	if _, err := Decode(lying); err == nil {
		t.Fatal("a batch claiming more records than it holds was accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Build([]Record{{Key: []byte("k"), Value: []byte("v")}}, 1, Producer{ID: 1, Epoch: 0, Sequence: 0}))
	f.Add(Build([]Record{{Value: nil}, {Value: []byte("second")}}, 1, NoProducer))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		bs, err := Decode(in)
		if err != nil {
			return
		}
		// Whatever decodes holds as many records as its header says.
		for _, b := range bs {
			if int(b.NumRecords) != len(b.Recs) {
				t.Fatalf("batch claims %d records, decoded %d", b.NumRecords, len(b.Recs))
			}
		}
	})
}

func TestMarkersAreControlBatchesWithKafkasKey(t *testing.T) {
	for _, commit := range []bool{true, false} {
		b := BuildMarker(42, 3, commit, 7, 1000)
		bs, err := Decode(b)
		if err != nil || len(bs) != 1 {
			t.Fatalf("Decode: %v", err)
		}
		rb := bs[0]
		if rb.Attributes != 0x30 || rb.ProducerID != 42 || rb.ProducerEpoch != 3 || rb.FirstSequence != -1 || rb.NumRecords != 1 {
			t.Fatalf("marker header: %+v", rb.RecordBatch)
		}
		wantType := byte(0)
		if commit {
			wantType = 1
		}
		if k := rb.Recs[0].Key; !bytes.Equal(k, []byte{0, 0, 0, wantType}) {
			t.Fatalf("marker key % x", k)
		}
		if v := rb.Recs[0].Value; !bytes.Equal(v, []byte{0, 0, 0, 0, 0, 7}) {
			t.Fatalf("marker value % x", v)
		}
		if got, err := MarkerOf(b); err != nil || got != (Marker{Commit: commit, CoordinatorEpoch: 7}) {
			t.Fatalf("MarkerOf = %+v, %v; want commit %v, coordinator epoch 7", got, err, commit)
		}
	}
	if _, err := MarkerOf(Build([]Record{{Value: []byte("x")}}, 0, NoProducer)); !errors.Is(err, ErrNotMarker) {
		t.Fatalf("MarkerOf(a data batch) = %v", err)
	}
}
