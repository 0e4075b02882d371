package retry

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderMode is the header format of the markers and dead letters this
// package writes (see Headers). Both formats are always read.
type HeaderMode int

const (
	// KafkaguardHeaders writes the kafkaguard.retry.* headers of the
	// package documentation, on TOPIC.retry and TOPIC.dlq by default.
	KafkaguardHeaders HeaderMode = iota
	// SpringHeaders writes the headers of Spring Kafka's retry topics and
	// DeadLetterPublishingRecoverer, on TOPIC-retry and TOPIC-dlt by
	// default, so that a Go service and a Spring service can share retry
	// and dead-letter topics (see "Spring interop" in the package
	// documentation).
	SpringHeaders
)

// String returns "kafkaguard" or "spring".
func (m HeaderMode) String() string {
	switch m {
	case KafkaguardHeaders:
		return "kafkaguard"
	case SpringHeaders:
		return "spring"
	}
	return fmt.Sprintf("HeaderMode(%d)", int(m))
}

// ParseHeaderMode returns the mode named "kafkaguard" or "spring".
func ParseHeaderMode(s string) (HeaderMode, error) {
	switch strings.ToLower(s) {
	case "kafkaguard":
		return KafkaguardHeaders, nil
	case "spring":
		return SpringHeaders, nil
	}
	return 0, fmt.Errorf("%w: header mode %q, want kafkaguard or spring", ErrInvalidOption, s)
}

// Spring Kafka's header names (KafkaHeaders.DLT_* and RetryTopicHeaders),
// with the value encodings Spring writes and reads: Java big-endian ints and
// longs, java.math.BigInteger.toByteArray for the retry timestamps, UTF-8
// text for the rest.
const (
	SpringAttempts          = "retry_topic-attempts"               // int32: the attempt that runs next, 1-based
	SpringBackoffTimestamp  = "retry_topic-backoff-timestamp"      // BigInteger: next attempt not before, Unix ms
	SpringOriginalTimestamp = "retry_topic-original-timestamp"     // BigInteger: original record timestamp, Unix ms
	SpringOriginalTopic     = "kafka_dlt-original-topic"           // text
	SpringOriginalPartition = "kafka_dlt-original-partition"       // int32
	SpringOriginalOffset    = "kafka_dlt-original-offset"          // int64
	SpringOriginalTime      = "kafka_dlt-original-timestamp"       // int64: Unix ms
	SpringOriginalTimeType  = "kafka_dlt-original-timestamp-type"  // text: CreateTime or LogAppendTime
	SpringOriginalGroup     = "kafka_dlt-original-consumer-group"  // text
	SpringExceptionFQCN     = "kafka_dlt-exception-fqcn"           // text: exception class
	SpringExceptionCause    = "kafka_dlt-exception-cause-fqcn"     // text: cause class
	SpringExceptionMessage  = "kafka_dlt-exception-message"        // text
	SpringExceptionStack    = "kafka_dlt-exception-stacktrace"     // text
	SpringKeyExceptionFQCN  = "kafka_dlt-key-exception-fqcn"       // text
	SpringKeyExceptionMsg   = "kafka_dlt-key-exception-message"    // text
	SpringKeyExceptionStack = "kafka_dlt-key-exception-stacktrace" // text
	springRetryPrefix       = "retry_topic-"
	springDLTPrefix         = "kafka_dlt-"
)

// Class names written in SpringExceptionFQCN for a failure of a Go handler:
// the exception "class" is the Go type that says what happened.
const (
	SpringHandlerErrorClass   = "github.com/kafkaguard/kafkaguard/retry.HandlerError"
	SpringPermanentErrorClass = "github.com/kafkaguard/kafkaguard/retry.PermanentError"
)

// isRetryHeader reports whether a header belongs to a retry path (this
// package's or Spring's) rather than to the original record.
func isRetryHeader(key string, mode HeaderMode) bool {
	if strings.HasPrefix(key, HeaderPrefix) {
		return true
	}
	return mode == SpringHeaders && (strings.HasPrefix(key, springRetryPrefix) || strings.HasPrefix(key, springDLTPrefix))
}

func isSpringRecord(hs []kgo.RecordHeader) bool {
	for _, h := range hs {
		if h.Key == SpringAttempts || h.Key == SpringOriginalTopic {
			return true
		}
	}
	return false
}

// javaBigInteger encodes v as java.math.BigInteger.valueOf(v).toByteArray():
// the shortest big-endian two's complement form.
func javaBigInteger(v int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	i := 0
	for i < 7 && ((b[i] == 0 && b[i+1]&0x80 == 0) || (b[i] == 0xff && b[i+1]&0x80 != 0)) {
		i++
	}
	return append([]byte(nil), b[i:]...)
}

// parseJavaBigInteger decodes new BigInteger(b).longValue().
func parseJavaBigInteger(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := new(big.Int).SetBytes(b)
	if b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	// longValue keeps the low 64 bits.
	return int64(new(big.Int).And(n, new(big.Int).SetUint64(^uint64(0))).Uint64()), true
}

// unixMilli is t in Unix milliseconds, 0 for the zero time.
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func javaInt(v int32) []byte  { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func javaLong(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// encodeSpring returns m as a record for topic in Spring's format: the
// original headers, Spring's kafka_dlt-original-* and exception headers and
// its retry_topic-* headers, one of each, as Spring's recoverer leaves them
// (it replaces the exception headers and keeps the first original ones, the
// consumer group and timestamp type of a record read from Spring too). The
// history (kafkaguard.retry.error) and a dead letter's reason are kept in
// this package's headers too: Spring carries unknown headers along.
func (m *Marker) encodeSpring(topic string, kind Kind) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(m.Headers)+12+len(m.History))
	hs = append(hs, m.Headers...)
	add := func(k string, v []byte) { hs = append(hs, kgo.RecordHeader{Key: k, Value: v}) }
	add(SpringOriginalTopic, []byte(m.Topic))
	add(SpringOriginalPartition, javaInt(m.Partition))
	add(SpringOriginalOffset, javaLong(m.Offset))
	ts := unixMilli(m.Timestamp)
	add(SpringOriginalTime, javaLong(ts))
	tsType := []byte("CreateTime")
	for _, h := range m.springOriginal {
		if h.Key == SpringOriginalTimeType {
			tsType = h.Value
		}
	}
	add(SpringOriginalTimeType, tsType)
	for _, h := range m.springOriginal {
		if h.Key == SpringOriginalGroup {
			add(h.Key, h.Value)
		}
	}
	if n := len(m.History); n > 0 {
		class := SpringHandlerErrorClass
		if kind == KindDeadLetter && m.Reason == ReasonPermanent {
			class = SpringPermanentErrorClass
		}
		last := m.History[n-1]
		add(SpringExceptionFQCN, []byte(class))
		add(SpringExceptionMessage, []byte(last.Error))
		var trace strings.Builder
		fmt.Fprintf(&trace, "%s: %s\n", class, last.Error)
		for i := n - 1; i >= 0; i-- {
			a := m.History[i]
			fmt.Fprintf(&trace, "\tat attempt %d (%s): %s\n", a.Attempt, a.At.UTC().Format(time.RFC3339Nano), a.Error)
		}
		add(SpringExceptionStack, []byte(trace.String()))
	}
	add(SpringOriginalTimestamp, javaBigInteger(ts))
	add(SpringAttempts, javaInt(int32(m.Attempts+1)))
	due := m.Due
	if kind != KindMarker {
		// Spring stamps the time the record may next run; a dead letter
		// runs no more, so the time it was dead-lettered.
		due = time.Now()
		if n := len(m.History); n > 0 {
			due = m.History[n-1].At
		}
	}
	add(SpringBackoffTimestamp, javaBigInteger(unixMilli(due)))
	for _, a := range m.History {
		b, _ := json.Marshal(a) // cannot fail: ints, a time and a string
		add(HeaderError, b)
	}
	if kind == KindDeadLetter && m.Reason != "" {
		add(HeaderReason, []byte(m.Reason))
	}
	return &kgo.Record{Topic: topic, Key: m.Key, Value: m.Value, Headers: hs}
}

// parseSpring decodes a record in Spring's format. The last header of each
// name counts, as in Spring. It is a KindDeadLetter when read from a topic
// named *-dlt, a KindMarker otherwise.
func parseSpring(r *kgo.Record) (*Marker, error) {
	last := map[string][]byte{}
	m := &Marker{Kind: KindMarker, Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		switch {
		case h.Key == HeaderError:
			var a Attempt
			if err := json.Unmarshal(h.Value, &a); err != nil || a.Attempt < 1 {
				return nil, fmt.Errorf("%w: header %s: %q is not an attempt", ErrInvalidMarker, h.Key, h.Value)
			}
			m.History = append(m.History, a)
		case h.Key == HeaderReason:
			m.Reason = string(h.Value)
		case isRetryHeader(h.Key, SpringHeaders):
			last[h.Key] = h.Value
		default:
			m.Headers = append(m.Headers, h)
		}
	}
	if strings.HasSuffix(r.Topic, SpringDeadLetterSuffix) {
		m.Kind = KindDeadLetter
	}
	for _, k := range []string{SpringOriginalGroup, SpringOriginalTimeType} {
		if v, ok := last[k]; ok {
			m.springOriginal = append(m.springOriginal, kgo.RecordHeader{Key: k, Value: v})
		}
	}
	fixed := func(name string, size int) ([]byte, error) {
		v, ok := last[name]
		if !ok {
			return nil, fmt.Errorf("%w: no %s header", ErrInvalidMarker, name)
		}
		if len(v) != size {
			return nil, fmt.Errorf("%w: header %s: %d bytes, want a %d-byte big-endian integer", ErrInvalidMarker, name, len(v), size)
		}
		return v, nil
	}
	topic, ok := last[SpringOriginalTopic]
	if !ok || len(topic) == 0 {
		return nil, fmt.Errorf("%w: no %s header", ErrInvalidMarker, SpringOriginalTopic)
	}
	m.Topic = string(topic)
	p, err := fixed(SpringOriginalPartition, 4)
	if err != nil {
		return nil, err
	}
	if m.Partition = int32(binary.BigEndian.Uint32(p)); m.Partition < 0 {
		return nil, fmt.Errorf("%w: header %s: negative partition %d", ErrInvalidMarker, SpringOriginalPartition, m.Partition)
	}
	o, err := fixed(SpringOriginalOffset, 8)
	if err != nil {
		return nil, err
	}
	if m.Offset = int64(binary.BigEndian.Uint64(o)); m.Offset < 0 {
		return nil, fmt.Errorf("%w: header %s: negative offset %d", ErrInvalidMarker, SpringOriginalOffset, m.Offset)
	}
	switch {
	case last[SpringOriginalTimestamp] != nil:
		ts, ok := parseJavaBigInteger(last[SpringOriginalTimestamp])
		if !ok || ts < 0 {
			return nil, fmt.Errorf("%w: header %s: bad timestamp %x", ErrInvalidMarker, SpringOriginalTimestamp, last[SpringOriginalTimestamp])
		}
		m.Timestamp = time.UnixMilli(ts)
	case last[SpringOriginalTime] != nil:
		t, err := fixed(SpringOriginalTime, 8)
		if err != nil {
			return nil, err
		}
		m.Timestamp = time.UnixMilli(int64(binary.BigEndian.Uint64(t)))
	}
	// Spring reads a missing attempts header as attempt 1, and accepts the
	// one-byte form of its early versions.
	next := 1
	if v, ok := last[SpringAttempts]; ok {
		switch len(v) {
		case 1:
			next = int(int8(v[0]))
		case 4:
			next = int(int32(binary.BigEndian.Uint32(v)))
		default:
			return nil, fmt.Errorf("%w: header %s: %d bytes, want 4", ErrInvalidMarker, SpringAttempts, len(v))
		}
		if next < 1 {
			return nil, fmt.Errorf("%w: header %s: attempt %d, want at least 1", ErrInvalidMarker, SpringAttempts, next)
		}
	}
	m.Attempts = next - 1
	if v, ok := last[SpringBackoffTimestamp]; ok && m.Kind == KindMarker {
		due, ok := parseJavaBigInteger(v)
		if !ok || due < 0 {
			return nil, fmt.Errorf("%w: header %s: bad timestamp %x", ErrInvalidMarker, SpringBackoffTimestamp, v)
		}
		m.Due = time.UnixMilli(due)
	}
	if len(m.History) > m.Attempts {
		return nil, fmt.Errorf("%w: %d %s headers for %d attempts", ErrInvalidMarker, len(m.History), HeaderError, m.Attempts)
	}
	// Spring keeps only the latest exception: an attempt a Spring service
	// ran is in the history as its exception class and message.
	if msg, ok := last[SpringExceptionMessage]; ok && len(m.History) < m.Attempts {
		text := string(msg)
		if class := string(last[SpringExceptionFQCN]); class != "" && class != SpringHandlerErrorClass && class != SpringPermanentErrorClass {
			text = class + ": " + text
		}
		m.History = append(m.History, Attempt{Attempt: m.Attempts, Error: text})
	}
	return m, nil
}
