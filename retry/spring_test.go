package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/retry"
)

// springRetryRecord is a record as Spring Kafka's DeadLetterPublishingRecoverer
// writes it to a retry topic after a listener of "orders" (group
// orders-group) failed: byte for byte the documented encodings — UTF-8
// text, Java big-endian int and long (ByteBuffer.putInt/putLong) for the
// original partition, offset and timestamp, a 4-byte int (or the 1-byte form
// of Spring 2.7) for the attempt that runs next, and
// java.math.BigInteger.toByteArray() for the retry timestamps.
func springRetryRecord(key string, offset byte, attempts []byte) *kgo.Record {
	return &kgo.Record{
		Topic: "orders-retry-0",
		Key:   []byte(key),
		Value: []byte("value-" + key),
		Headers: []kgo.RecordHeader{
			{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
			{Key: "kafka_dlt-original-topic", Value: []byte("orders")},
			{Key: "kafka_dlt-original-partition", Value: []byte{0, 0, 0, 2}},
			{Key: "kafka_dlt-original-offset", Value: []byte{0, 0, 0, 0, 0, 0, 0, offset}},
			{Key: "kafka_dlt-original-timestamp", Value: []byte{0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00}}, // 1700000000000
			{Key: "kafka_dlt-original-timestamp-type", Value: []byte("CreateTime")},
			{Key: "kafka_dlt-original-consumer-group", Value: []byte("orders-group")},
			{Key: "kafka_dlt-exception-fqcn", Value: []byte("org.springframework.kafka.listener.ListenerExecutionFailedException")},
			{Key: "kafka_dlt-exception-cause-fqcn", Value: []byte("java.lang.IllegalStateException")},
			{Key: "kafka_dlt-exception-message", Value: []byte("Listener method threw exception: stock service down")},
			{Key: "kafka_dlt-exception-stacktrace", Value: []byte("org.springframework.kafka.listener.ListenerExecutionFailedException: Listener method threw exception: stock service down\n\tat org.springframework.kafka.listener.KafkaMessageListenerContainer...\n")},
			{Key: "retry_topic-original-timestamp", Value: []byte{0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00}}, // 1700000000000
			{Key: "retry_topic-attempts", Value: attempts},
			{Key: "retry_topic-backoff-timestamp", Value: []byte{0x01, 0x8b, 0xcf, 0xe5, 0x7b, 0x88}}, // 1700000005000: due
		},
	}
}

// springView reads a record's headers as Spring does: the last header of a
// name counts (Headers.lastHeader), and how many of each there are.
type springView struct {
	last  map[string][]byte
	count map[string]int
}

func viewSpring(r *kgo.Record) springView {
	v := springView{last: map[string][]byte{}, count: map[string]int{}}
	for _, h := range r.Headers {
		v.last[h.Key] = h.Value
		v.count[h.Key]++
	}
	return v
}

// getInt is ByteBuffer.wrap(b).getInt() on a 4-byte value.
func (v springView) getInt(t *testing.T, name string) int32 {
	t.Helper()
	return int32(v.fixed(t, name, 4))
}

// getLong is ByteBuffer.wrap(b).getLong() on an 8-byte value.
func (v springView) getLong(t *testing.T, name string) int64 {
	t.Helper()
	return int64(v.fixed(t, name, 8))
}

// fixed reads a big-endian integer of exactly size bytes.
func (v springView) fixed(t *testing.T, name string, size int) uint64 {
	t.Helper()
	b := v.last[name]
	if len(b) != size {
		t.Fatalf("%s: %x is not a %d-byte Java integer", name, b, size)
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

// bigInteger is new BigInteger(b).longValue() of a positive value written by
// BigInteger.toByteArray(): big-endian, shortest, with a sign bit.
func (v springView) bigInteger(t *testing.T, name string) int64 {
	t.Helper()
	b := v.last[name]
	if len(b) == 0 || len(b) > 8 || b[0]&0x80 != 0 || (len(b) > 1 && b[0] == 0 && b[1]&0x80 == 0) {
		t.Fatalf("%s: %x is not the BigInteger.toByteArray() of a positive long", name, b)
	}
	return new(big.Int).SetBytes(b).Int64()
}

// springCluster starts a cluster with the named one-partition topics and
// returns it with a client.
func springCluster(t *testing.T, topics ...string) (*kafkatest.Cluster, *kgo.Client) {
	t.Helper()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, name := range topics {
		if err := c.CreateTopic(ctx, name, 1, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c, cl
}

func TestSpringRetryRecordsAreRetriedAndDeadLetteredWithSpringHeaders(t *testing.T) {
	c, cl := springCluster(t, "orders", "orders-retry-0", "orders-dlt")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// a failed once in Spring's main listener; b failed twice (the second
	// time in a Spring 2.7 retry listener, which wrote the attempt in one byte).
	if err := cl.ProduceSync(ctx, springRetryRecord("a", 42, []byte{0, 0, 0, 2}), springRetryRecord("b", 43, []byte{3})).FirstErr(); err != nil {
		t.Fatal(err)
	}

	const maxAttempts = 3
	var mu sync.Mutex
	seen := map[string][]*retry.Marker{}
	handler := func(_ context.Context, m *retry.Marker) error {
		mu.Lock()
		defer mu.Unlock()
		seen[string(m.Key)] = append(seen[string(m.Key)], m)
		return fmt.Errorf("attempt %d of %s fails", m.Attempts+1, m.Key)
	}
	j, err := retry.NewJob(handler, retry.Headers(retry.SpringHeaders), retry.RetryTopic("orders-retry-0"),
		retry.KgoOpts(kgo.SeedBrokers(c.Bootstrap()...)), retry.MaxAttempts(maxAttempts),
		retry.RetryBackoff(fastBackoff), retry.CommitInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runJob(t, j)
	testkit.WaitFor(t, 30*time.Second, "both records dead-lettered", func() bool { return j.Stats().DeadLettered == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The handler saw Spring's records as markers of the original record.
	mu.Lock()
	first := seen["a"][0]
	if len(seen["a"]) != 2 || len(seen["b"]) != 1 {
		t.Fatalf("handler runs: a %d, b %d; want 2 and 1 (Spring ran 1 and 2 of the %d attempts)", len(seen["a"]), len(seen["b"]), maxAttempts)
	}
	mu.Unlock()
	if first.Origin != (retry.Origin{Topic: "orders", Partition: 2, Offset: 42}) || first.Attempts != 1 ||
		!first.Timestamp.Equal(time.UnixMilli(1_700_000_000_000)) || !first.Due.Equal(time.UnixMilli(1_700_000_005_000)) {
		t.Errorf("first run of a: origin %v attempts %d timestamp %v due %v", first.Origin, first.Attempts, first.Timestamp, first.Due)
	}
	if len(first.Headers) != 1 || first.Headers[0].Key != "traceparent" {
		t.Errorf("original headers %v, want only traceparent", first.Headers)
	}
	if len(first.History) != 1 || !strings.Contains(first.History[0].Error, "ListenerExecutionFailedException: Listener method threw exception: stock service down") {
		t.Errorf("history %+v, want Spring's exception as attempt 1", first.History)
	}

	// The re-park of a on the retry topic reads as Spring's next retry.
	var repark *kgo.Record
	for _, r := range readAll(t, c, "orders-retry-0") {
		if string(r.Key) == "a" && r.Offset >= 2 {
			repark = r
		}
	}
	if repark == nil {
		t.Fatal("no re-park of a on orders-retry-0")
	}
	v := viewSpring(repark)
	if got := v.getInt(t, "retry_topic-attempts"); got != 3 {
		t.Errorf("re-park: retry_topic-attempts %d, want 3 (the attempt that runs next)", got)
	}
	if due := v.bigInteger(t, "retry_topic-backoff-timestamp"); due < time.Now().Add(-time.Minute).UnixMilli() {
		t.Errorf("re-park: backoff timestamp %d is not the next attempt's time", due)
	}

	// The dead letters carry Spring's DLT headers as Spring's parser reads
	// them, one of each, and the original record unchanged.
	dl := readAll(t, c, "orders-dlt")
	if len(dl) != 2 {
		t.Fatalf("%d dead letters on orders-dlt, want 2", len(dl))
	}
	for _, r := range dl {
		v := viewSpring(r)
		key := string(r.Key)
		wantOffset := map[string]int64{"a": 42, "b": 43}[key]
		if string(r.Value) != "value-"+key {
			t.Errorf("%s: value %q", key, r.Value)
		}
		for name, n := range v.count {
			if n != 1 && name != retry.HeaderError {
				t.Errorf("%s: %d %s headers, want 1 (Spring's recoverer replaces them)", key, n, name)
			}
		}
		if got := string(v.last["kafka_dlt-original-consumer-group"]); got != "orders-group" {
			t.Errorf("%s: original consumer group %q, want Spring's kept", key, got)
		}
		if got := string(v.last["kafka_dlt-original-timestamp-type"]); got != "CreateTime" {
			t.Errorf("%s: original timestamp type %q", key, got)
		}
		if got := string(v.last["kafka_dlt-original-topic"]); got != "orders" {
			t.Errorf("%s: original topic %q", key, got)
		}
		if got := v.getInt(t, "kafka_dlt-original-partition"); got != 2 {
			t.Errorf("%s: original partition %d", key, got)
		}
		if got := v.getLong(t, "kafka_dlt-original-offset"); got != wantOffset {
			t.Errorf("%s: original offset %d, want %d", key, got, wantOffset)
		}
		if got := v.getLong(t, "kafka_dlt-original-timestamp"); got != 1_700_000_000_000 {
			t.Errorf("%s: original timestamp %d", key, got)
		}
		if got := v.bigInteger(t, "retry_topic-original-timestamp"); got != 1_700_000_000_000 {
			t.Errorf("%s: retry_topic-original-timestamp %d", key, got)
		}
		if got := v.getInt(t, "retry_topic-attempts"); got != maxAttempts+1 {
			t.Errorf("%s: retry_topic-attempts %d, want %d (attempts + 1, as Spring writes)", key, got, maxAttempts+1)
		}
		if got := string(v.last["kafka_dlt-exception-fqcn"]); got != retry.SpringHandlerErrorClass {
			t.Errorf("%s: exception class %q", key, got)
		}
		wantMsg := fmt.Sprintf("attempt %d of %s fails", maxAttempts, key)
		if got := string(v.last["kafka_dlt-exception-message"]); got != wantMsg {
			t.Errorf("%s: exception message %q, want %q", key, got, wantMsg)
		}
		if trace := string(v.last["kafka_dlt-exception-stacktrace"]); !strings.HasPrefix(trace, retry.SpringHandlerErrorClass+": "+wantMsg+"\n") || !strings.Contains(trace, "stock service down") {
			t.Errorf("%s: stack trace %q lacks the history", key, trace)
		}
		if !bytes.Equal(v.last["traceparent"], []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")) {
			t.Errorf("%s: original header lost: %v", key, r.Headers)
		}
		m, err := retry.ParseMarker(r)
		if err != nil || m.Kind != retry.KindDeadLetter || m.Attempts != maxAttempts || len(m.History) != maxAttempts || m.Reason != retry.ReasonMaxAttempts {
			t.Errorf("%s: ParseMarker = %+v, %v; want a dead letter with %d attempts of history", key, m, err, maxAttempts)
		}
	}

	// The DLQ tool reads Spring's dead-letter topic by its Spring name.
	d, err := retry.NewDeadLetters(retry.Headers(retry.SpringHeaders), retry.Topic("orders"), retry.KgoOpts(kgo.SeedBrokers(c.Bootstrap()...)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dls, err := d.Read(ctx, retry.Filter{Key: []byte("a"), ErrorContains: "stock service down"})
	if err != nil || d.Topic() != "orders-dlt" || len(dls) != 1 || dls[0].Cause() != "attempt 3 of a fails" {
		t.Errorf("DeadLetters on %s: Read = %v, %v; want a's dead letter, found by its Spring-era error", d.Topic(), dls, err)
	}
}

func TestSourceTopicUndoesEitherNaming(t *testing.T) {
	for in, want := range map[string]string{
		"orders.retry": "orders", "orders-retry": "orders", "orders-retry-0": "orders",
		"orders-retry-5000": "orders", "orders-retry-x": "orders-retry-x", "orders": "orders",
	} {
		if got := retry.SourceTopic(in); got != want {
			t.Errorf("SourceTopic(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSpringModeParkerWritesWhatSpringsRetryListenerReads(t *testing.T) {
	c, cl := springCluster(t, "orders", "orders-retry", "orders-dlt")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := retry.NewParker(cl, retry.Headers(retry.SpringHeaders),
		retry.RetryBackoff(retry.Backoff{Initial: time.Minute, Max: time.Minute, Multiplier: 1}))
	if err != nil {
		t.Fatal(err)
	}
	rec := func(off int64) *kgo.Record {
		return &kgo.Record{Topic: "orders", Partition: 1, Offset: off, Key: []byte("k"), Value: []byte("v"),
			Timestamp: time.UnixMilli(1_700_000_000_000), Headers: []kgo.RecordHeader{{Key: "app", Value: []byte("x")}}}
	}
	before := time.Now()
	if err := p.Park(ctx, rec(7), errors.New("timeout")); err != nil {
		t.Fatal(err)
	}
	if err := p.Park(ctx, rec(8), retry.Permanent(errors.New("bad payload"))); err != nil {
		t.Fatal(err)
	}
	parked := readAll(t, c, "orders-retry")
	dead := readAll(t, c, "orders-dlt")
	if len(parked) != 1 || len(dead) != 1 {
		t.Fatalf("%d records on orders-retry and %d on orders-dlt, want 1 and 1", len(parked), len(dead))
	}
	v := viewSpring(parked[0])
	if string(v.last["kafka_dlt-original-topic"]) != "orders" || v.getInt(t, "kafka_dlt-original-partition") != 1 ||
		v.getLong(t, "kafka_dlt-original-offset") != 7 || v.bigInteger(t, "retry_topic-original-timestamp") != 1_700_000_000_000 {
		t.Errorf("marker's original record headers %q", parked[0].Headers)
	}
	if got := v.getInt(t, "retry_topic-attempts"); got != 2 {
		t.Errorf("retry_topic-attempts %d, want 2: Spring's retry listener runs attempt 2", got)
	}
	if due := time.UnixMilli(v.bigInteger(t, "retry_topic-backoff-timestamp")); due.Before(before.Add(time.Minute-time.Second)) || due.After(time.Now().Add(time.Minute+time.Second)) {
		t.Errorf("backoff timestamp %v, want a minute after the park", due)
	}
	if string(v.last["kafka_dlt-exception-message"]) != "timeout" || string(v.last["app"]) != "x" {
		t.Errorf("marker headers %q", parked[0].Headers)
	}
	d := viewSpring(dead[0])
	if string(d.last["kafka_dlt-exception-fqcn"]) != retry.SpringPermanentErrorClass || string(d.last["kafka_dlt-exception-message"]) != "bad payload" ||
		d.getLong(t, "kafka_dlt-original-offset") != 8 {
		t.Errorf("dead letter headers %q", dead[0].Headers)
	}
}
