package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/produce"
)

// produceKeyed writes keys×perKey keyed records with the NoLoss preset and
// fails t unless every one is acknowledged.
func produceKeyed(ctx context.Context, t *testing.T, c Cluster, topic string, keys, perKey int) {
	t.Helper()
	p, err := produce.New(ctx, produce.NoLoss, kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	errs := make(chan error, keys*perKey)
	for seq := range perKey {
		for k := range keys {
			key := fmt.Sprintf("k%02d", k)
			p.SendAsync(ctx, &kgo.Record{Key: []byte(key), Value: []byte(keyedValue(key, seq))}, func(_ *kgo.Record, err error) { errs <- err })
		}
	}
	for range keys * perKey {
		if err := <-errs; err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

// groupMember returns a consumer group member that never commits on its own.
func groupMember(t *testing.T, c Cluster, group, topic string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
		// The group's minimum on both targets, not franz-go's 45 s: a coordinator killed just
		// after a member left may come back without the leave (the empty group is written
		// after the LeaveGroup answer, on Kafka too), and the next member then waits out the
		// departed one's session.
		kgo.SessionTimeout(6*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// groupManualCommits: member A processes half the records, committing each
// after processing it, and leaves; the group coordinator is SIGKILLed;
// member B joins the same group and must start exactly at A's commits, so
// that together they process every record once.
func groupManualCommits(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	adm := newAdmin(t, c)
	topic, group := uniqueName("group-commits"), uniqueName("group")
	createTopic(ctx, t, c, adm, topic, 3, 3, hardened)
	const keys, perKey = 30, 10
	const total, half = keys * perKey, keys * perKey / 2
	produceKeyed(ctx, t, c, topic, keys, perKey)

	type pos struct {
		p int32
		o int64
	}
	processed := map[pos]string{}

	a := groupMember(t, c, group, topic)
	for len(processed) < half {
		fs := a.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("member A processed %d of %d before: %v", len(processed), half, ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("member A fetch partition %d: %v", p, err) })
		for _, r := range fs.Records() {
			if len(processed) == half {
				break // fetched, not processed: must not be committed
			}
			processed[pos{r.Partition, r.Offset}] = string(r.Value)
			if err := a.CommitRecords(ctx, r); err != nil {
				t.Fatalf("member A commit %d/%d: %v", r.Partition, r.Offset, err)
			}
		}
	}
	a.Close() // leaves the group; auto-commit is off, so nothing more is committed

	committed := committedOffsets(ctx, t, adm, group, topic)
	var sum int64
	for _, o := range committed {
		sum += o
	}
	if sum != half {
		t.Fatalf("committed offsets %v add up to %d, want %d (one per processed record)", committed, sum, half)
	}

	coord := adm.FindGroupCoordinators(ctx, group)
	if err := coord.Error(); err != nil {
		t.Fatalf("find coordinator: %v", err)
	}
	victim := coord[group].NodeID
	if err := c.Kill(ctx, victim); err != nil {
		skipIfUnsupported(t, fmt.Sprintf("kill coordinator %d", victim), err)
	}
	t.Logf("member A processed and committed %d records (offsets %v); killed group coordinator %d",
		half, committed, victim)

	b := groupMember(t, c, group, topic)
	defer b.Close()
	firstB := map[int32]int64{}
	for len(processed) < total {
		fs := b.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("member B: %d of %d records processed before: %v", len(processed), total, ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("member B fetch partition %d: %v", p, err) })
		for _, r := range fs.Records() {
			if _, ok := firstB[r.Partition]; !ok {
				firstB[r.Partition] = r.Offset
			}
			k := pos{r.Partition, r.Offset}
			if prev, dup := processed[k]; dup {
				t.Fatalf("member B got partition %d offset %d (%s) that A had processed and committed (%s)", r.Partition, r.Offset, r.Value, prev)
			}
			processed[k] = string(r.Value)
		}
	}
	for p, first := range firstB {
		// A partition A never committed starts at the reset offset, 0.
		if want := committed[p]; first != want {
			t.Errorf("member B started partition %d at offset %d, want A's commit %d", p, first, want)
		}
	}
	if err := b.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("member B commit: %v", err)
	}
	// A fresh admin client: franz-go v1.22.3 keeps sending a client's
	// OffsetFetch to the group coordinator it cached, even once that
	// broker is dead and FindCoordinator names another (seen on the
	// bundled broker; new clients find the new coordinator at once).
	adm = newAdmin(t, c)
	after := committedOffsets(ctx, t, adm, group, topic)
	if err := c.Restart(ctx, victim); err != nil {
		t.Fatalf("restart broker %d: %v", victim, err)
	}
	ends := settledEnds(ctx, t, adm, topic)
	if !mapsEqual(after, ends) {
		t.Errorf("after B the group committed %v, want the end offsets %v", after, ends)
	}
	seen := map[string]bool{}
	for _, v := range processed {
		seen[v] = true
	}
	if len(seen) != total {
		t.Fatalf("A and B processed %d distinct records, want %d", len(seen), total)
	}
	t.Logf("member B resumed at %v after the coordinator moved; %d records processed once each", firstB, total)
}

// committedOffsets returns group's committed offsets on topic by partition,
// retrying while the coordinator moves.
func committedOffsets(ctx context.Context, t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	tries := 0
	for {
		resp, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			err = resp.Error()
		}
		if err == nil {
			out := map[int32]int64{}
			resp.Each(func(o kadm.OffsetResponse) {
				if o.Topic == topic {
					out[o.Partition] = o.At
				}
			})
			return out
		}
		if tries++; tries%25 == 1 {
			t.Logf("fetch committed offsets of %s: %v (retrying)", group, err)
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			t.Fatalf("fetch committed offsets of %s: %v", group, err)
		}
	}
}
