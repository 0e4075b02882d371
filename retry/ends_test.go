package retry_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// endOffsets lists the end offsets of topic, retrying while a partition has
// no leader (a loaded machine can make the test cluster re-elect).
func endOffsets(t *testing.T, ctx context.Context, cl *kgo.Client, topic string) map[int32]int64 {
	t.Helper()
	for {
		offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		if err == nil {
			err = offs.Error()
		}
		if err == nil {
			out := map[int32]int64{}
			offs.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatal(err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitCommittedAtEnd waits until group has committed the end offset of every
// partition of topic: every record was finished, so nothing is left that
// the group's consumer could still run. Nothing is written to topic
// meanwhile.
func waitCommittedAtEnd(t *testing.T, e *env, group, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends := endOffsets(t, ctx, e.cl, topic)
	adm := kadm.NewClient(e.cl)
	waitFor(t, 20*time.Second, "the commit to reach the end of "+topic, func() bool {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		for p, end := range ends {
			if o, ok := offs.Lookup(topic, p); end > 0 && (!ok || o.At != end) {
				return false
			}
		}
		return true
	})
}
