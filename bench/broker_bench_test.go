package bench_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// recordSize is the value size of every benchmark record.
const recordSize = 1024

// maxInFlight bounds the records a pipelined producer has outstanding, so the client's buffer,
// not the benchmark loop, paces it.
const maxInFlight = 4096

// value returns a record value of random bytes; producers send it uncompressed, so the broker
// stores and the disk measurement writes the same number of bytes.
func value() []byte {
	v := make([]byte, recordSize)
	_, _ = rand.Read(v)
	return v
}

// startCluster starts a cluster with data in dir and one topic of one partition replicated on
// every broker.
func startCluster(b *testing.B, brokers int, dir string) (*kafkatest.Cluster, string) {
	b.Helper()
	c := kafkatest.NewCluster(b, kafkatest.Brokers(brokers), kafkatest.DataDir(dir),
		kafkatest.BrokerConfig("min.insync.replicas", fmt.Sprint(min(brokers, 2))))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "bench"
	if err := c.CreateTopic(ctx, topic, 1, int16(brokers), nil); err != nil {
		b.Fatal(err)
	}
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return len(i.ISR) == brokers && i.HW >= 0 }); err != nil {
		b.Fatal(err)
	}
	return c, topic
}

func producer(b *testing.B, c *kafkatest.Cluster, topic string, acks kgo.Acks) *kgo.Client {
	b.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(acks),
		kgo.MaxBufferedRecords(maxInFlight), kgo.ProducerBatchCompression(kgo.NoCompression())}
	if acks != kgo.AllISRAcks() {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	// Warm up: metadata, connections, producer id.
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: value()}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	return cl
}

// latencies collects per-record produce latencies.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// report adds p50-ms and p99-ms to the benchmark's metrics.
func (l *latencies) report(b *testing.B) {
	slices.Sort(l.d)
	if len(l.d) == 0 {
		return
	}
	at := func(q float64) float64 {
		return float64(l.d[min(len(l.d)-1, int(q*float64(len(l.d))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// producePipelined produces b.N records without waiting for each ack (the client batches them),
// recording each record's time from Produce to its acknowledgement, and returns the first error.
func producePipelined(b *testing.B, cl *kgo.Client, lat *latencies) error {
	b.Helper()
	v := value()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	ctx := context.Background()
	for range b.N {
		wg.Add(1)
		start := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				errOnce.Do(func() { firstErr = err })
				return
			}
			if lat != nil {
				lat.add(time.Since(start))
			}
		})
	}
	wg.Wait()
	return firstErr
}

// diskWriteMBs writes a file of size bytes in dir, in 1 MiB writes, and returns the speed in MB/s
// (10^6 bytes per second, as the testing package's MB/s). With fsync the time includes one fsync
// at the end; without it the bytes are left in the page cache, as the broker leaves its log.
func diskWriteMBs(b *testing.B, dir string, size int64, fsync bool) float64 {
	b.Helper()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	path := filepath.Join(dir, "raw-disk-write")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(path)
	start := time.Now()
	for left := size; left > 0; left -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), left)]); err != nil {
			b.Fatal(err)
		}
	}
	if fsync {
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return float64(size) / 1e6 / elapsed.Seconds()
}

// BenchmarkProduceOneBrokerVersusRawDisk produces 1 KiB records with acks=1 through a 1-broker
// cluster (MB/s is the broker's), then writes a file of the same size to the same directory the
// way the broker writes its log: sequential writes left in the page cache, no fsync (Kafka's
// default, flush.messages unset). disk-MB/s is that raw speed and broker/disk, the ratio it is
// judged by, the broker's share of it. disk-fsync-MB/s is the same write followed by one fsync,
// for reference: what a durable-on-ack log would pay at best.
func BenchmarkProduceOneBrokerVersusRawDisk(b *testing.B) {
	dir := b.TempDir()
	c, topic := startCluster(b, 1, dir)
	cl := producer(b, c, topic, kgo.LeaderAck())
	b.SetBytes(recordSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := producePipelined(b, cl, nil); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	size := int64(b.N) * recordSize
	brokerMBs := float64(size) / 1e6 / elapsed.Seconds()
	diskMBs := diskWriteMBs(b, dir, size, false)
	b.ReportMetric(diskMBs, "disk-MB/s")
	b.ReportMetric(brokerMBs/diskMBs, "broker/disk")
	b.ReportMetric(diskWriteMBs(b, dir, size, true), "disk-fsync-MB/s")
}

// BenchmarkProduceThreeBrokers produces 1 KiB records to a partition replicated on three brokers
// (min.insync.replicas=2), with acks=1 and with acks=all (idempotent), each pipelined (the
// client batches and keeps requests in flight) and one record at a time (ProduceSync), and
// reports MB/s and the p50/p99 latency from Produce to acknowledgement.
func BenchmarkProduceThreeBrokers(b *testing.B) {
	for _, acks := range []struct {
		name string
		acks kgo.Acks
	}{{"acks=1", kgo.LeaderAck()}, {"acks=all", kgo.AllISRAcks()}} {
		b.Run(acks.name+"/pipelined", func(b *testing.B) {
			c, topic := startCluster(b, 3, b.TempDir())
			cl := producer(b, c, topic, acks.acks)
			lat := &latencies{d: make([]time.Duration, 0, b.N)}
			b.SetBytes(recordSize)
			b.ResetTimer()
			if err := producePipelined(b, cl, lat); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			lat.report(b)
		})
		b.Run(acks.name+"/one-at-a-time", func(b *testing.B) {
			c, topic := startCluster(b, 3, b.TempDir())
			cl := producer(b, c, topic, acks.acks)
			lat := &latencies{d: make([]time.Duration, 0, b.N)}
			v := value()
			ctx := context.Background()
			b.SetBytes(recordSize)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err != nil {
					b.Fatal(err)
				}
				lat.add(time.Since(start))
			}
			b.StopTimer()
			lat.report(b)
		})
	}
}
