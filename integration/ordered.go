package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/ordering"
)

// orderedConsumption reads a keyed topic through an ordering.Dispatcher in
// KeyOrder mode with 16 workers: records of one key must be handled one at a
// time, in sequence, each exactly once; the checkpoints then equal the end
// offsets and survive a commit round trip through the group coordinator.
func orderedConsumption(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := newAdmin(t, c)
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rf := int16(min(3, len(brokers)))
	topic, group := uniqueName("ordered"), uniqueName("ordered-group")
	createTopic(ctx, t, c, adm, topic, 3, rf, map[string]string{"min.insync.replicas": fmt.Sprint(min(2, rf))})
	const keys, perKey = 20, 50
	produceKeyed(ctx, t, c, topic, keys, perKey)
	ends := settledEnds(ctx, t, adm, topic)

	var (
		mu       sync.Mutex
		got      = map[string][]int{}
		running  = map[string]bool{}
		overlaps []string
	)
	handle := func(_ context.Context, m ordering.Message[*kgo.Record]) error {
		key, seq, err := parseKeyedValue(string(m.Value.Value))
		if err != nil {
			return err
		}
		mu.Lock()
		if running[key] {
			overlaps = append(overlaps, keyedValue(key, seq))
		}
		running[key] = true
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) // let other keys overtake
		mu.Lock()
		running[key] = false
		got[key] = append(got[key], seq)
		mu.Unlock()
		return nil
	}
	d, err := ordering.New(handle, ordering.OrderBy(ordering.KeyOrder), ordering.Concurrency(16))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	start := map[int32]kgo.Offset{}
	for p := range ends {
		start[p] = kgo.NewOffset().At(0)
		if err := d.Assign(ordering.TopicPartition{Topic: topic, Partition: p}, ordering.Checkpoint{Offset: 0}); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	submitted := 0
	for submitted < keys*perKey {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("submitted %d of %d before: %v", submitted, keys*perKey, ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("fetch partition %d: %v", p, err) })
		for _, r := range fs.Records() {
			m := ordering.Message[*kgo.Record]{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r}
			if err := d.Submit(ctx, m); err != nil {
				t.Fatalf("submit %d/%d: %v", r.Partition, r.Offset, err)
			}
			submitted++
		}
	}
	if err := d.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if f := d.Failures(); len(f) > 0 {
		t.Fatalf("%d records failed, first: %+v", len(f), f[0])
	}

	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("records of one key ran concurrently: %v", firstN(overlaps, 10))
	}
	want := make([]int, perKey)
	for i := range want {
		want[i] = i
	}
	for k := range keys {
		key := fmt.Sprintf("k%02d", k)
		if !slices.Equal(got[key], want) {
			t.Errorf("key %s handled as %v, want 0..%d once each in order", key, got[key], perKey-1)
		}
	}

	offsets := kadm.Offsets{}
	for p, end := range ends {
		cp, err := d.Checkpoint(ordering.TopicPartition{Topic: topic, Partition: p})
		if err != nil {
			t.Fatal(err)
		}
		if cp.Offset != end {
			t.Errorf("partition %d checkpoint %d, want end offset %d", p, cp.Offset, end)
		}
		offsets.Add(kadm.Offset{Topic: topic, Partition: p, At: cp.Offset, LeaderEpoch: -1, Metadata: cp.Metadata})
	}
	resp, err := adm.CommitOffsets(ctx, group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("commit checkpoints: %v", err)
	}
	back, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = back.Error()
	}
	if err != nil {
		t.Fatalf("fetch committed checkpoints: %v", err)
	}
	for p, end := range ends {
		o, ok := back.Lookup(topic, p)
		if !ok || o.At != end {
			t.Errorf("partition %d: committed %+v, want offset %d", p, o, end)
		}
		cp, _ := d.Checkpoint(ordering.TopicPartition{Topic: topic, Partition: p})
		if o.Metadata != cp.Metadata {
			t.Errorf("partition %d: metadata came back as %q, committed %q", p, o.Metadata, cp.Metadata)
		}
	}
	t.Logf("%d keys × %d records handled in key order by 16 workers; checkpoints %v committed", keys, perKey, ends)
}
