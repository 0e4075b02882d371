package txn

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
)

// discardStore accepts every append.
type discardStore struct{}

func (discardStore) Append(context.Context, []group.Record) error { return nil }

// TestLoadServesRequestsWhileItResumesPreparedTransactions loads a partition holding thousands
// of transactions while InitProducerID for new ids arrives: once Load has published the
// partition, requests add ids to it while Load still looks for the transactions it must finish.
// Run with -race: Load must not read the partition's map, or an entry's state, unlocked.
func TestLoadServesRequestsWhileItResumesPreparedTransactions(t *testing.T) {
	t.Parallel()
	f := &fixture{store: newFakeStore(), markers: &fakeMarkers{}, nextPID: 1000, now: time.UnixMilli(1_000_000)}
	c := f.coordinator(t)
	var recs []group.Record
	for i := range 5000 {
		st := Ongoing
		if i%1000 == 0 {
			st = PrepareCommit
		}
		k, v := Encode(Metadata{TransactionalID: fmt.Sprintf("old-%d", i), ProducerID: int64(i), ProducerEpoch: 0,
			TimeoutMillis: 60000, State: st, Partitions: []Partition{{Topic: "t", Partition: 0}},
			StartTimestamp: 1, LastUpdateTimestamp: 1})
		recs = append(recs, group.Record{Key: k, Value: v})
	}
	replay := func(yield func(group.Record) bool) error {
		for _, r := range recs {
			if !yield(r) {
				return nil
			}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var loaded atomic.Bool
	var served atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !loaded.Load() || i < 50; i++ {
				resp := c.InitProducerID(ctx, initReq(fmt.Sprintf("new-%d-%d", w, i), -1, -1))
				if resp.ErrorCode == 0 {
					served.Add(1)
				}
				if ctx.Err() != nil {
					return
				}
			}
		}()
	}
	if err := c.Load(ctx, 0, 0, discardStore{}, replay); err != nil {
		t.Fatal(err)
	}
	loaded.Store(true)
	wg.Wait()
	if served.Load() == 0 {
		t.Fatal("no InitProducerID was served once the partition was loaded")
	}
	// The five prepared commits are completed: their markers are written.
	deadline := time.Now().Add(10 * time.Second)
	for len(f.markers.all()) < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(f.markers.all()); n < 5 {
		t.Fatalf("%d markers written for the 5 transactions loaded in PrepareCommit", n)
	}
}
