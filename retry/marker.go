package retry

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header names of the records this package writes. Every one starts with
// HeaderPrefix; the original record's own headers are kept alongside them
// unchanged, and headers with the prefix are never taken for original ones.
const (
	HeaderPrefix      = "kafkaguard.retry."
	HeaderKind        = HeaderPrefix + "kind"         // a Kind
	HeaderTopic       = HeaderPrefix + "topic"        // original topic
	HeaderPartition   = HeaderPrefix + "partition"    // original partition, decimal
	HeaderOffset      = HeaderPrefix + "offset"       // original offset, decimal
	HeaderTimestamp   = HeaderPrefix + "timestamp"    // original record timestamp, Unix milliseconds
	HeaderAttempts    = HeaderPrefix + "attempts"     // failed attempts so far, decimal
	HeaderDue         = HeaderPrefix + "due"          // next attempt not before, Unix milliseconds
	HeaderFirstFailed = HeaderPrefix + "first-failed" // first park, Unix milliseconds
	HeaderError       = HeaderPrefix + "error"        // one per failed attempt, oldest first, JSON Attempt
	HeaderReason      = HeaderPrefix + "reason"       // why a record was dead-lettered
)

// maxErrorBytes bounds the error text kept per attempt, so a handler that
// returns a huge error cannot push a marker over the broker's message size.
const maxErrorBytes = 1024

// Kind says what a record written by this package is.
type Kind string

const (
	// KindMarker is a failure marker on the retry topic.
	KindMarker Kind = "marker"
	// KindResolved is written to the retry topic, in key order, when a
	// record's retries end (it succeeded or was dead-lettered), so that
	// every KeyLocks following the topic unlocks its key. Its key is the
	// record's key; it has no value.
	KindResolved Kind = "resolved"
	// KindDeadLetter is a record on the dead-letter topic.
	KindDeadLetter Kind = "dead-letter"
	// KindRepublished is a record the Republish handler wrote back to its
	// original topic; a Parker that parks it again continues its attempts.
	KindRepublished Kind = "republished"
)

// Origin is where the failed record was first read: its topic, partition
// and offset. It identifies the record across all its markers.
type Origin struct {
	Topic     string
	Partition int32
	Offset    int64
}

// String returns "topic/partition@offset".
func (o Origin) String() string {
	return fmt.Sprintf("%s/%d@%d", o.Topic, o.Partition, o.Offset)
}

// before orders origins of one key: by partition, then offset.
func (o Origin) before(b Origin) bool {
	if o.Topic != b.Topic {
		return o.Topic < b.Topic
	}
	if o.Partition != b.Partition {
		return o.Partition < b.Partition
	}
	return o.Offset < b.Offset
}

// Attempt is one failed attempt in a marker's history.
type Attempt struct {
	Attempt int       `json:"attempt"` // 1 for the consumer's own run
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

// Marker is a failed record waiting for its next attempt: the original
// record, how often it failed, when it is next due, and why it failed.
type Marker struct {
	Kind Kind
	Origin
	Key       []byte
	Value     []byte
	Headers   []kgo.RecordHeader // the original record's headers
	Timestamp time.Time          // the original record's timestamp
	// Attempts counts the handler runs that failed. A record parked behind
	// an earlier failure of its key (key order) has 0: it never ran.
	Attempts int
	// Due is the earliest time of the next attempt.
	Due time.Time
	// FirstFailed is when the record was first parked.
	FirstFailed time.Time
	// History lists the failed attempts, oldest first.
	History []Attempt
	// Reason says why a dead letter was dead-lettered; empty otherwise.
	Reason string
	// springOriginal holds the kafka_dlt-original-consumer-group and
	// -timestamp-type headers of a record read in Spring's format, which
	// Spring's recoverer keeps from the first failure on.
	springOriginal []kgo.RecordHeader
}

// LastError returns the error of the latest failed attempt, or "".
func (m *Marker) LastError() string {
	if len(m.History) == 0 {
		return ""
	}
	return m.History[len(m.History)-1].Error
}

// Record returns the original record: topic, partition, offset, key, value,
// headers and timestamp as the consumer first read them.
func (m *Marker) Record() *kgo.Record {
	return &kgo.Record{
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       m.Key,
		Value:     m.Value,
		Headers:   append([]kgo.RecordHeader(nil), m.Headers...),
		Timestamp: m.Timestamp,
	}
}

// failed returns a copy of m with one more failed attempt recorded.
func (m *Marker) failed(err error, now time.Time) *Marker {
	n := *m
	n.Attempts = m.Attempts + 1
	if n.FirstFailed.IsZero() {
		n.FirstFailed = now
	}
	n.History = append(append([]Attempt(nil), m.History...), Attempt{Attempt: n.Attempts, At: now.UTC(), Error: errorText(err)})
	return &n
}

func hasHeader(hs []kgo.RecordHeader, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) <= maxErrorBytes {
		return s
	}
	s = s[:maxErrorBytes]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// newMarker starts a marker for a record read from its topic. A record
// that the Republish handler wrote back carries its marker headers; its
// attempts and origin continue from them.
func newMarker(r *kgo.Record, mode HeaderMode) *Marker {
	if m, err := ParseMarker(r); err == nil && m.Kind == KindRepublished {
		m.Kind = KindMarker
		m.Due = time.Time{}
		return m
	}
	return &Marker{
		Kind:      KindMarker,
		Origin:    Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset},
		Key:       r.Key,
		Value:     r.Value,
		Headers:   originalHeaders(r.Headers, mode),
		Timestamp: r.Timestamp,
	}
}

// originalHeaders returns the headers that are not a retry path's: not this
// package's, and in SpringHeaders mode not Spring's.
func originalHeaders(hs []kgo.RecordHeader, mode HeaderMode) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for _, h := range hs {
		if !isRetryHeader(h.Key, mode) {
			out = append(out, h)
		}
	}
	return out
}

func millis(t time.Time) string { return strconv.FormatInt(unixMilli(t), 10) }

// encodeAs returns m as a record of the given kind for topic in the header
// format of mode.
func (m *Marker) encodeAs(mode HeaderMode, topic string, kind Kind) *kgo.Record {
	if mode == SpringHeaders && kind != KindResolved {
		return m.encodeSpring(topic, kind)
	}
	return m.encode(topic, kind)
}

// encode returns m as a record of the given kind for topic, with m's key and
// value, the original headers and the kafkaguard headers after them.
func (m *Marker) encode(topic string, kind Kind) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(m.Headers)+10+len(m.History))
	hs = append(hs, m.Headers...)
	add := func(k, v string) { hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderKind, string(kind))
	add(HeaderTopic, m.Topic)
	add(HeaderPartition, strconv.FormatInt(int64(m.Partition), 10))
	add(HeaderOffset, strconv.FormatInt(m.Offset, 10))
	if kind == KindResolved {
		return &kgo.Record{Topic: topic, Key: m.Key, Headers: hs}
	}
	add(HeaderTimestamp, millis(m.Timestamp))
	add(HeaderAttempts, strconv.Itoa(m.Attempts))
	if kind == KindMarker {
		add(HeaderDue, millis(m.Due))
	}
	add(HeaderFirstFailed, millis(m.FirstFailed))
	for _, a := range m.History {
		b, _ := json.Marshal(a) // cannot fail: ints, a time and a string
		hs = append(hs, kgo.RecordHeader{Key: HeaderError, Value: b})
	}
	if kind == KindDeadLetter && m.Reason != "" {
		add(HeaderReason, m.Reason)
	}
	return &kgo.Record{Topic: topic, Key: m.Key, Value: m.Value, Headers: hs}
}

// ParseMarker decodes a record written by this package: a failure marker,
// a resolution, a dead letter or a republished record (see Kind), in either
// header format. A record of Spring's retry topics or dead-letter topic (with
// the retry_topic-attempts or kafka_dlt-original-topic header and no
// kafkaguard kind) is decoded as SpringHeaders describes. A record with
// neither returns an error wrapping ErrNotMarker; malformed headers return
// an error wrapping ErrInvalidMarker that names the header.
func ParseMarker(r *kgo.Record) (*Marker, error) {
	if !hasHeader(r.Headers, HeaderKind) && isSpringRecord(r.Headers) {
		return parseSpring(r)
	}
	m := &Marker{Key: r.Key, Value: r.Value, Headers: originalHeaders(r.Headers, KafkaguardHeaders)}
	var kind, topic, part, off, ts, attempts, due, first, reason *string
	seen := map[string]bool{}
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			continue
		}
		v := string(h.Value)
		var dst **string
		switch h.Key {
		case HeaderKind:
			dst = &kind
		case HeaderTopic:
			dst = &topic
		case HeaderPartition:
			dst = &part
		case HeaderOffset:
			dst = &off
		case HeaderTimestamp:
			dst = &ts
		case HeaderAttempts:
			dst = &attempts
		case HeaderDue:
			dst = &due
		case HeaderFirstFailed:
			dst = &first
		case HeaderReason:
			dst = &reason
		case HeaderError:
			var a Attempt
			if err := json.Unmarshal(h.Value, &a); err != nil {
				return nil, fmt.Errorf("%w: header %s: %v", ErrInvalidMarker, h.Key, err)
			}
			if a.Attempt < 1 {
				return nil, fmt.Errorf("%w: header %s: attempt %d, want at least 1", ErrInvalidMarker, h.Key, a.Attempt)
			}
			m.History = append(m.History, a)
			continue
		default:
			continue // a header of a later version; ignore it
		}
		if seen[h.Key] {
			return nil, fmt.Errorf("%w: header %s appears twice", ErrInvalidMarker, h.Key)
		}
		seen[h.Key] = true
		*dst = &v
	}
	if kind == nil {
		return nil, fmt.Errorf("%w: no %s header", ErrNotMarker, HeaderKind)
	}
	m.Kind = Kind(*kind)
	switch m.Kind {
	case KindMarker, KindResolved, KindDeadLetter, KindRepublished:
	default:
		return nil, fmt.Errorf("%w: header %s: unknown kind %q", ErrInvalidMarker, HeaderKind, *kind)
	}
	required := func(name string, v *string) (string, error) {
		if v == nil {
			return "", fmt.Errorf("%w: no %s header", ErrInvalidMarker, name)
		}
		return *v, nil
	}
	integer := func(name string, v *string, min, max int64) (int64, error) {
		s, err := required(name, v)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < min || n > max {
			return 0, fmt.Errorf("%w: header %s: %q is not an integer in [%d, %d]", ErrInvalidMarker, name, s, min, max)
		}
		return n, nil
	}
	instant := func(name string, v *string) (time.Time, error) {
		n, err := integer(name, v, 0, 1<<53)
		if err != nil || n == 0 {
			return time.Time{}, err
		}
		return time.UnixMilli(n), nil
	}
	var err error
	if m.Topic, err = required(HeaderTopic, topic); err != nil {
		return nil, err
	}
	if m.Topic == "" {
		return nil, fmt.Errorf("%w: header %s is empty", ErrInvalidMarker, HeaderTopic)
	}
	p, err := integer(HeaderPartition, part, 0, 1<<31-1)
	if err != nil {
		return nil, err
	}
	m.Partition = int32(p)
	if m.Offset, err = integer(HeaderOffset, off, 0, 1<<63-1); err != nil {
		return nil, err
	}
	if m.Kind == KindResolved {
		m.Value, m.Headers = nil, nil
		return m, nil
	}
	if m.Timestamp, err = instant(HeaderTimestamp, ts); err != nil {
		return nil, err
	}
	a, err := integer(HeaderAttempts, attempts, 0, 1<<31-1)
	if err != nil {
		return nil, err
	}
	m.Attempts = int(a)
	if m.Kind == KindMarker {
		if m.Due, err = instant(HeaderDue, due); err != nil {
			return nil, err
		}
	}
	if first != nil {
		if m.FirstFailed, err = instant(HeaderFirstFailed, first); err != nil {
			return nil, err
		}
	}
	if len(m.History) > m.Attempts {
		return nil, fmt.Errorf("%w: %d %s headers for %d attempts", ErrInvalidMarker, len(m.History), HeaderError, m.Attempts)
	}
	if reason != nil {
		m.Reason = *reason
	}
	return m, nil
}
