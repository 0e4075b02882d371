package partition

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// restartedWith5 writes 5 records as the only ISR member, closes the replica, and reopens it as
// a broker restarting would, with hw as the checkpointed high watermark; it then leads epoch 2
// with follower 2 in the ISR, which has not fetched yet.
func restartedWith5(t *testing.T, hw int64) *Replica {
	t.Helper()
	f := newFixture(t, 1)
	r := f.leader(t, 1)
	if _, err := r.Append(t.Context(), batch(5, plain), -1); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	f.cfg.HighWatermark = hw
	r = f.open(t)
	if got, want := r.State().HW, min(hw, 5); got != want {
		t.Fatalf("reopened with checkpointed high watermark %d: HW %d, want %d (capped at the log end)", hw, got, want)
	}
	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 2, Epoch: 2})
	return r
}

// TestRestartedLeaderServesTheCheckpointedHighWatermark: after a restart, the leader knows the
// committed offsets from its checkpoint before any follower has fetched: ListOffsets(latest)
// answers 5 and a consumer reads the 5 records.
func TestRestartedLeaderServesTheCheckpointedHighWatermark(t *testing.T) {
	r := restartedWith5(t, 5)
	if off, _, err := r.OffsetLookup(-1, -1, false); err != nil || off != 5 {
		t.Fatalf("ListOffsets(latest) before any follower fetched: %d, %v; want 5", off, err)
	}
	if n := consume(t, r, 0); n != 5 {
		t.Fatalf("consumer read %d records, want the 5 committed ones", n)
	}
	if r2 := restartedWith5(t, 100); r2.HighWatermark() != 5 {
		t.Fatalf("a checkpointed high watermark past the log end gave HW %d, want 5", r2.HighWatermark())
	}
}

// TestListOffsetsLatestIsNotAvailableWhileTheNewLeaderHWLagsItsEpochStart: a leader whose high
// watermark is below the start of its epoch (no checkpoint, no follower fetch yet) answers
// OFFSET_NOT_AVAILABLE for latest and for a timestamp past the HW, as Kafka's
// Partition.fetchOffsetForTimestamp does, instead of an offset that went backwards; once the
// follower has fetched it answers the new high watermark.
func TestListOffsetsLatestIsNotAvailableWhileTheNewLeaderHWLagsItsEpochStart(t *testing.T) {
	r := restartedWith5(t, 0)
	if off, _, err := r.OffsetLookup(-1, -1, false); !errors.Is(err, kerr.OffsetNotAvailable) {
		t.Fatalf("ListOffsets(latest) with HW 0 below the epoch start 5: %d, %v; want OFFSET_NOT_AVAILABLE", off, err)
	}
	if off, _, err := r.OffsetLookup(-1, 1_700_000_000_000, false); !errors.Is(err, kerr.OffsetNotAvailable) {
		t.Fatalf("ListOffsets(timestamp) past the lagging HW: %d, %v; want OFFSET_NOT_AVAILABLE", off, err)
	}
	if off, _, err := r.OffsetLookup(-1, -2, false); err != nil || off != 0 {
		t.Fatalf("ListOffsets(earliest): %d, %v; want 0", off, err)
	}
	fetch(t, r, 2, 5)
	if off, _, err := r.OffsetLookup(-1, -1, false); err != nil || off != 5 {
		t.Fatalf("ListOffsets(latest) after the follower caught up: %d, %v; want 5", off, err)
	}
}
