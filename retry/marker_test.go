package retry

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func sampleMarker() *Marker {
	at := time.UnixMilli(1_700_000_000_123).UTC()
	return &Marker{
		Kind:        KindMarker,
		Origin:      Origin{Topic: "orders", Partition: 2, Offset: 41},
		Key:         []byte("customer-7"),
		Value:       []byte(`{"amount":12}`),
		Headers:     []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}, {Key: "empty"}},
		Timestamp:   time.UnixMilli(1_699_999_999_000),
		Attempts:    2,
		Due:         time.UnixMilli(1_700_000_001_000),
		FirstFailed: time.UnixMilli(1_700_000_000_000),
		History:     []Attempt{{1, at, "timeout"}, {2, at.Add(time.Second), "connection refused"}},
	}
}

func TestMarkerRoundTripsThroughARecord(t *testing.T) {
	t.Parallel()
	for _, kind := range []Kind{KindMarker, KindDeadLetter, KindRepublished} {
		t.Run(string(kind), func(t *testing.T) {
			m := sampleMarker()
			if kind == KindDeadLetter {
				m.Reason = ReasonMaxAttempts
			}
			rec := m.encode("orders.retry", kind)
			if rec.Topic != "orders.retry" || string(rec.Key) != "customer-7" || string(rec.Value) != `{"amount":12}` {
				t.Fatalf("record %+v", rec)
			}
			got, err := ParseMarker(rec)
			if err != nil {
				t.Fatal(err)
			}
			want := *m
			want.Kind = kind
			if kind != KindMarker {
				want.Due = time.Time{}
			}
			normalize := func(m *Marker) {
				m.Timestamp, m.Due, m.FirstFailed = m.Timestamp.UTC(), m.Due.UTC(), m.FirstFailed.UTC()
				for i := range m.History {
					m.History[i].At = m.History[i].At.UTC()
				}
			}
			normalize(got)
			normalize(&want)
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, &want)
			}
		})
	}
}

func TestResolutionRecordCarriesOnlyTheOrigin(t *testing.T) {
	t.Parallel()
	rec := sampleMarker().encode("orders.retry", KindResolved)
	if rec.Value != nil {
		t.Errorf("resolution has a value")
	}
	m, err := ParseMarker(rec)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != KindResolved || m.Origin != (Origin{"orders", 2, 41}) || string(m.Key) != "customer-7" || m.Headers != nil {
		t.Errorf("parsed %+v", m)
	}
}

func TestOriginalRecordKeepsItsOwnHeadersOnly(t *testing.T) {
	t.Parallel()
	m := sampleMarker()
	r := m.Record()
	if r.Topic != "orders" || r.Partition != 2 || r.Offset != 41 || len(r.Headers) != 2 {
		t.Errorf("original record %+v", r)
	}
	// A record carrying marker headers parked again: the Parker does not
	// take them for the record's own headers.
	rec := m.encode("orders.retry", KindRepublished)
	rec.Topic, rec.Partition, rec.Offset = "orders", 0, 99
	again := newMarker(rec, KafkaguardHeaders)
	if again.Origin != m.Origin || again.Attempts != 2 || len(again.Headers) != 2 || !again.Due.IsZero() {
		t.Errorf("a republished record continues its origin and attempts: %+v", again)
	}
	plain := newMarker(&kgo.Record{Topic: "t", Partition: 1, Offset: 5, Headers: []kgo.RecordHeader{{Key: HeaderAttempts, Value: []byte("9")}, {Key: "x"}}}, KafkaguardHeaders)
	if plain.Attempts != 0 || plain.Origin != (Origin{"t", 1, 5}) || len(plain.Headers) != 1 {
		t.Errorf("a record with a stray marker header is a new record: %+v", plain)
	}
}

func TestFailedAddsOneAttemptWithoutChangingTheOriginal(t *testing.T) {
	t.Parallel()
	m := sampleMarker()
	now := time.Now()
	n := m.failed(errors.New(strings.Repeat("é", 2*maxErrorBytes)), now)
	if m.Attempts != 2 || len(m.History) != 2 {
		t.Errorf("failed changed its receiver: %+v", m)
	}
	if n.Attempts != 3 || len(n.History) != 3 || n.History[2].Attempt != 3 {
		t.Errorf("failed: %+v", n)
	}
	if e := n.History[2].Error; len(e) > maxErrorBytes+3 || !strings.HasSuffix(e, "...") || !strings.HasPrefix(e, "é") {
		t.Errorf("long error kept as %d bytes", len(e))
	}
	if first := (&Marker{}).failed(errors.New("x"), now); !first.FirstFailed.Equal(now) {
		t.Errorf("first failure time %v, want %v", first.FirstFailed, now)
	}
}

func TestParseMarkerRejectsMalformedHeaders(t *testing.T) {
	t.Parallel()
	valid := sampleMarker().encode("orders.retry", KindMarker).Headers
	with := func(edit func([]kgo.RecordHeader) []kgo.RecordHeader) *kgo.Record {
		hs := append([]kgo.RecordHeader(nil), valid...)
		return &kgo.Record{Headers: edit(hs)}
	}
	set := func(key, value string) func([]kgo.RecordHeader) []kgo.RecordHeader {
		return func(hs []kgo.RecordHeader) []kgo.RecordHeader {
			for i := range hs {
				if hs[i].Key == key {
					hs[i].Value = []byte(value)
				}
			}
			return hs
		}
	}
	drop := func(key string) func([]kgo.RecordHeader) []kgo.RecordHeader {
		return func(hs []kgo.RecordHeader) []kgo.RecordHeader {
			out := hs[:0]
			for _, h := range hs {
				if h.Key != key {
					out = append(out, h)
				}
			}
			return out
		}
	}
	tests := []struct {
		name string
		rec  *kgo.Record
		want error
		text string
	}{
		{"no headers", &kgo.Record{Value: []byte("x")}, ErrNotMarker, HeaderKind},
		{"unknown kind", with(set(HeaderKind, "bogus")), ErrInvalidMarker, "unknown kind"},
		{"missing topic", with(drop(HeaderTopic)), ErrInvalidMarker, HeaderTopic},
		{"empty topic", with(set(HeaderTopic, "")), ErrInvalidMarker, HeaderTopic},
		{"negative partition", with(set(HeaderPartition, "-1")), ErrInvalidMarker, HeaderPartition},
		{"partition overflow", with(set(HeaderPartition, "2147483648")), ErrInvalidMarker, HeaderPartition},
		{"offset not a number", with(set(HeaderOffset, "12a")), ErrInvalidMarker, HeaderOffset},
		{"missing attempts", with(drop(HeaderAttempts)), ErrInvalidMarker, HeaderAttempts},
		{"missing due", with(drop(HeaderDue)), ErrInvalidMarker, HeaderDue},
		{"due negative", with(set(HeaderDue, "-5")), ErrInvalidMarker, HeaderDue},
		{"history not JSON", with(set(HeaderError, "{")), ErrInvalidMarker, HeaderError},
		{"history attempt zero", with(set(HeaderError, `{"attempt":0}`)), ErrInvalidMarker, HeaderError},
		{"more history than attempts", with(set(HeaderAttempts, "1")), ErrInvalidMarker, "2 " + HeaderError},
		{"duplicate header", with(func(hs []kgo.RecordHeader) []kgo.RecordHeader {
			return append(hs, kgo.RecordHeader{Key: HeaderOffset, Value: []byte("1")})
		}), ErrInvalidMarker, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMarker(tt.rec)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("ParseMarker = %+v, %v; want an error wrapping %v mentioning %q", m, err, tt.want, tt.text)
			}
			if !strings.HasPrefix(err.Error(), "retry: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func FuzzParseMarker(f *testing.F) {
	for _, kind := range []Kind{KindMarker, KindResolved, KindDeadLetter} {
		rec := sampleMarker().encode("t.retry", kind)
		var hs []string
		for _, h := range rec.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		f.Add(strings.Join(hs, "\n"))
	}
	f.Add("kafkaguard.retry.kind=marker")
	f.Fuzz(func(t *testing.T, headers string) {
		rec := &kgo.Record{Key: []byte("k"), Value: []byte("v")}
		for _, line := range strings.Split(headers, "\n") {
			k, v, _ := strings.Cut(line, "=")
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		m, err := ParseMarker(rec)
		if err != nil {
			if !errors.Is(err, ErrNotMarker) && !errors.Is(err, ErrInvalidMarker) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		// What parses survives a round trip unchanged.
		again, err := ParseMarker(m.encode("t.retry", m.Kind))
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", m, err)
		}
		// The whole marker, less what its kind does not carry: a resolution keeps only the
		// origin and key, only a marker has a due time, only a dead letter a reason.
		want := *m
		if m.Kind == KindResolved {
			want = Marker{Kind: m.Kind, Origin: m.Origin, Key: m.Key, Headers: m.Headers}
		}
		if m.Kind != KindMarker {
			want.Due = time.Time{}
		}
		if m.Kind != KindDeadLetter {
			want.Reason = ""
		}
		if !reflect.DeepEqual(*again, want) {
			t.Fatalf("round trip changed\n%+v\ninto\n%+v", want, *again)
		}
	})
}
