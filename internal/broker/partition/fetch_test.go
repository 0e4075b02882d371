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
	f.isr.none(t, r)
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
	if err := r.TruncateFullyAndStartAt(100, 3); err != nil {
		t.Fatal(err)
	}
	if st := r.State(); st.LogStart != 100 || st.LEO != 100 || st.HW != 100 {
		t.Fatalf("after restarting at 100: %+v", st)
	}
	// Below the new start, TruncateTo restarts the log there too.
	if err := r.TruncateTo(50, 3); err != nil {
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
	if err := r.TruncateFullyAndStartAt(500, 4); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("a leader emptied its log: %v", err)
	}
}

func TestFetchWhoseLastFetchedEpochDivergesGetsTheEpochEndAndNoRecords(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1, 2)
	// The leader's history: epoch 1 holds [0, 3), epoch 3 holds [3, 5).
	if _, err := r.Append(t.Context(), batch(3, plain), 1); err != nil {
		t.Fatal(err)
	}
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 3, Epoch: 2})
	if _, err := r.Append(t.Context(), batch(2, plain), 1); err != nil {
		t.Fatal(err)
	}
	read := func(offset int64, lastEpoch int32) (ReadResult, error) {
		return r.Read(FetchRequest{Offset: offset, MaxBytes: 1 << 20, ReplicaID: 2, CurrentLeaderEpoch: 3, HasLastFetchedEpoch: true, LastFetchedEpoch: lastEpoch})
	}
	for _, tc := range []struct {
		name      string
		offset    int64
		lastEpoch int32
		want      EpochEndOffset
	}{
		// A deposed leader wrote [3, 4) in epoch 2, which the leader never had.
		{"epoch unknown to the leader", 4, 2, EpochEndOffset{Epoch: 1, EndOffset: 3}},
		// The follower has epoch 1 up to 5; the leader's epoch 1 ends at 3.
		{"epoch ends below the fetch offset", 5, 1, EpochEndOffset{Epoch: 1, EndOffset: 3}},
	} {
		res, err := read(tc.offset, tc.lastEpoch)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.DivergingEpoch == nil || *res.DivergingEpoch != tc.want || len(res.Records) != 0 {
			t.Fatalf("%s: diverging epoch %+v with %d bytes, want %+v and no records", tc.name, res.DivergingEpoch, len(res.Records), tc.want)
		}
		if hw := r.HighWatermark(); hw != 0 {
			t.Fatalf("%s: a diverging fetch at %d moved the high watermark to %d", tc.name, tc.offset, hw)
		}
	}
	// Older than every epoch of the leader's: it ends where the first one starts, as in Kafka.
	if res, err := read(3, 0); err != nil || res.DivergingEpoch == nil || *res.DivergingEpoch != (EpochEndOffset{Epoch: 0, EndOffset: 0}) {
		t.Fatalf("last fetched epoch 0, older than every epoch of the leader: %+v, %v; want diverging at {0 0}", res.DivergingEpoch, err)
	}
	// A follower that agrees reads and counts.
	res, err := read(3, 1)
	if err != nil || res.DivergingEpoch != nil || len(res.Records) == 0 {
		t.Fatalf("fetch at 3 after epoch 1: %+v, %v; want the records of epoch 3", res, err)
	}
	if hw := r.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark %d after an agreeing fetch at 3, want 3", hw)
	}
}

func TestFetchWithALastFetchedEpochFromALeaderWithoutEpochsIsOutOfRange(t *testing.T) {
	f := newFixture(t, 1)
	r := f.leader(t, 1, 2)
	_, err := r.Read(FetchRequest{Offset: 0, MaxBytes: 1 << 20, ReplicaID: 2, CurrentLeaderEpoch: 1, HasLastFetchedEpoch: true, LastFetchedEpoch: 2})
	if !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("last fetched epoch 2 from a leader whose log has no epoch: %v, want OFFSET_OUT_OF_RANGE, as Kafka", err)
	}
}
