package brokertest_test

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// produced is the key/sequence of one record, parsed from its value "key:seq".
type produced struct {
	key string
	seq int
}

func parseValue(t *testing.T, v []byte) produced {
	t.Helper()
	k, s, ok := strings.Cut(string(v), ":")
	n, err := strconv.Atoi(s)
	if !ok || err != nil {
		t.Fatalf("malformed value %q", v)
	}
	return produced{k, n}
}

// checkExactlyOnceInOrder fails unless got holds every key's sequence 0..n-1 exactly once, in
// order per key.
func checkExactlyOnceInOrder(t *testing.T, got []produced, keys, perKey int) {
	t.Helper()
	next := map[string]int{}
	for _, p := range got {
		if p.seq != next[p.key] {
			t.Fatalf("key %s: got sequence %d, want %d (duplicate, loss or reorder)", p.key, p.seq, next[p.key])
		}
		next[p.key]++
	}
	if len(next) != keys {
		t.Fatalf("got %d keys, want %d", len(next), keys)
	}
	for k, n := range next {
		if n != perKey {
			t.Fatalf("key %s: got %d records, want %d", k, n, perKey)
		}
	}
}

func TestFranzGoIdempotentProducerAndGroupConsumerLoseNothing(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic, keys, perKey = "franz", 20, 100
	if err := c.CreateTopic(ctx, topic, 3, 1, nil); err != nil {
		t.Fatal(err)
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var wg sync.WaitGroup
	errs := make(chan error, keys*perKey)
	for s := 0; s < perKey; s++ {
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("k%02d", k)
			wg.Add(1)
			prod.Produce(ctx, &kgo.Record{Key: []byte(key), Value: []byte(fmt.Sprintf("%s:%d", key, s))}, func(_ *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("produce: %v", err)
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g1"),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	var got []produced
	for len(got) < keys*perKey {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d before timeout", len(got), keys*perKey)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, parseValue(t, r.Value)) })
		if err := cons.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	cons.Close()
	checkExactlyOnceInOrder(t, got, keys, perKey)
	if committed, ends := committedOffsets(ctx, t, c, "g1", topic), endOffsets(ctx, t, c, topic); !maps.Equal(committed, ends) {
		t.Fatalf("committed offsets %v, want the end offsets %v", committed, ends)
	}

	// A new member of the same group resumes at the committed offsets: once it holds every
	// partition, the first record it reads is one produced after that.
	assigned := make(chan struct{})
	var once sync.Once
	again, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g1"),
		kgo.DisableAutoCommit(), kgo.FetchMaxWait(200*time.Millisecond), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			if len(a[topic]) == 3 {
				once.Do(func() { close(assigned) })
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	firstAfter := make(chan *kgo.Record, keys*perKey+1)
	go func() {
		for ctx.Err() == nil {
			fs := again.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) { firstAfter <- r })
		}
	}()
	select {
	case <-assigned:
	case <-ctx.Done():
		t.Fatal("the new member was never assigned the topic's 3 partitions")
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte("k00"), Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-firstAfter:
		if string(r.Value) != "after" {
			t.Fatalf("after committing everything, a new member read %q at offset %d first", r.Value, r.Offset)
		}
	case <-ctx.Done():
		t.Fatal("the new member never read the record produced after it joined")
	}
}
