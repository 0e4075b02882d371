package brokertest_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// endOffsets returns each partition's high watermark, read with kadm.
func endOffsets(ctx context.Context, t *testing.T, c *kafkatest.Cluster, topic string) map[int32]int64 {
	t.Helper()
	adm := newAdmin(t, c)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s-%d: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// committedOffsets returns group's committed offsets for topic, read with kadm.
func committedOffsets(ctx context.Context, t *testing.T, c *kafkatest.Cluster, group, topic string) map[int32]int64 {
	t.Helper()
	adm := newAdmin(t, c)
	resp, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			t.Fatalf("committed offset of %s-%d: %v", o.Topic, o.Partition, o.Err)
		}
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

// newAdmin returns a kadm client seeded with the brokers that run now.
func newAdmin(t *testing.T, c *kafkatest.Cluster) *kadm.Client {
	t.Helper()
	var seeds []string
	for _, b := range c.Brokers() {
		if b.Alive {
			seeds = append(seeds, b.Address)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// waitFor polls cond every 10ms until it holds, failing the test with what after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// firstRecord returns the first record of a partition, read with franz-go.
func firstRecord(ctx context.Context, t *testing.T, c *kafkatest.Cluster, topic string, partition int32) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		fs := cl.PollRecords(ctx, 1)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record in %s-%d: %v", topic, partition, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch error (retried): %v", err) })
		if rs := fs.Records(); len(rs) > 0 {
			return rs[0]
		}
	}
}
