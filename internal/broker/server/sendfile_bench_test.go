package server_test

import (
	"context"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/fastbench"
)

const (
	benchTopic      = "bench"
	benchPartitions = 4
)

// fillBench writes about size bytes of uncompressed 1 KiB records over the partitions and
// returns each partition's end offset.
func fillBench(b *testing.B, c *testCluster, size int) map[int32]int64 {
	b.Helper()
	c.createTopic(benchTopic, benchPartitions, 1, nil)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.bootstrap()...), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	const valueSize = 1024
	values := make([]byte, size+valueSize) // distinct random values: nothing to gain from compression
	_, _ = rand.Read(values)
	for i := range size / valueSize {
		v := values[i*valueSize : (i+1)*valueSize]
		cl.Produce(context.Background(), &kgo.Record{Topic: benchTopic, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	ends := map[int32]int64{}
	for p := range int32(benchPartitions) {
		st, _ := c.broker(0).PartitionState(benchTopic, p)
		ends[p] = st.HW
	}
	return ends
}

// rawConsume reads every partition from offset 0 to its end with plain Fetch requests
// (fastbench.FetchAll: v12, 1 MiB per partition, as franz-go's default) into one reused buffer,
// and returns the record-batch bytes received. It measures the broker and the socket, with
// almost no client work.
func rawConsume(b *testing.B, addr string, ends map[int32]int64, buf *[]byte) int64 {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	n, err := fastbench.FetchAll(conn, benchTopic, ends, buf)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// kgoConsume reads every partition from the start to its end with a franz-go consumer and
// returns the record-batch bytes it received.
func kgoConsume(b *testing.B, addr string, ends map[int32]int64) int64 {
	offsets := map[int32]kgo.Offset{}
	var want int64
	for p, end := range ends {
		offsets[p] = kgo.NewOffset().AtStart()
		want += end
	}
	var hook batchBytes
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.WithHooks(&hook),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{benchTopic: offsets}))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for n := int64(0); n < want; {
		fs := cl.PollFetches(context.Background())
		fs.EachError(func(_ string, _ int32, err error) { b.Fatal(err) })
		n += int64(fs.NumRecords())
	}
	return hook.n.Load()
}

// BenchmarkConsumerFetchZeroCopyVsCopy consumes the same amount of data from a broker with
// zero-copy on and one with it off, alternating within each iteration, and reports both
// throughputs and their ratio (zero-copy / copy; above 1 means zero-copy is faster).
func BenchmarkConsumerFetchZeroCopyVsCopy(b *testing.B) {
	const size = 64 << 20
	type node struct {
		c    *testCluster
		ends map[int32]int64
	}
	var nodes [2]node // [0] zero-copy, [1] copy
	for i, zc := range []bool{true, false} {
		c := startCluster(b, 1, zc)
		nodes[i] = node{c, fillBench(b, c, size)}
	}
	clients := []struct {
		name string
		read func(b *testing.B, addr string, ends map[int32]int64, buf *[]byte) int64
	}{
		{"raw", rawConsume},
		{"franz-go", func(b *testing.B, addr string, ends map[int32]int64, _ *[]byte) int64 {
			return kgoConsume(b, addr, ends)
		}},
	}
	for _, cl := range clients {
		b.Run(cl.name, func(b *testing.B) {
			var (
				bytes [2]int64
				took  [2]time.Duration
				buf   []byte
				i     int
			)
			sentBefore := nodes[0].c.sendfileBytes()
			for b.Loop() {
				for k := range 2 {
					k = (k + i) % 2 // alternate which goes first
					start := time.Now()
					bytes[k] += cl.read(b, nodes[k].c.bootstrap()[0], nodes[k].ends, &buf)
					took[k] += time.Since(start)
				}
				i++
			}
			mbps := func(k int) float64 { return float64(bytes[k]) / (1 << 20) / took[k].Seconds() }
			b.ReportMetric(mbps(0), "zerocopy-MB/s")
			b.ReportMetric(mbps(1), "copy-MB/s")
			b.ReportMetric(mbps(0)/mbps(1), "ratio")
			b.ReportMetric(float64(nodes[0].c.sendfileBytes()-sentBefore)/float64(max(bytes[0], 1)), "sendfile/consumed")
		})
	}
}
