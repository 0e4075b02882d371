package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/produce"
)

// hardened are the topic settings of the no-loss checklist.
var hardened = map[string]string{"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}

// noLossLeaderKilled streams keyed records with the NoLoss preset into an
// RF=3, min.insync.replicas=2 topic and SIGKILLs the leader of partition 0
// once a third of them were acknowledged. Every acknowledged record must be
// read back exactly once, in per-key order.
func noLossLeaderKilled(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	adm := newAdmin(t, c)
	topic := uniqueName("noloss-kill")
	before := createTopic(ctx, t, c, adm, topic, 3, 3, hardened)
	victim := before[0].Leader
	t.Logf("topic %s: %v; will kill broker %d", topic, before, victim)

	p, err := produce.New(ctx, produce.NoLoss, kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())

	const keys, perKey = 30, 100
	const total = keys * perKey
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		failures []error
		wg       sync.WaitGroup
	)
	ackedAtKill, sentAfterKill := -1, 0
	for seq := 0; seq < perKey; seq++ {
		if seq == perKey/3 {
			// Kill between two rounds, once what was sent so far is
			// acknowledged: records before the kill were surely on the
			// leader, and two thirds of the stream is still to come.
			for {
				mu.Lock()
				n := len(acked) + len(failures)
				mu.Unlock()
				if n == seq*keys || !sleepCtx(ctx, 10*time.Millisecond) {
					break
				}
			}
			mu.Lock()
			ackedAtKill = len(acked)
			mu.Unlock()
			if err := c.Kill(ctx, victim); err != nil {
				skipIfUnsupported(t, fmt.Sprintf("kill leader %d", victim), err)
			}
		}
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("k%02d", k)
			wg.Add(1)
			if ackedAtKill >= 0 {
				sentAfterKill++
			}
			p.SendAsync(ctx, &kgo.Record{Key: []byte(key), Value: []byte(keyedValue(key, seq))}, func(r *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err)
					return
				}
				acked[string(r.Value)] = true
			})
		}
		time.Sleep(5 * time.Millisecond) // a stream, not one burst
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("NoLoss gave up on %d records, first: %v", len(failures), failures[0])
	}
	t.Logf("all %d records acknowledged; broker %d was killed after %d acks, %d records were sent after the kill",
		len(acked), victim, ackedAtKill, sentAfterKill)

	after := waitTopic(ctx, t, adm, topic, "a new leader for partition 0", func(ps partitionState) bool {
		return ps.Leader >= 0 && ps.Leader != victim
	})
	if after[0].Leader == victim || after[0].Epoch <= before[0].Epoch {
		t.Fatalf("partition 0 did not fail over: before %v, after %v", before[0], after[0])
	}
	t.Logf("partition 0 failed over: %v -> %v", before[0], after[0])
	if err := c.Restart(ctx, victim); err != nil {
		t.Fatalf("restart broker %d: %v", victim, err)
	}
	v := check(acked, readAll(ctx, t, c, adm, topic))
	t.Logf("verdict: %v", v)
	if !v.clean() {
		t.Fatalf("NoLoss with the leader killed: %v\nlost %v\nduplicated %v\nreordered %v\nmalformed %v",
			v, firstN(v.Lost, 10), firstN(v.Duplicated, 10), firstN(v.Reordered, 10), firstN(v.Malformed, 10))
	}
	if v.Read != total {
		t.Fatalf("read %d records, want %d (every record was acknowledged once)", v.Read, total)
	}
}

// leaderAckLoss reproduces the acks=1 loss: with both followers of a
// partition stopped from replicating, the leader acknowledges records only it
// holds; it then dies, a follower takes over without them, and the old
// leader truncates them when it returns.
func leaderAckLoss(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	adm := newAdmin(t, c)
	topic := uniqueName("leaderack-loss")
	before := createTopic(ctx, t, c, adm, topic, 1, 3, map[string]string{"unclean.leader.election.enable": "false"})[0]
	leader, followers := before.Leader, before.followers()
	t.Logf("topic %s: %v", topic, before)

	p, err := produce.New(ctx, produce.LeaderAck, kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.Send(ctx, &kgo.Record{Value: []byte("replicated")}); err != nil {
		t.Fatal(err)
	}
	waitEnd(ctx, t, adm, topic, 0, 1) // every replica has it

	for _, f := range followers {
		skipIfUnsupported(t, fmt.Sprintf("pause follower %d", f), c.PauseReplication(ctx, f))
	}
	// A follower's fetch parks at the leader for up to
	// replica.fetch.wait.max.ms (500 ms) and is answered as soon as records
	// arrive. Sent into a frozen (SIGSTOPped) follower's socket, that answer
	// would be read when it resumes, and the first record replicated after
	// all: let the parked fetches expire first.
	sleepCtx(ctx, time.Second)
	var leaderOnly []string
	for i := range 5 {
		v := fmt.Sprintf("leader-only-%d", i)
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		err := p.Send(sctx, &kgo.Record{Value: []byte(v)})
		scancel()
		if err != nil {
			t.Fatalf("acks=1 send while followers are paused: %v", err)
		}
		leaderOnly = append(leaderOnly, v)
	}
	t.Logf("leader %d acknowledged %d records its followers %v never copied", leader, len(leaderOnly), followers)
	if err := c.Kill(ctx, leader); err != nil {
		t.Fatalf("kill leader %d: %v", leader, err)
	}
	for _, f := range followers {
		if err := c.ResumeReplication(ctx, f); err != nil {
			t.Fatalf("resume follower %d: %v", f, err)
		}
	}
	after := waitTopic(ctx, t, adm, topic, "a follower to take over", func(ps partitionState) bool {
		return ps.Leader >= 0 && ps.Leader != leader
	})[0]
	t.Logf("new leader: %v", after)
	if err := c.Restart(ctx, leader); err != nil {
		t.Fatalf("restart old leader %d: %v", leader, err)
	}
	read := readAll(ctx, t, c, adm, topic)[0]
	var got []string
	for _, r := range read {
		got = append(got, string(r.Value))
	}
	if !slices.Equal(got, []string{"replicated"}) {
		t.Fatalf("after the failover the partition holds %q; want only %q: the %d acks=1 records should be lost",
			got, "replicated", len(leaderOnly))
	}
	t.Logf("acks=1 loss reproduced: %d acknowledged records gone after leader %d died (new leader %d, epoch %d -> %d)",
		len(leaderOnly), leader, after.Leader, before.Epoch, after.Epoch)
}

// noLossNeverAcksUncopied runs the same schedule with the NoLoss preset: no
// record is acknowledged while the followers cannot copy it, and after the
// failover every acknowledged record is there.
func noLossNeverAcksUncopied(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	adm := newAdmin(t, c)
	topic := uniqueName("noloss-pause")
	before := createTopic(ctx, t, c, adm, topic, 1, 3, hardened)[0]
	leader, followers := before.Leader, before.followers()
	t.Logf("topic %s: %v", topic, before)

	p, err := produce.New(ctx, produce.NoLoss, kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.Send(ctx, &kgo.Record{Value: []byte("replicated")}); err != nil {
		t.Fatal(err)
	}
	for _, f := range followers {
		skipIfUnsupported(t, fmt.Sprintf("pause follower %d", f), c.PauseReplication(ctx, f))
	}
	// Shorter than replica.lag.time.max.ms (5 s on both targets): the paused
	// followers stay in the ISR, so the leader must wait for them.
	sctx, scancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	err = p.Send(sctx, &kgo.Record{Value: []byte("uncopied")})
	scancel()
	if err == nil {
		t.Fatal("NoLoss acknowledged a record although no follower could copy it")
	}
	if !errors.Is(err, produce.ErrOutcomeUnknown) {
		t.Fatalf("NoLoss send while followers are paused: %v; want an outcome-unknown error (the leader may hold it)", err)
	}
	t.Logf("while followers are paused, NoLoss reports: %v", err)
	if err := c.Kill(ctx, leader); err != nil {
		t.Fatalf("kill leader %d: %v", leader, err)
	}
	for _, f := range followers {
		if err := c.ResumeReplication(ctx, f); err != nil {
			t.Fatalf("resume follower %d: %v", f, err)
		}
	}
	waitTopic(ctx, t, adm, topic, "a follower to take over", func(ps partitionState) bool { return ps.Leader >= 0 && ps.Leader != leader })
	if err := c.Restart(ctx, leader); err != nil {
		t.Fatalf("restart old leader %d: %v", leader, err)
	}
	read := readAll(ctx, t, c, adm, topic)[0]
	if len(read) == 0 || string(read[0].Value) != "replicated" {
		t.Fatalf("the acknowledged record is gone: partition holds %v", values(read))
	}
	t.Logf("after failover the partition holds %q (the unacknowledged record may or may not be there)", values(read))
}

func values(rs []*kgo.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Value)
	}
	return out
}
