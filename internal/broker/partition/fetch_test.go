package partition

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
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
