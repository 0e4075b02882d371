package brokertest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/records"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// Raw produce requests checked as Kafka 4.4's leader checks them (KafkaApis.handleProduceRequest,
// ProduceRequest.validateRecords, ReplicaManager.appendRecords, LogValidator): each refused
// request must answer Kafka's error code and leave the log end where it was.

// oneBrokerTopic starts a one-broker cluster with topic (partitions 0..n-1) and a raw client.
func oneBrokerTopic(t *testing.T, topic string, partitions int32) (*kafkatest.Cluster, *rawClient) {
	t.Helper()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, topic, partitions, 1, nil); err != nil {
		t.Fatal(err)
	}
	return c, &rawClient{t: t, c: c, cl: dial(t, c), topic: topic}
}

type rawClient struct {
	t     *testing.T
	c     *kafkatest.Cluster
	cl    *wire.Client
	topic string
}

// produce sends one Produce request (version v) with records[p] for each partition p and
// returns the partition answers in partition order.
func (r *rawClient) produce(v int16, acks int16, timeoutMillis int32, txnID *string, recs ...[]byte) []kmsg.ProduceResponseTopicPartition {
	r.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(v)
	req.Acks, req.TimeoutMillis, req.TransactionID = acks, timeoutMillis, txnID
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = r.topic
	for p, b := range recs {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = int32(p), b
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := r.cl.Request(ctx, req)
	if err != nil {
		r.t.Fatalf("produce: %v", err)
	}
	return resp.(*kmsg.ProduceResponse).Topics[0].Partitions
}

// leo returns the leader's log end offset of partition p.
func (r *rawClient) leo(p int32) int64 {
	r.t.Helper()
	info, err := r.c.Partition(r.topic, p)
	if err != nil {
		r.t.Fatal(err)
	}
	ri, err := r.c.Replica(info.Leader, r.topic, p)
	if err != nil {
		r.t.Fatal(err)
	}
	return ri.LEO
}

// refused produces recs (to partitions 0, 1, ...) at v9 with acks and checks that every
// partition answers want and that no log end moved.
func (r *rawClient) refused(what string, acks int16, txnID *string, want *kerr.Error, recs ...[]byte) {
	r.t.Helper()
	before := make([]int64, len(recs))
	for p := range recs {
		before[p] = r.leo(int32(p))
	}
	for p, sp := range r.produce(9, acks, 5000, txnID, recs...) {
		if sp.ErrorCode != want.Code {
			msg := ""
			if sp.ErrorMessage != nil {
				msg = *sp.ErrorMessage
			}
			r.t.Errorf("%s: partition %d answered %v (%q), want %s", what, p, kerr.ErrorForCode(sp.ErrorCode), msg, want.Message)
		}
		if after := r.leo(int32(p)); after != before[p] {
			r.t.Errorf("%s: partition %d log end moved from %d to %d", what, p, before[p], after)
		}
	}
}

func plainBatch(values ...string) []byte {
	var recs []records.Record
	for _, v := range values {
		recs = append(recs, records.Record{Value: []byte(v)})
	}
	return records.Build(recs, time.Now().UnixMilli(), records.NoProducer)
}

// setAttrs sets a batch's attributes and fixes its CRC.
func setAttrs(b []byte, attrs uint16) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint16(b[21:], attrs)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// compressed rebuilds the uncompressed batch b with its records compressed by codec (and its
// NumRecords field set to count when count > 0).
func compressed(t *testing.T, b []byte, codec kgo.CompressionCodec, count int32) []byte {
	t.Helper()
	c, err := kgo.DefaultCompressor(codec)
	if err != nil {
		t.Fatal(err)
	}
	body, typ := c.Compress(new(bytes.Buffer), b[61:])
	out := append(bytes.Clone(b[:61]), body...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	if count > 0 {
		binary.BigEndian.PutUint32(out[57:], uint32(count))
		binary.BigEndian.PutUint32(out[23:], uint32(count-1))
	}
	return setAttrs(out, uint16(typ))
}

func TestProduceOfMoreThanOneBatchForAPartitionIsInvalidRecord(t *testing.T) {
	t.Parallel()
	c, r := oneBrokerTopic(t, "two-batches", 1)
	pid, epoch := initProducer(t, dial(t, c))
	first := records.Build([]records.Record{{Value: []byte("a")}, {Value: []byte("b")}}, 1, records.Producer{ID: pid, Epoch: epoch, Sequence: 0})
	if sp := r.produce(9, -1, 5000, nil, first)[0]; sp.ErrorCode != 0 {
		t.Fatalf("first batch: %v", kerr.ErrorForCode(sp.ErrorCode))
	}
	next := records.Build([]records.Record{{Value: []byte("c")}}, 1, records.Producer{ID: pid, Epoch: epoch, Sequence: 2})
	// A new batch followed by a retry of the first: Kafka refuses both; it never acks the pair
	// and writes nothing.
	r.refused("[new, retried] idempotent batches", -1, nil, kerr.InvalidRecord, append(bytes.Clone(next), first...))
	r.refused("two plain batches", 1, nil, kerr.InvalidRecord, append(plainBatch("x"), plainBatch("y")...))
}

func TestProduceWithAProducerIDAndNoSequenceIsInvalidRecord(t *testing.T) {
	t.Parallel()
	c, r := oneBrokerTopic(t, "no-seq", 1)
	pid, epoch := initProducer(t, dial(t, c))
	b := records.Build([]records.Record{{Value: []byte("a")}}, 1, records.Producer{ID: pid, Epoch: epoch, Sequence: -1})
	r.refused("first batch with sequence -1", -1, nil, kerr.InvalidRecord, b)
	r.refused("second batch with sequence -1", -1, nil, kerr.InvalidRecord, b)
}

func TestProduceOfAControlBatchIsInvalidRecord(t *testing.T) {
	t.Parallel()
	_, r := oneBrokerTopic(t, "control", 1)
	r.refused("control batch", -1, nil, kerr.InvalidRecord, setAttrs(plainBatch("marker"), 0x20))
}

func TestProduceOfATransactionalBatchWithoutATransactionalIDFailsTheWholeRequest(t *testing.T) {
	t.Parallel()
	c, r := oneBrokerTopic(t, "txn", 2)
	pid, epoch := initProducer(t, dial(t, c))
	txn := setAttrs(records.Build([]records.Record{{Value: []byte("a")}}, 1, records.Producer{ID: pid, Epoch: epoch, Sequence: 0}), 0x10)
	r.refused("transactional batch on partition 0, plain on 1", -1, nil, kerr.TransactionalIDAuthorizationFailed, txn, plainBatch("b"))
}

func TestProduceWithAcksOtherThanMinusOneZeroOneIsInvalidRequiredAcks(t *testing.T) {
	t.Parallel()
	_, r := oneBrokerTopic(t, "acks", 2)
	for _, acks := range []int16{2, -2, 3} {
		r.refused("acks", acks, nil, kerr.InvalidRequiredAcks, plainBatch("a"), plainBatch("b"))
	}
}

func TestProduceOfMalformedCompressedRecordsIsInvalidRecord(t *testing.T) {
	t.Parallel()
	_, r := oneBrokerTopic(t, "compressed", 1)
	codecs := map[string]kgo.CompressionCodec{"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	for name, codec := range codecs {
		ok := compressed(t, plainBatch("a", "b", "c"), codec, 0)
		before := r.leo(0)
		if sp := r.produce(9, -1, 5000, nil, ok)[0]; sp.ErrorCode != 0 {
			t.Fatalf("%s: a well-formed batch answered %v", name, kerr.ErrorForCode(sp.ErrorCode))
		}
		if got := r.leo(0); got != before+3 {
			t.Fatalf("%s: log end %d after a 3-record batch at %d", name, got, before)
		}
		// The header counts four records; the compressed stream holds three.
		r.refused(name+" batch counting more records than it holds", -1, nil, kerr.InvalidRecord, compressed(t, plainBatch("a", "b", "c"), codec, 4))
		// A stray record byte after the records, inside the compressed stream.
		b := plainBatch("a", "b")
		b = append(b, 0)
		binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
		r.refused(name+" batch with bytes after its records", -1, nil, kerr.InvalidRecord, compressed(t, b, codec, 0))
	}
}

// A record of 65 MiB of zeros compresses (zstd) to a few KiB; it decompresses past the
// broker's bound (64 MiB with the default max.message.bytes) and is refused as too large.
func TestProduceOfADecompressionBombIsMessageTooLarge(t *testing.T) {
	t.Parallel()
	_, r := oneBrokerTopic(t, "bomb", 1)
	bomb := records.Build([]records.Record{{Value: make([]byte, 65<<20)}}, 1, records.NoProducer)
	b := compressed(t, bomb, kgo.ZstdCompression(), 0)
	if len(b) > 64<<10 {
		t.Fatalf("the bomb is %d bytes compressed", len(b))
	}
	r.refused("zstd bomb", -1, nil, kerr.MessageTooLarge, b)
}

// Kafka refuses zstd before Produce v7 (ProduceRequest.validateRecords).
func TestProduceOfZstdBeforeVersion7IsUnsupportedCompressionType(t *testing.T) {
	t.Parallel()
	_, r := oneBrokerTopic(t, "zstd-v6", 1)
	b := compressed(t, plainBatch("a"), kgo.ZstdCompression(), 0)
	if sp := r.produce(6, -1, 5000, nil, b)[0]; sp.ErrorCode != kerr.UnsupportedCompressionType.Code {
		t.Fatalf("zstd at v6: %v, want UNSUPPORTED_COMPRESSION_TYPE", kerr.ErrorForCode(sp.ErrorCode))
	}
	if got := r.leo(0); got != 0 {
		t.Fatalf("log end %d, want 0", got)
	}
	if sp := r.produce(7, -1, 5000, nil, b)[0]; sp.ErrorCode != 0 {
		t.Fatalf("zstd at v7: %v", kerr.ErrorForCode(sp.ErrorCode))
	}
}

// A produce timeout of 0 is Kafka's DelayedProduce with no delay: the leader appends, and an
// acks=all request the ISR has not already covered expires at once with REQUEST_TIMED_OUT (it is
// not a wait without end). With the follower's replication paused, the record is in the leader's
// log, not acknowledged.
func TestProduceWithTimeoutZeroAppendsAndTimesOutAtOnceWhenTheISRLags(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(2), kafkatest.ReplicaLagMax(30*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "t0", 1, 2, nil); err != nil {
		t.Fatal(err)
	}
	r := &rawClient{t: t, c: c, cl: dial(t, c), topic: "t0"}
	info, err := c.Partition("t0", 0)
	if err != nil {
		t.Fatal(err)
	}
	leader := info.Leader
	if err := c.PauseReplication(1 - leader); err != nil {
		t.Fatal(err)
	}
	// The raw client may be connected to the follower: send to the leader.
	for _, b := range c.Brokers() {
		if b.ID == leader {
			cl, err := wire.Dial(ctx, nil, b.Address, "kafkatest-raw")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cl.Close() })
			r.cl = cl
		}
	}
	start := time.Now()
	sp := r.produce(9, -1, 0, nil, plainBatch("a"))[0]
	if sp.ErrorCode != kerr.RequestTimedOut.Code {
		t.Fatalf("acks=all, timeout 0, follower paused: %v, want REQUEST_TIMED_OUT", kerr.ErrorForCode(sp.ErrorCode))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("answered after %v", d)
	}
	if got := r.leo(0); got != 1 {
		t.Fatalf("leader log end %d, want 1: Kafka appends before the timeout", got)
	}
}

// Kafka 4.x (KIP-1030) defaults message.timestamp.after.max.ms to one hour: with CreateTime, a
// record stamped further in the future is refused with INVALID_TIMESTAMP, compressed or not;
// message.timestamp.before.max.ms stays unbounded, so old timestamps are kept.
func TestProduceOfARecordMoreThanAnHourAheadIsInvalidTimestamp(t *testing.T) {
	t.Parallel()
	_, r := oneBrokerTopic(t, "future", 1)
	now := time.Now()
	ahead := records.Build([]records.Record{{Value: []byte("a")}}, now.Add(61*time.Minute).UnixMilli(), records.NoProducer)
	r.refused("record 61 minutes ahead", -1, nil, kerr.InvalidTimestamp, ahead)
	r.refused("zstd record 61 minutes ahead", -1, nil, kerr.InvalidTimestamp, compressed(t, ahead, kgo.ZstdCompression(), 0))
	for _, ts := range []int64{now.Add(59 * time.Minute).UnixMilli(), 1, -1} {
		if sp := r.produce(9, -1, 5000, nil, records.Build([]records.Record{{Value: []byte("b")}}, ts, records.NoProducer))[0]; sp.ErrorCode != 0 {
			t.Fatalf("timestamp %d: %v", ts, kerr.ErrorForCode(sp.ErrorCode))
		}
	}
}
