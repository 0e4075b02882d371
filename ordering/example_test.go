package ordering_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kafkaguard/kafkaguard/ordering"
)

func ExampleTracker() {
	t := ordering.NewTracker(100)
	for _, off := range []int64{100, 101, 102, 105} { // 103 and 104 were compacted away
		_ = t.Add(off)
	}
	_ = t.Done(101)
	_ = t.Done(105)
	cp := t.Checkpoint(ordering.DefaultMetadataMaxBytes)
	fmt.Println("commit", cp.Offset)

	// After a restart from that commit, 101 and 105 are not run again.
	resumed, _ := ordering.ResumeTracker(cp)
	for _, off := range []int64{100, 101, 102, 105} {
		fmt.Println(off, "skip:", resumed.Skip(off))
	}
	// Output:
	// commit 100
	// 100 skip: false
	// 101 skip: true
	// 102 skip: false
	// 105 skip: true
}

func ExampleDispatcher() {
	var (
		mu  sync.Mutex
		log = map[string][]int64{}
	)
	handle := func(_ context.Context, m ordering.Message[string]) error {
		if m.Value == "poison" {
			return errors.New("cannot parse")
		}
		mu.Lock()
		defer mu.Unlock()
		log[string(m.Key)] = append(log[string(m.Key)], m.Offset)
		return nil
	}
	d, err := ordering.New(handle, ordering.OrderBy(ordering.KeyOrder), ordering.Concurrency(4))
	if err != nil {
		panic(err)
	}
	defer d.Close()

	ctx := context.Background()
	tp := ordering.TopicPartition{Topic: "orders", Partition: 0}
	_ = d.Assign(tp, ordering.Checkpoint{Offset: 0})
	for i, v := range []string{"a", "b", "poison", "a", "b", "c"} {
		key := []string{"alice", "bob", "carol"}[i%3]
		_ = d.Submit(ctx, ordering.Message[string]{Topic: tp.Topic, Partition: tp.Partition, Offset: int64(i), Key: []byte(key), Value: v})
	}
	_ = d.Drain(ctx)

	for _, f := range d.Failures() {
		fmt.Println("failed:", f.Message.Offset, f.Err)
	}
	cp, _ := d.Checkpoint(tp)
	fmt.Println("commit", cp.Offset, "with metadata:", strings.HasPrefix(cp.Metadata, "kg1:"))

	// The failure is handed to a retry path; then the key moves on.
	_ = d.Resolve(tp, 2)
	_ = d.Drain(ctx)
	cp, _ = d.Checkpoint(tp)
	fmt.Println("commit", cp.Offset, "alice", log["alice"], "bob", log["bob"], "carol", log["carol"])
	// Output:
	// failed: 2 cannot parse
	// commit 2 with metadata: true
	// commit 6 alice [0 3] bob [1 4] carol [5]
}
