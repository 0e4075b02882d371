package integration

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/netcut"
)

// Kafka API keys of the steps of a transactional consume-transform-produce loop.
const (
	apiProduce         = 0
	apiAddOffsetsToTxn = 25
	apiEndTxn          = 26
	apiTxnOffsetCommit = 28
)

// eosConsumerCrashes is consume's exactly-once mode crashed at every step of its transactional
// loop: for each step, a copier built with consume.NewExactlyOnce copies a keyed input until it
// has committed two transactions, then its network is cut when it is about to send that step's
// request (or right after it), with no leave and no abort; a replacement with the same
// transactional id and group instance id finishes. A read_committed reader of the output, reading
// throughout, must find every input record exactly once, each key in order.
func eosConsumerCrashes(t *testing.T, c Cluster) {
	for _, step := range []struct {
		name  string
		key   int16
		after bool
	}{
		// Outputs written, offsets not added. franz-go adds the offsets with AddOffsetsToTxn on
		// a classic coordinator (the bundled broker), and lets TxnOffsetCommit add them under
		// transaction.version 2 (Kafka 4.4): the cut comes before whichever it sends.
		{"after-produce", apiAddOffsetsToTxn, false},
		{"after-offsets-added", apiTxnOffsetCommit, false}, // offsets added, TxnOffsetCommit not sent
		{"before-EndTxn", apiEndTxn, false},                // TxnOffsetCommit accepted, EndTxn not sent
		{"after-EndTxn", apiEndTxn, true},                  // EndTxn sent, the next request cut
		{"mid-window", apiProduce, true},                   // after a Produce of the window's outputs
	} {
		t.Run(step.name, func(t *testing.T) {
			const keys, perKey = 20, 40
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			adm := newAdmin(t, c)
			in, out, group := uniqueName("eos-in"), uniqueName("eos-out"), uniqueName("eos")
			createTopic(ctx, t, c, adm, in, 2, 3, hardened)
			createTopic(ctx, t, c, adm, out, 3, 3, hardened)
			seed(ctx, t, c, in, keys*perKey, keys)

			v := newTxnVerifier(keys * perKey)
			vctx, vcancel := context.WithCancel(ctx)
			vdone := make(chan error, 1)
			go func() { vdone <- v.read(vctx, c, kgo.ReadCommitted(), out) }()
			defer func() { vcancel(); <-vdone }()

			var d netcut.Dialer
			first := startEOSCopier(ctx, t, c, group, in, out, kgo.Dialer(d.Dial))
			waitUntil(ctx, t, "the first copier's two transactions", func() bool { return first.Stats().Commits >= 2 })
			if step.name == "after-produce" {
				d.CutBeforeAny(apiAddOffsetsToTxn, apiTxnOffsetCommit)
			} else {
				d.CutAt(step.key, step.after)
			}
			waitUntil(ctx, t, "the cut", d.Fired)
			startEOSCopier(ctx, t, c, group, in, out)
			if err := v.waitProgress(ctx, keys*perKey); err != nil {
				t.Fatalf("the replacement did not finish the copy: %v (read %d of %d)", err, v.count(), keys*perKey)
			}
			sleepCtx(ctx, 500*time.Millisecond) // a duplicate committed late is still seen
			v.mu.Lock()
			defer v.mu.Unlock()
			if len(v.dups) > 0 || len(v.outOfOrder) > 0 {
				t.Fatalf("%d records copied twice (e.g. %v), %d out of their key's order (e.g. %v)",
					len(v.dups), firstN(v.dups, 3), len(v.outOfOrder), firstN(v.outOfOrder, 3))
			}
			t.Logf("%d records copied exactly once, in key order, through a crash %s", len(v.seen), step.name)
		})
	}
}

// startEOSCopier runs a copier of group until the test ends: consume.NewExactlyOnce copying in to
// out with a 2 ms handler, a static member with one transactional id for the group, so that a
// replacement takes the crashed copier's place and fences it.
func startEOSCopier(ctx context.Context, t *testing.T, c Cluster, group, in, out string, opts ...kgo.Opt) *consume.Consumer {
	t.Helper()
	copyRecord := func(ctx context.Context, r *kgo.Record, o *consume.Output) error {
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		o.Produce(&kgo.Record{Topic: out, Key: r.Key, Value: r.Value})
		return nil
	}
	cons, err := consume.NewExactlyOnce(copyRecord,
		consume.KgoOpts(append([]kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100 * time.Millisecond),
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.InstanceID(group + "-copier"), kgo.SessionTimeout(6 * time.Second),
			kgo.TransactionalID(group + "-copier"), kgo.TransactionTimeout(10 * time.Second)}, opts...)...),
		consume.TxnInterval(50*time.Millisecond), consume.MaxBuffered(100))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := cons.Run(rctx); err != nil && rctx.Err() == nil {
			t.Logf("copier of %s: %v", group, err)
		}
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("a copier of %s did not stop within 30 s", group)
		}
	})
	return cons
}

// waitUntil polls cond every 20 ms until it holds, failing t when ctx ends first.
func waitUntil(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if !sleepCtx(ctx, 20*time.Millisecond) {
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}
