package retry

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestJavaBigIntegerMatchesToByteArray(t *testing.T) {
	// BigInteger.valueOf(v).toByteArray() for each v, as Java prints it.
	for v, want := range map[int64][]byte{
		0: {0}, 1: {1}, 127: {0x7f}, 128: {0, 0x80}, 255: {0, 0xff}, 256: {1, 0},
		-1: {0xff}, -128: {0x80}, -129: {0xff, 0x7f},
		1_700_000_000_000: {0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00},
		1<<63 - 1:         {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		got := javaBigInteger(v)
		if !bytes.Equal(got, want) {
			t.Errorf("javaBigInteger(%d) = %x, want %x", v, got, want)
		}
		if back, ok := parseJavaBigInteger(got); !ok || back != v {
			t.Errorf("parseJavaBigInteger(%x) = %d, %v; want %d", got, back, ok, v)
		}
	}
}

func TestSpringEncodingRoundTrips(t *testing.T) {
	m := &Marker{
		Kind:      KindMarker,
		Origin:    Origin{Topic: "orders", Partition: 3, Offset: 1 << 40},
		Key:       []byte("k"),
		Value:     []byte("v"),
		Headers:   []kgo.RecordHeader{{Key: "app", Value: []byte("x")}},
		Timestamp: time.UnixMilli(1_700_000_000_123),
		Attempts:  2,
		Due:       time.UnixMilli(1_700_000_009_000),
		History: []Attempt{
			{Attempt: 1, At: time.UnixMilli(1_700_000_001_000).UTC(), Error: "one"},
			{Attempt: 2, At: time.UnixMilli(1_700_000_002_000).UTC(), Error: "two"},
		},
	}
	got, err := ParseMarker(m.encodeAs(SpringHeaders, "orders-retry", KindMarker))
	if err != nil {
		t.Fatal(err)
	}
	if want := []kgo.RecordHeader{{Key: SpringOriginalTimeType, Value: []byte("CreateTime")}}; !reflect.DeepEqual(got.springOriginal, want) {
		t.Errorf("Spring's original headers %q, want %q", got.springOriginal, want)
	}
	got.springOriginal = nil
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip changed\n%+v\ninto\n%+v", m, got)
	}
	dl := m.encodeAs(SpringHeaders, "orders-dlt", KindDeadLetter)
	if got, err := ParseMarker(dl); err != nil || got.Kind != KindDeadLetter || !got.Due.IsZero() {
		t.Errorf("dead letter read back as %+v, %v", got, err)
	}
	bad := m.encodeAs(SpringHeaders, "orders-retry", KindMarker)
	for i, h := range bad.Headers {
		if h.Key == SpringOriginalPartition {
			bad.Headers[i].Value = []byte{0, 1}
		}
	}
	if _, err := ParseMarker(bad); !errors.Is(err, ErrInvalidMarker) {
		t.Errorf("a 2-byte partition: %v, want ErrInvalidMarker", err)
	}
}
