package partition

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

func TestFetchAsAReplicaByABrokerOutsideTheReplicasIsRefused(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1, 2, 3)
	if _, err := r.Append(t.Context(), batch(3, plain), 1); err != nil {
		t.Fatal(err)
	}
	// Nothing is committed: only a replica may read above the high watermark.
	for _, tc := range []struct {
		replica, epoch int32
		want           *kerr.Error
	}{
		{9, -1, kerr.NotLeaderForPartition}, // no epoch in the request: NOT_LEADER_OR_FOLLOWER
		{9, 1, kerr.UnknownLeaderEpoch},     // the epoch matches, the replica does not
		{1, -1, kerr.NotLeaderForPartition}, // the leader itself is no follower
	} {
		res, err := r.Read(FetchRequest{Offset: 0, MaxBytes: 1 << 20, ReplicaID: tc.replica, CurrentLeaderEpoch: tc.epoch})
		if !errors.Is(err, tc.want) {
			t.Errorf("fetch as replica %d in epoch %d: %v (%d bytes), want %v", tc.replica, tc.epoch, err, len(res.Records), tc.want)
		}
		if len(res.Records) != 0 {
			t.Errorf("fetch as replica %d read %d bytes above the high watermark", tc.replica, len(res.Records))
		}
	}
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d after fetches by non-replicas", hw)
	}
}

func TestFollowerFetchPastTheLeaderEndChangesNothing(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1, 2)
	if _, err := r.Append(t.Context(), batch(3, plain), 1); err != nil {
		t.Fatal(err)
	}
	for _, follower := range []int32{2, 3} { // in the ISR, and out of it
		_, err := r.Read(FetchRequest{Offset: 10, MaxBytes: 1 << 20, ReplicaID: follower, CurrentLeaderEpoch: 1})
		if !errors.Is(err, kerr.OffsetOutOfRange) {
			t.Fatalf("follower %d fetching at 10 past the end 3: %v, want OFFSET_OUT_OF_RANGE", follower, err)
		}
	}
	// The follower holds nothing the leader knows of: the fetch must not count as a position.
	if hw := r.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d after a failed fetch past the log end, want 0", hw)
	}
	f.isr.none(t)
	// A good fetch still counts.
	fetch(t, r, 2, 3)
	if hw := r.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark %d after the follower fetched at the end, want 3", hw)
	}
}

func TestFollowerRestartedAtTheLeaderLogStartForgetsItsProducers(t *testing.T) {
	f := newFixture(t, 1)
	r := f.open(t)
	r.Apply(meta.Partition{Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 2, LeaderEpoch: 3, Epoch: 1})
	data := batch(2, records.Producer{ID: 4, Epoch: 0, Sequence: 0})
	if err := r.AppendReplicated(data, 2, 3); err != nil {
		t.Fatal(err)
	}
	if err := r.TruncateFullyAndStartAt(100); err != nil {
		t.Fatal(err)
	}
	if st := r.State(); st.LogStart != 100 || st.LEO != 100 || st.HW != 100 {
		t.Fatalf("after restarting at 100: %+v", st)
	}
	// Below the new start, TruncateTo restarts the log there too.
	if err := r.TruncateTo(50); err != nil {
		t.Fatal(err)
	}
	if st := r.State(); st.LogStart != 50 || st.LEO != 50 {
		t.Fatalf("after truncating to 50 below the start: %+v", st)
	}
	// Leader now: the batch is gone with its producer state, so its retry is written.
	r.Apply(meta.Partition{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 4, Epoch: 2})
	res, err := r.Append(t.Context(), data, 1)
	if err != nil || res.Duplicate || res.BaseOffset != 50 {
		t.Fatalf("retry of a batch the restart dropped: %+v, %v; want it written at 50", res, err)
	}
	if err := r.TruncateFullyAndStartAt(500); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("a leader emptied its log: %v", err)
	}
}
