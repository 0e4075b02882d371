package server_test

import (
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/records"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
)

// A client that stops reading a zero-copy response holds the segment files it pins only until
// the send has made no progress for SendStallTimeout: then its connection is closed and the
// files retention deleted meanwhile are freed (Kafka frees them after file.delete.delay.ms).
func TestAStalledZeroCopySendReleasesItsSegmentFiles(t *testing.T) {
	t.Parallel()
	const stall = time.Second
	c := startCluster(t, 1, true, func(cfg *server.Config) { cfg.SendStallTimeout = stall })
	c.createTopic("st", 1, 1, map[string]string{"segment.bytes": "1048576", "retention.ms": "1"})
	cl := testClient(t, c.broker(0).Addr())
	for range 24 { // 12 MiB: more than the socket buffers hold
		req := produceRequest("st", 5000, 0)
		req.Topics[0].Partitions[0].Records = records.Build([]records.Record{{Value: make([]byte, 512<<10)}}, time.Now().UnixMilli(), records.NoProducer)
		mustRequest(t, cl, req)
	}
	var handled atomic.Int32
	c.broker(0).SetTestHooks(server.TestHooks{Handle: func(key int16) func() {
		if key != 1 {
			return nil
		}
		return func() { handled.Add(1) }
	}})

	// The client asks for everything, with a tiny receive buffer, and never reads.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", c.broker(0).Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := longPollFetch("st", 0, 0)
	req.MaxBytes, req.Topics[0].Partitions[0].PartitionMaxBytes = 50<<20, 50<<20
	writeFrame(t, conn, req)
	for deadline := time.Now().Add(5 * time.Second); handled.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the fetch was not handled")
		}
	}
	applyRetention(t, c.broker(0), "st", 0)
	if len(openDeletedFiles(t, c.dir)) == 0 {
		t.Fatal("test setup: the stalled send pins no deleted segment")
	}
	waitNoDeletedFileOpen(t, c.dir, 3*stall, "a send the client stopped reading")
}
