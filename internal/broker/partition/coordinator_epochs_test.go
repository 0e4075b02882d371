package partition

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// coordinatorEpochOf is the coordinator epoch r reports for producer id (DescribeProducers).
func coordinatorEpochOf(t *testing.T, r *Replica, id int64) int32 {
	t.Helper()
	ps, err := r.Producers()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ProducerID == id {
			return p.CoordinatorEpoch
		}
	}
	t.Fatalf("producer %d unknown: %+v", id, ps)
	return 0
}

// TestAMarkerOfAnOlderCoordinatorEpochIsFencedOnTheLeaderAfterARestartAndOnAFollower: a leader
// refuses a marker whose coordinator epoch is older than the producer's last marker's with
// TRANSACTION_COORDINATOR_FENCED, and the refused marker neither enters the log nor closes the
// producer's open transaction; an equal or newer epoch is accepted; epochs are per producer; a
// restarted replica and a follower learn the epochs from the log, and a truncation takes back the
// epoch of the markers it removes.
func TestAMarkerOfAnOlderCoordinatorEpochIsFencedOnTheLeaderAfterARestartAndOnAFollower(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1)
	ctx := t.Context()
	fenced := func(r *Replica, pid int64, commit bool, coordinatorEpoch int32) {
		t.Helper()
		end := r.Log().EndOffset()
		if err := r.AppendMarker(ctx, pid, 0, commit, coordinatorEpoch); !errors.Is(err, kerr.TransactionCoordinatorFenced) {
			t.Fatalf("marker of producer %d from coordinator epoch %d: %v, want TRANSACTION_COORDINATOR_FENCED", pid, coordinatorEpoch, err)
		}
		if got := r.Log().EndOffset(); got != end {
			t.Fatalf("a fenced marker was written: log end %d, was %d", got, end)
		}
	}
	accepted := func(r *Replica, pid int64, commit bool, coordinatorEpoch int32) {
		t.Helper()
		if err := r.AppendMarker(ctx, pid, 0, commit, coordinatorEpoch); err != nil {
			t.Fatalf("marker of producer %d from coordinator epoch %d: %v", pid, coordinatorEpoch, err)
		}
	}

	mustAppend(t, r, txnData(1, records.Producer{ID: 7, Epoch: 0, Sequence: 0})) // 0
	accepted(r, 7, true, 3)                                                      // 1: commits the first transaction
	mustAppend(t, r, txnData(1, records.Producer{ID: 7, Epoch: 0, Sequence: 1})) // 2: the next one, same producer epoch
	// The deposed coordinator (epoch 2) of the first transaction retries its commit marker: it
	// must not commit the second transaction.
	fenced(r, 7, true, 2)
	if lso := r.LastStableOffset(); lso != 2 {
		t.Fatalf("after the fenced marker: LSO %d, want 2 (the second transaction still open)", lso)
	}
	accepted(r, 7, false, 3) // 3: the same coordinator epoch aborts it
	accepted(r, 7, true, 5)  // 4: a newer coordinator, no open transaction
	fenced(r, 7, true, 4)
	if lso := r.LastStableOffset(); lso != 5 {
		t.Fatalf("LSO %d, want 5", lso)
	}
	mustAppend(t, r, txnData(1, records.Producer{ID: 8, Epoch: 0, Sequence: 0})) // 5
	accepted(r, 8, true, 0)                                                      // 6: producer 8 has its own epoch
	if ce7, ce8 := coordinatorEpochOf(t, r, 7), coordinatorEpochOf(t, r, 8); ce7 != 5 || ce8 != 0 {
		t.Fatalf("coordinator epochs: producer 7 %d, producer 8 %d; want 5 and 0", ce7, ce8)
	}
	leaderLog, err := r.Log().Read(0, 1<<20, r.Log().EndOffset())
	if err != nil {
		t.Fatal(err)
	}

	// A restarted leader replays the epochs from its log.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := f.leader(t, 1)
	if ce := coordinatorEpochOf(t, r2, 7); ce != 5 {
		t.Fatalf("after a restart: producer 7's coordinator epoch %d, want 5", ce)
	}
	fenced(r2, 7, true, 4)

	// A follower learns them by replication; truncating the marker of epoch 5 away takes the
	// producer back to epoch 3, and the follower, now leader, fences by what its log holds.
	fol := followerOf(t, leaderLog, 7)
	if got := fol.txns.coordinatorEpochs; got[7] != 5 || got[8] != 0 {
		t.Fatalf("follower: coordinator epochs %v, want 7:5 8:0", got)
	}
	if err := fol.TruncateTo(4, 1); err != nil {
		t.Fatal(err)
	}
	fol.Apply(meta.Partition{Replicas: []int32{1, 2}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 2, Epoch: 2})
	if ce := coordinatorEpochOf(t, fol, 7); ce != 3 {
		t.Fatalf("after truncating to 4: producer 7's coordinator epoch %d, want 3", ce)
	}
	fenced(fol, 7, true, 2)
	accepted(fol, 7, true, 4)
}
