// Package testkit holds the helpers kafkaguard's tests share: waiting until a condition holds,
// scraping a /metrics page, and reading a topic's end offsets, records and a group's committed
// offsets over the Kafka protocol, from any cluster's bootstrap addresses (the bundled one or real
// Kafka). It is imported only by tests.
//
// Every helper fails the test it is given (tb.Fatal) rather than returning an error, and closes
// the clients it opens. Their clients keep franz-go's metadata cache 100 ms instead of 5 s: kadm
// answers Metadata (and with it ListEndOffsets' leader lookup) from that cache, and a helper that
// polls while brokers learn of a topic or a new leader one by one would otherwise pin a stale
// answer for 5 s.
package testkit

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pollInterval is how often WaitFor and EndOffsets try again.
const pollInterval = 10 * time.Millisecond

// WaitFor polls cond every 10 ms until it holds. After timeout it fails tb with what it waited
// for, followed by the output of each details func (state worth seeing when the wait fails).
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool, details ...func() string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			for _, d := range details {
				msg += "\n" + d()
			}
			tb.Fatalf("timed out after %v waiting for %s%s", timeout, what, msg)
		}
		time.Sleep(pollInterval)
	}
}

// Client returns a franz-go client seeded with bootstrap and configured by opts, with a 100 ms
// metadata cache; it is closed when tb ends.
func Client(tb testing.TB, bootstrap []string, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	cl := newClient(tb, bootstrap, opts...)
	tb.Cleanup(cl.Close)
	return cl
}

// Admin returns a kadm client over Client(tb, bootstrap); it is closed when tb ends.
func Admin(tb testing.TB, bootstrap []string) *kadm.Client {
	tb.Helper()
	return kadm.NewClient(Client(tb, bootstrap))
}

func newClient(tb testing.TB, bootstrap []string, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(bootstrap...), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		tb.Fatalf("testkit: client: %v", err)
	}
	return cl
}

// EndOffsets returns the end offset (the high watermark) of each partition of topic. It asks
// again while the listing fails — a partition without a leader, a topic not known yet — and fails
// tb with the last error when ctx ends. opts configure its client further (TLS, SASL).
func EndOffsets(ctx context.Context, tb testing.TB, bootstrap []string, topic string, opts ...kgo.Opt) map[int32]int64 {
	tb.Helper()
	cl := newClient(tb, bootstrap, opts...)
	defer cl.Close()
	return endOffsets(ctx, tb, kadm.NewClient(cl), topic)
}

func endOffsets(ctx context.Context, tb testing.TB, adm *kadm.Client, topic string) map[int32]int64 {
	tb.Helper()
	for {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			out := map[int32]int64{}
			ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
			return out
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("testkit: end offsets of %s: %v", topic, err)
		case <-time.After(pollInterval):
		}
	}
}

// ReadAll reads every partition of topic from its start up to its end offset as EndOffsets
// gives it when ReadAll is called, and returns the records by partition, each partition's in
// offset order. Records written later are left out. Fetch errors are logged and retried; ctx
// ending first fails tb. opts configure its clients further (TLS, SASL).
func ReadAll(ctx context.Context, tb testing.TB, bootstrap []string, topic string, opts ...kgo.Opt) []*kgo.Record {
	tb.Helper()
	ends := EndOffsets(ctx, tb, bootstrap, topic, opts...)
	start := map[int32]kgo.Offset{}
	next := map[int32]int64{}
	for p, end := range ends {
		if end > 0 {
			start[p] = kgo.NewOffset().AtStart()
		}
	}
	if len(start) == 0 {
		return nil
	}
	cl := newClient(tb, bootstrap, append([]kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchMaxWait(100 * time.Millisecond)}, opts...)...)
	defer cl.Close()
	var out []*kgo.Record
	for remaining := len(start); remaining > 0; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("testkit: read %s up to %v before the deadline: reached %v", topic, ends, next)
		}
		fs.EachError(func(_ string, p int32, err error) { tb.Logf("testkit: fetch %s-%d: %v (retried)", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			end := ends[r.Partition]
			if r.Offset >= end {
				return
			}
			out = append(out, r)
			next[r.Partition] = r.Offset + 1
			if r.Offset+1 == end {
				remaining--
			}
		})
	}
	slices.SortStableFunc(out, func(a, b *kgo.Record) int { return int(a.Partition - b.Partition) })
	return out
}

// CommittedOffsets returns the offsets group has committed for the partitions of topic, failing
// tb if the fetch or a partition's offset fails.
func CommittedOffsets(ctx context.Context, tb testing.TB, bootstrap []string, group, topic string) map[int32]int64 {
	tb.Helper()
	cl := newClient(tb, bootstrap)
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		tb.Fatalf("testkit: committed offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			tb.Fatalf("testkit: committed offset of %s-%d: %v", o.Topic, o.Partition, o.Err)
		}
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}
