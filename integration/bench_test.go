package integration

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkProduceAcksAll is the workload compared between the bundled
// cluster and real Apache Kafka on the same machine (KAFKAGUARD_TARGET picks
// the target): franz-go producing 1 KiB records with acks=all (idempotent)
// to a 3-partition topic with replication factor 3 and
// min.insync.replicas=2, at most 256 records outstanding. It reports MB/s,
// records/s and the per-record latency (send to acknowledgement) at p50 and
// p99.
func BenchmarkProduceAcksAll(b *testing.B) {
	c := sharedCluster(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	adm := newAdmin(b, c)
	topic := uniqueName("bench-acks-all")
	cfg := map[string]*string{"min.insync.replicas": ptr("2")}
	if resp, err := adm.CreateTopic(ctx, 3, 3, cfg, topic); err != nil || resp.Err != nil {
		b.Fatalf("create topic: %v %v", err, resp.Err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	value := make([]byte, 1024)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	// Warm up: metadata, connections, producer id, leaders known.
	for range 100 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}

	const outstanding = 256
	sem := make(chan struct{}, outstanding)
	lat := make([]time.Duration, b.N)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	b.SetBytes(int64(len(value)))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		sem <- struct{}{}
		wg.Add(1)
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			lat[i] = time.Since(sent)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatalf("produce: %v", firstErr)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.Logf("target=%s: %d records in %v", c.Target(), b.N, elapsed)
}

func ptr(s string) *string { return &s }
