package server_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// rawConsume reads every partition from offset 0 to its end with plain Fetch requests (v12, 1
// MiB per partition, as franz-go's default) into one reused buffer, and returns the record-batch
// bytes received. It measures the broker and the socket, with almost no client work.
func rawConsume(b *testing.B, addr string, ends map[int32]int64, buf *[]byte) int64 {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	next := map[int32]int64{}
	var total int64
	var req []byte
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("bench"))
	for corr := int32(1); ; corr++ {
		fr := kmsg.NewPtrFetchRequest()
		fr.SetVersion(12)
		fr.ReplicaID, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = -1, 100, 1, 50<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = benchTopic
		for p, end := range ends {
			if next[p] < end {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p, next[p], 1<<20, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
		}
		if len(rt.Partitions) == 0 {
			return total
		}
		fr.Topics = append(fr.Topics, rt)
		req = f.AppendRequest(req[:0], fr, corr)
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		var size [4]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			b.Fatal(err)
		}
		n := int(binary.BigEndian.Uint32(size[:]))
		if cap(*buf) < n {
			*buf = make([]byte, n)
		}
		frame := (*buf)[:n]
		if _, err := io.ReadFull(conn, frame); err != nil {
			b.Fatal(err)
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(12)
		if err := resp.ReadFrom(frame[5:]); err != nil { // correlation id, header tags
			b.Fatal(err)
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				total += int64(len(p.RecordBatches))
				for raw := p.RecordBatches; len(raw) >= 61; {
					r := kbin.Reader{Src: raw}
					base, length := r.Int64(), r.Int32()
					last := int64(binary.BigEndian.Uint32(raw[23:27]))
					next[p.Partition] = base + last + 1
					raw = raw[12+int(length):]
				}
			}
		}
	}
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
