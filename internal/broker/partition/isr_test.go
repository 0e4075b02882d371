package partition

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

func TestHighWatermarkWaitsForAFollowerWhoseISRJoinIsPending(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1, 2)
	if _, err := r.Append(t.Context(), batch(2, plain), 1); err != nil {
		t.Fatal(err)
	}
	fetch(t, r, 2, 2)
	if hw := r.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark %d, want 2", hw)
	}
	// Follower 3 catches up: the leader proposes it, and the controller has not answered yet
	// through Apply.
	if got := f.isr.next(t, func() { fetch(t, r, 3, 2) }); !slices.Equal(got, []int32{1, 2, 3}) {
		t.Fatalf("proposed ISR %v, want [1 2 3]", got)
	}
	if _, err := r.Append(t.Context(), batch(1, plain), 1); err != nil {
		t.Fatal(err)
	}
	// Long after, 3 has not fetched again; 2 has everything.
	f.clock.Advance(time.Minute)
	fetch(t, r, 2, 3)
	if hw := r.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark %d while 3, whose join is pending, has only 2 records: want 2", hw)
	}
	// The change commits: 3 is in the ISR and still holds the high watermark.
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 1, Epoch: 2})
	if hw := r.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark %d after 3 joined, want 2", hw)
	}
	fetch(t, r, 3, 3)
	if hw := r.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark %d once every member has 3 records, want 3", hw)
	}
}

func TestRefusedISRJoinStopsHoldingTheHighWatermark(t *testing.T) {
	for _, tc := range []struct {
		refusal error
		held    bool // the proposal stays pending until Apply brings the newer state
	}{
		{kerr.IneligibleReplica, false},
		{kerr.InvalidUpdateVersion, true},
		{kerr.FencedLeaderEpoch, true},
	} {
		t.Run(tc.refusal.(*kerr.Error).Message, func(t *testing.T) {
			f := newFixture(t, 1)
			answered := make(chan struct{})
			f.cfg.AlterISR = func(context.Context, int32, int32, []int32) error {
				defer close(answered)
				return tc.refusal
			}
			r := f.leader(t, 1, 2)
			if _, err := r.Append(t.Context(), batch(1, plain), 1); err != nil {
				t.Fatal(err)
			}
			fetch(t, r, 2, 1)
			fetch(t, r, 3, 1) // caught up: proposed, and refused
			<-answered
			for altering(r) { // the replica takes the answer in
				runtime.Gosched()
			}
			if _, err := r.Append(t.Context(), batch(1, plain), 1); err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(time.Minute)
			want := int64(2)
			if tc.held {
				want = 1
			}
			fetch(t, r, 2, 2)
			if hw := r.HighWatermark(); hw != want {
				t.Fatalf("high watermark %d after the refusal, want %d", hw, want)
			}
			// The newer state arrives: the proposal is over either way.
			r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, Epoch: 3})
			if hw := r.HighWatermark(); hw != 2 {
				t.Fatalf("high watermark %d after the newer state came, want 2", hw)
			}
		})
	}
}

func TestCaughtUpFollowerOfAnIdlePartitionStaysInTheISR(t *testing.T) {
	f := newFixture(t, 2)
	r := f.leader(t, 1, 2, 3)
	if _, err := r.Append(t.Context(), batch(1, plain), 1); err != nil {
		t.Fatal(err)
	}
	fetch(t, r, 2, 1)
	fetch(t, r, 3, 1)
	// Nothing is written for far longer than the lag bound, and the followers' last fetches
	// are long ago: both still have everything the leader has.
	f.clock.Advance(time.Hour)
	r.CheckISR()
	f.isr.none(t, r)
	done := appendWaiting(t, r, batch(1, plain))
	fetch(t, r, 2, 2)
	fetch(t, r, 3, 2)
	if err := <-done; err != nil {
		t.Fatalf("acks=all on the idle partition: %v", err)
	}

	// A write arrives and follower 3 does not fetch it: it no longer has the leader's log end,
	// and it last caught up an hour ago, so it leaves.
	if _, err := r.Append(t.Context(), batch(1, plain), 1); err != nil {
		t.Fatal(err)
	}
	fetch(t, r, 2, 3)
	f.clock.Advance(time.Hour)
	fetch(t, r, 2, 3)
	if got := f.isr.next(t, r.CheckISR); !slices.Equal(got, []int32{1, 2}) {
		t.Fatalf("proposed ISR %v, want [1 2]", got)
	}
}

func TestHighWatermarkStaysWhileTheISRIsBelowMinInsyncReplicas(t *testing.T) {
	f := newFixture(t, 2)
	r := f.leader(t, 1)
	// acks=1 does not look at the ISR: the leader takes the write, but with the ISR below
	// min.insync.replicas nothing becomes committed (Kafka >= 3.7, KAFKA-15583).
	if _, err := r.Append(t.Context(), batch(1, plain), 1); err != nil {
		t.Fatal(err)
	}
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d with ISR [1] below min.insync.replicas=2, want 0", hw)
	}
	if n := consume(t, r, 0); n != 0 {
		t.Fatalf("a consumer read %d records written below min.insync.replicas", n)
	}
	// Follower 2 is back in the ISR and has the record: it is committed.
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, Epoch: 2})
	fetch(t, r, 2, 1)
	if hw := r.HighWatermark(); hw != 1 {
		t.Fatalf("high watermark %d with ISR [1 2] at LEO 1, want 1", hw)
	}
}

func TestMinInsyncReplicasIsCappedAtTheReplicationFactor(t *testing.T) {
	f := newFixture(t, 2)
	r := f.open(t)
	r.Apply(meta.Partition{Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 1, Epoch: 1})
	// One replica, min.insync.replicas=2: Kafka's effectiveMinIsr is 1, so acks=all works.
	res, err := r.Append(t.Context(), batch(2, plain), -1)
	if err != nil || res.BaseOffset != 0 {
		t.Fatalf("acks=all on a single-replica topic with min.insync.replicas=2: %+v, %v", res, err)
	}
	if hw := r.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark %d, want 2", hw)
	}
}

// TestFollowerRemovedFromTheISRHoldsTheHighWatermarkOnlyForTheLagBound: a follower the controller
// took out of the ISR (it died: its broker was fenced) still counts for the high watermark while
// it is caught up (Kafka's maybeIncrementLeaderHW counts caught-up replicas outside the ISR), but
// only for replica.lag.time.max.ms; once that passes, the leader's periodic ISR check lets the
// high watermark move and answers the acks=all produce waiting for it, even if nothing else
// happens on the partition.
func TestFollowerRemovedFromTheISRHoldsTheHighWatermarkOnlyForTheLagBound(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1, 2)
	if _, err := r.Append(t.Context(), batch(1, plain), 1); err != nil {
		t.Fatal(err)
	}
	fetch(t, r, 2, 1)
	// Broker 2 dies; the controller fences it and takes it out of the ISR.
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 1, Epoch: 2})
	done := appendWaiting(t, r, batch(1, plain))
	if hw := r.HighWatermark(); hw != 1 {
		t.Fatalf("high watermark %d right after broker 2 left the ISR, want 1 (it was caught up moments ago)", hw)
	}
	f.clock.Advance(f.cfg.ReplicaLagMax + time.Second)
	r.CheckISR()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("acks=all: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("acks=all still waiting past the lag bound of the dead follower; high watermark %d, log end %d", r.HighWatermark(), r.State().LEO)
	}
}

// TestFencedFollowerOutsideTheISRDoesNotHoldTheHighWatermark: as Kafka's
// shouldWaitForReplicaToJoinIsr, only a broker that may join the ISR (registered and not fenced:
// isReplicaIsrEligible) holds the high watermark from outside it. A follower whose broker died
// and was fenced, and so taken out of the ISR, holds nothing, however recently it caught up.
func TestFencedFollowerOutsideTheISRDoesNotHoldTheHighWatermark(t *testing.T) {
	f := newFixture(t, 1)
	fenced := map[int32]bool{}
	f.cfg.IsrEligible = func(id int32) bool { return !fenced[id] }
	r := f.leader(t, 1, 2)
	if _, err := r.Append(t.Context(), batch(1, plain), 1); err != nil {
		t.Fatal(err)
	}
	fetch(t, r, 2, 1)
	fenced[2] = true
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 1, Epoch: 2})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := r.Append(ctx, batch(1, plain), -1); err != nil {
		t.Fatalf("acks=all with the fenced follower out of the ISR: %v (high watermark %d)", err, r.HighWatermark())
	}
}
