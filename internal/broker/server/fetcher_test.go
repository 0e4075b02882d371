package server

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

func TestTruncationRequestedDuringATruncationIsNotLost(t *testing.T) {
	t.Parallel()
	key := tp{"t", 0}
	for _, again := range []struct {
		name string
		ask  func(f *fetcher)
	}{
		{"the fetch path marks it", func(f *fetcher) { f.markTruncate(key) }},
		{"a leader change re-adds it", func(f *fetcher) { f.remove(key); f.add(key) }},
	} {
		t.Run(again.name, func(t *testing.T) {
			f := &fetcher{parts: map[tp]uint64{}, wakeCh: make(chan struct{}, 1)} // no goroutine: the test is the round
			f.add(key)
			snap := map[tp]uint64{}
			f.snapshot(snap) // a round starts and truncates key for the request it saw...
			again.ask(f)     // ...while another truncation is asked for
			f.truncated(key, snap[key])
			if !f.needsTruncation(key) {
				t.Fatal("the truncation asked for during the round was cleared by the round's earlier one")
			}
			f.snapshot(snap)
			f.truncated(key, snap[key])
			if f.needsTruncation(key) {
				t.Fatal("a truncation done for the latest request is still pending")
			}
		})
	}
}

// followerWithEpochs opens a replica whose log holds epoch 1 at [0, 3) and epoch 3 at [3, 5)
// (two batches), following broker 2 in leader epoch 4.
func followerWithEpochs(t *testing.T) *partition.Replica {
	t.Helper()
	r, err := partition.Open(t.TempDir(), partition.Config{BrokerID: 1, Topic: "t", MinISR: 1, MaxMessageBytes: 1 << 20, ReplicaLagMax: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	for _, step := range []struct {
		epoch   int32
		batches []int
	}{{1, []int{3}}, {3, []int{1, 1}}} {
		r.Apply(meta.Partition{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 1, LeaderEpoch: step.epoch, Epoch: step.epoch})
		for _, n := range step.batches {
			recs := make([]records.Record, n)
			if _, err := r.Append(t.Context(), records.Build(recs, 1_700_000_000_000, records.NoProducer), 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.Apply(meta.Partition{Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 2, LeaderEpoch: 4, Epoch: 4})
	return r
}

func TestTruncateAgainstTheLeaderEpochEndKeepsOnlyWhatBothLogsAgreeOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		leaderEpoch int32
		leaderEnd   int64
		wantEnd     int64
		wantDone    bool
	}{
		{"the leader's epoch 1 ends past ours", 1, 4, 3, true},
		{"the leader's epoch 3 ends inside ours", 3, 4, 4, true},
		{"the leader's epoch 3 ends past ours", 3, 9, 5, true},
		{"we never had the leader's epoch 2: cut to the end of our epoch 1 and ask again", 2, 4, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := followerWithEpochs(t)
			done, err := r.TruncateAgainst(tc.leaderEpoch, tc.leaderEnd, 4)
			if err != nil {
				t.Fatal(err)
			}
			if end := r.Log().EndOffset(); end != tc.wantEnd || done != tc.wantDone {
				t.Fatalf("leader's epoch %d ends at %d: log end %d, done %v; want %d, %v", tc.leaderEpoch, tc.leaderEnd, end, done, tc.wantEnd, tc.wantDone)
			}
		})
	}
	r := followerWithEpochs(t)
	if _, err := r.TruncateAgainst(1, 0, 3); !errors.Is(err, kerr.FencedLeaderEpoch) || r.Log().EndOffset() != 5 {
		t.Fatalf("an answer from leader epoch 3 applied in epoch 4: %v, log end %d", err, r.Log().EndOffset())
	}
}
