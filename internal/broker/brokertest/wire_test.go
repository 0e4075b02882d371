package brokertest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/records"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

func dial(t *testing.T, c *kafkatest.Cluster) *wire.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, nil, c.Bootstrap()[0], "kafkatest-raw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func request[R kmsg.Response](t *testing.T, cl *wire.Client, req kmsg.Request) R {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp.(R)
}

// produceRaw sends one batch to topic-0 with acks=-1 and returns the partition response.
func produceRaw(t *testing.T, cl *wire.Client, topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = 0, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.ProduceResponse](t, cl, req)
	return resp.Topics[0].Partitions[0]
}

func initProducer(t *testing.T, cl *wire.Client) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.SetVersion(4)
	resp := request[*kmsg.InitProducerIDResponse](t, cl, req)
	if resp.ErrorCode != 0 {
		t.Fatalf("InitProducerID: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

func logEnd(t *testing.T, c *kafkatest.Cluster, topic string) int64 {
	t.Helper()
	info, err := c.Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	return info.HW
}

func TestIdempotentDuplicateIsStoredOnceAndGapIsRefused(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "idem", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, c)
	pid, epoch := initProducer(t, cl)
	recs := []records.Record{{Value: []byte("a")}, {Value: []byte("b")}}
	first := records.Build(recs, time.Now().UnixMilli(), records.Producer{ID: pid, Epoch: epoch, Sequence: 0})
	second := records.Build(recs, time.Now().UnixMilli(), records.Producer{ID: pid, Epoch: epoch, Sequence: 2})

	if r := produceRaw(t, cl, "idem", first); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("first batch: code %d offset %d", r.ErrorCode, r.BaseOffset)
	}
	if r := produceRaw(t, cl, "idem", second); r.ErrorCode != 0 || r.BaseOffset != 2 {
		t.Fatalf("second batch: code %d offset %d", r.ErrorCode, r.BaseOffset)
	}
	// The retry of the first batch is answered with its original offset and not written again.
	dup := records.Build(recs, time.Now().UnixMilli(), records.Producer{ID: pid, Epoch: epoch, Sequence: 0})
	if r := produceRaw(t, cl, "idem", dup); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("duplicate: code %d offset %d, want 0 and offset 0", r.ErrorCode, r.BaseOffset)
	}
	if end := logEnd(t, c, "idem"); end != 4 {
		t.Fatalf("after a duplicate the log ends at %d, want 4", end)
	}
	// A gap in sequences is OUT_OF_ORDER_SEQUENCE_NUMBER (45), and nothing is written.
	gap := records.Build(recs, time.Now().UnixMilli(), records.Producer{ID: pid, Epoch: epoch, Sequence: 9})
	if r := produceRaw(t, cl, "idem", gap); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: code %d, want %d", r.ErrorCode, kerr.OutOfOrderSequenceNumber.Code)
	}
	// An older epoch is INVALID_PRODUCER_EPOCH once a newer one wrote.
	bumped := records.Build(recs, time.Now().UnixMilli(), records.Producer{ID: pid, Epoch: epoch + 1, Sequence: 0})
	if r := produceRaw(t, cl, "idem", bumped); r.ErrorCode != 0 {
		t.Fatalf("new epoch: code %d", r.ErrorCode)
	}
	stale := records.Build(recs, time.Now().UnixMilli(), records.Producer{ID: pid, Epoch: epoch, Sequence: 4})
	if r := produceRaw(t, cl, "idem", stale); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("stale epoch: code %d, want %d", r.ErrorCode, kerr.InvalidProducerEpoch.Code)
	}
	if end := logEnd(t, c, "idem"); end != 6 {
		t.Fatalf("log ends at %d, want 6", end)
	}
}

func TestOversizedBatchIsRefusedWholeWithMessageTooLarge(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "big", 1, 1, map[string]string{"max.message.bytes": "2048"}); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, c)
	small := records.Build([]records.Record{{Value: []byte("fits")}}, time.Now().UnixMilli(), records.NoProducer)
	if r := produceRaw(t, cl, "big", small); r.ErrorCode != 0 {
		t.Fatalf("small batch: code %d", r.ErrorCode)
	}
	big := records.Build([]records.Record{{Value: bytes.Repeat([]byte("x"), 1500)}, {Value: bytes.Repeat([]byte("y"), 1500)}}, time.Now().UnixMilli(), records.NoProducer)
	if r := produceRaw(t, cl, "big", big); r.ErrorCode != kerr.MessageTooLarge.Code {
		t.Fatalf("oversized batch: code %d, want MESSAGE_TOO_LARGE (%d)", r.ErrorCode, kerr.MessageTooLarge.Code)
	}
	if end := logEnd(t, c, "big"); end != 1 {
		t.Fatalf("log ends at %d after a refused batch, want 1", end)
	}
}

func TestCorruptBatchIsRefusedAndNothingWritten(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "crc", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, c)
	b := records.Build([]records.Record{{Value: []byte("payload")}}, time.Now().UnixMilli(), records.NoProducer)
	b[len(b)-2] ^= 0xff // flip a payload byte: the CRC no longer matches
	if r := produceRaw(t, cl, "crc", b); r.ErrorCode != kerr.CorruptMessage.Code {
		t.Fatalf("corrupt batch: code %d, want CORRUPT_MESSAGE (%d)", r.ErrorCode, kerr.CorruptMessage.Code)
	}
	if end := logEnd(t, c, "crc"); end != 0 {
		t.Fatalf("log ends at %d, want 0", end)
	}
}

// apiVersionsWorks reports whether a fresh connection still gets an ApiVersions answer.
func apiVersionsWorks(t *testing.T, c *kafkatest.Cluster) {
	t.Helper()
	cl := dial(t, c)
	resp := request[*kmsg.ApiVersionsResponse](t, cl, kmsg.NewPtrApiVersionsRequest())
	if resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		t.Fatalf("ApiVersions: code %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
}

func TestMalformedInputClosesOnlyThatConnection(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	frame := func(body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	header := func(key, version int16) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(key))
		b = binary.BigEndian.AppendUint16(b, uint16(version))
		b = binary.BigEndian.AppendUint32(b, 7)
		return binary.BigEndian.AppendUint16(b, 0xffff) // null client id
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"garbage bytes", []byte("\x00\x00\x00\x10\xde\xad\xbe\xef\xde\xad\xbe\xef\xde\xad\xbe\xef\xde\xad\xbe\xef")},
		{"2 GiB frame size", []byte{0x7f, 0xff, 0xff, 0xff, 0, 0, 0}},
		{"negative frame size", []byte{0xff, 0xff, 0xff, 0xff}},
		{"truncated request", frame(append(header(3, 12), 0x05))},
		{"frame shorter than a header", frame([]byte{0, 3})},
		{"unknown API key", frame(header(999, 0))},
		{"unsupported version of a known API", frame(header(0, 1))},
		{"http request", []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", c.Bootstrap()[0])
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tc.data); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Read(make([]byte, 64))
			if !errors.Is(err, io.EOF) {
				var ne net.Error
				if !(errors.As(err, &ne) && !ne.Timeout()) {
					t.Fatalf("read %d bytes, err %v: want the broker to close the connection", n, err)
				}
			}
			apiVersionsWorks(t, c)
		})
	}
}
