package server_test

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/records"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// handlerCounts counts, per API key, the handlers of a broker that are running.
type handlerCounts struct{ running [64]atomic.Int32 }

func countHandlers(b *server.Broker) *handlerCounts {
	h := &handlerCounts{}
	b.SetTestHooks(server.TestHooks{Handle: func(key int16) func() {
		h.running[key].Add(1)
		return func() { h.running[key].Add(-1) }
	}})
	return h
}

// waitRunning polls until n handlers of API key run, failing the test after within.
func (h *handlerCounts) waitRunning(t *testing.T, key int16, n int32, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for h.running[key].Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s handlers running: %d after %v, want %d", kmsg.NameForKey(key), h.running[key].Load(), within, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// rawSend dials addr and writes req as one frame, without reading the answer.
func rawSend(t *testing.T, addr string, req kmsg.Request) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	writeFrame(t, c, req)
	return c
}

// writeFrame writes req to c as one frame.
func writeFrame(t *testing.T, c net.Conn, req kmsg.Request) {
	t.Helper()
	frame := frameOf(req, 1)
	if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)); err != nil {
		t.Fatal(err)
	}
}

// longPollFetch is a consumer Fetch v12 of partition 0 of topic from offset, waiting up to
// maxWaitMs for one byte.
func longPollFetch(topic string, offset int64, maxWaitMs int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID = -1
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWaitMs, 1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = offset, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// produceRequest is an acks=all Produce v9 of one record to each of the partitions of topic.
func produceRequest(topic string, timeoutMs int32, partitions ...int32) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, timeoutMs
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p
		rp.Records = records.Build([]records.Record{{Value: []byte("v")}}, time.Now().UnixMilli(), records.NoProducer)
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// The handlers' waits, here and below, are 20 s; a handler must end well before that once its
// connection is gone.
const closedConnEndsWithin = 3 * time.Second

func TestClosedConnectionEndsItsFetchLongPoll(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, true)
	c.createTopic("lp", 1, 1, nil)
	h := countHandlers(c.broker(0))

	conn := rawSend(t, c.broker(0).Addr(), longPollFetch("lp", 0, 20000))
	h.waitRunning(t, 1, 1, 5*time.Second)
	_ = conn.Close()
	h.waitRunning(t, 1, 0, closedConnEndsWithin)
}

func TestClosedConnectionEndsItsAcksAllWait(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, true)
	c.createTopic("aw", 1, 2, nil)
	st := c.partition("aw", 0)
	leader, follower := st.Leader, 1-st.Leader
	c.pauseReplication(follower, true)
	h := countHandlers(c.broker(leader))

	conn := rawSend(t, c.broker(leader).Addr(), produceRequest("aw", 20000, 0))
	h.waitRunning(t, 0, 1, 5*time.Second)
	c.waitFor("the record appended", func() bool {
		info, _ := c.broker(leader).PartitionState("aw", 0)
		return info.LEO == 1
	})
	if info, _ := c.broker(leader).PartitionState("aw", 0); info.HW != 0 {
		t.Fatalf("leader state %+v: the record must wait for the paused follower", info)
	}
	_ = conn.Close()
	h.waitRunning(t, 0, 0, closedConnEndsWithin)
}

// A panic in request code costs that request only: a panic in one partition's append answers
// that partition UNKNOWN_SERVER_ERROR (the others are written), a panic in a handler closes its
// connection, and the node serves every other request and client as before.
func TestAPanicInRequestCodeFailsOnlyThatRequest(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, true)
	c.createTopic("pn", 2, 1, nil)
	b := c.broker(0)
	b.SetTestHooks(server.TestHooks{
		Handle: func(key int16) func() {
			if key == 2 {
				panic("injected: ListOffsets handler")
			}
			return nil
		},
		Partition: func(key int16, _ string, p int32) {
			if key == 0 && p == 1 {
				panic("injected: produce to partition 1")
			}
		},
	})
	cl, other := testClient(t, b.Addr()), testClient(t, b.Addr())
	parts := mustRequest(t, cl, produceRequest("pn", 5000, 0, 1)).(*kmsg.ProduceResponse).Topics[0].Partitions
	if parts[0].ErrorCode != 0 || parts[1].ErrorCode != kerr.UnknownServerError.Code {
		t.Fatalf("produce answered partition 0 with error %d, partition 1 with %d; want 0 and UNKNOWN_SERVER_ERROR", parts[0].ErrorCode, parts[1].ErrorCode)
	}
	if info, _ := b.PartitionState("pn", 0); info.HW != 1 {
		t.Fatalf("partition 0 holds %+v, want its record", info)
	}

	lo := kmsg.NewPtrListOffsetsRequest()
	lo.SetVersion(4)
	lo.ReplicaID = -1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Request(ctx, lo); err == nil {
		t.Fatal("ListOffsets whose handler panicked was answered; want its connection closed")
	}
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	mustRequest(t, other, av) // another client is served after the panics
	after := mustRequest(t, testClient(t, b.Addr()), produceRequest("pn", 5000, 0))
	if code := after.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("a new client's produce after the panics: error %d", code)
	}
}

// testClient dials addr; the client is closed when the test ends.
func testClient(t *testing.T, addr string) *wire.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, nil, addr, "resources-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// mustRequest sends req with cl and returns the answer, failing the test on an error or after
// 10 s.
func mustRequest(t *testing.T, cl *wire.Client, req kmsg.Request) kmsg.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// fetchWithin sends req on a new connection and returns its answer and how long it took.
func fetchWithin(t *testing.T, addr string, req *kmsg.FetchRequest) (*kmsg.FetchResponse, time.Duration) {
	t.Helper()
	cl := testClient(t, addr)
	start := time.Now()
	resp := mustRequest(t, cl, req)
	return resp.(*kmsg.FetchResponse), time.Since(start)
}

// Kafka caps a fetch's MinBytes at what the response may carry (KafkaApis.handleFetchRequest:
// fetchMinBytes = min(minBytes, min(maxBytes, fetch.max.bytes))): a consumer asking for more
// than it lets the broker send is answered once a full response is there, not at MaxWait.
func TestFetchMinBytesIsCappedAtMaxBytes(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, true)
	c.createTopic("mb", 1, 1, nil)
	cl := testClient(t, c.broker(0).Addr())
	var batch int
	for range 4 {
		req := produceRequest("mb", 5000, 0)
		batch = len(req.Topics[0].Partitions[0].Records)
		mustRequest(t, cl, req)
	}
	req := longPollFetch("mb", 0, 6000)
	req.MinBytes, req.MaxBytes = 1<<20, int32(2*batch) // two batches fill the response
	resp, took := fetchWithin(t, c.broker(0).Addr(), req)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) != 2*batch {
		t.Fatalf("error %d, %d bytes; want the first two batches (%d bytes)", p.ErrorCode, len(p.RecordBatches), 2*batch)
	}
	if took > closedConnEndsWithin {
		t.Fatalf("a full response waited %v for MinBytes above MaxBytes; Kafka answers at once", took.Round(time.Millisecond))
	}
}

// MaxWaitMillis <= 0 means "do not wait" (ReplicaManager.fetchMessages answers at once when
// maxWaitMs <= 0); Kafka puts no upper bound on it (the client's request timeout and, here, the
// connection's close end a long poll).
func TestFetchWithoutMaxWaitIsAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, true)
	c.createTopic("nw", 1, 1, nil)
	for _, wait := range []int32{0, -1, -20000} {
		resp, took := fetchWithin(t, c.broker(0).Addr(), longPollFetch("nw", 0, wait))
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
			t.Fatalf("MaxWait %d: error %d, %d bytes from an empty partition", wait, p.ErrorCode, len(p.RecordBatches))
		}
		if took > time.Second {
			t.Fatalf("MaxWait %d: answered after %v", wait, took)
		}
	}
}

// openDeletedFiles returns the files under dir that this process holds open although they were
// deleted: segment files a reader still pins after retention removed them.
func openDeletedFiles(t *testing.T, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list open files: %v", err)
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir) && strings.HasSuffix(target, " (deleted)") {
			out = append(out, target)
		}
	}
	return out
}

// retentionTopic creates topic with tiny segments and a 1 ms retention, and fills each of its
// partitions with batches spanning several segments.
func retentionTopic(t *testing.T, c *testCluster, topic string, partitions int32) {
	t.Helper()
	c.createTopic(topic, partitions, 1, map[string]string{"segment.bytes": "200", "retention.ms": "1"})
	cl := testClient(t, c.broker(0).Addr())
	for range 8 {
		for p := range partitions {
			mustRequest(t, cl, produceRequest(topic, 5000, p))
		}
	}
}

// applyRetention runs retention on a partition until it deletes segments (their records must
// be more than 1 ms old).
func applyRetention(t *testing.T, b *server.Broker, topic string, p int32) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		n, err := b.ApplyRetention(topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention deleted no segment of %s-%d", topic, p)
		}
	}
}

// waitNoDeletedFileOpen fails the test unless, within the given time, no deleted segment file
// under dir is held open.
func waitNoDeletedFileOpen(t *testing.T, dir string, within time.Duration, why string) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(time.Millisecond) {
		open := openDeletedFiles(t, dir)
		if len(open) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d deleted segment files still open, e.g. %s", why, len(open), open[0])
		}
	}
}

// A long poll reads again whenever it wakes, so it holds no segment file while it waits:
// retention that runs meanwhile frees the deleted files at once, not when the poll ends.
func TestLongPollPinsNoSegmentFileWhileItWaits(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, true)
	retentionTopic(t, c, "rp", 1)
	var reads atomic.Int32
	c.broker(0).SetTestHooks(server.TestHooks{Partition: func(key int16, _ string, _ int32) {
		if key == 1 {
			reads.Add(1)
		}
	}})
	req := longPollFetch("rp", 0, 20000)
	req.MinBytes = 1 << 20 // more than the partition holds: the fetch waits
	rawSend(t, c.broker(0).Addr(), req)
	for deadline := time.Now().Add(5 * time.Second); reads.Load() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the fetch did not read twice (before and after setting its watch)")
		}
	}
	applyRetention(t, c.broker(0), "rp", 0)
	waitNoDeletedFileOpen(t, c.dir, time.Second, "retention during a long poll")
}

// A fetch that fails after it pinned segment files (here a panic in the read of its second
// partition) releases them: nothing keeps a deleted segment open after the fetch.
func TestAFetchThatPanicsReleasesTheSegmentFilesItPinned(t *testing.T) {
	t.Parallel()
	// No garbage collection during the test: the finalizer of a leaked segment's *os.File would
	// close it and hide the leak.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	c := startCluster(t, 1, true)
	retentionTopic(t, c, "rq", 2)
	c.broker(0).SetTestHooks(server.TestHooks{Partition: func(key int16, _ string, p int32) {
		if key == 1 && p == 1 {
			panic("injected: fetch read of partition 1")
		}
	}})
	req := longPollFetch("rq", 0, 0)
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1, 1<<20, -1
	req.Topics[0].Partitions = append(req.Topics[0].Partitions, rp)
	conn := rawSend(t, c.broker(0).Addr(), req)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the fetch whose read panicked was answered; want its connection closed")
	}
	applyRetention(t, c.broker(0), "rq", 0)
	waitNoDeletedFileOpen(t, c.dir, time.Second, "retention after a fetch that panicked")
}
