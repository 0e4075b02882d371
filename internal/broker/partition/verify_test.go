package partition

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// A transactional batch that would open its producer's transaction is written only under the
// producer's current guard: without one, or after a marker of the producer cleared it (the
// transaction ended while the coordinator was asked), it is INVALID_TXN_STATE and nothing is
// written; once the transaction is open its batches need none. Without VerifyTransactions
// nothing is checked (the unsafe configuration next to the safe one).
func TestTransactionalBatchNeedsAGuardToOpenItsTransaction(t *testing.T) {
	ctx := t.Context()
	first := func(seq int32) []byte { return txnData(1, records.Producer{ID: 7, Epoch: 0, Sequence: seq}) }

	f := newFixture(t, 1)
	f.cfg.VerifyTransactions = true
	r := f.leader(t, 1)
	if _, err := r.Append(ctx, first(0), -1); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("no guard: %v, want INVALID_TXN_STATE", err)
	}
	guard, need, err := r.VerificationGuard(7, 0)
	if err != nil || !need || guard == 0 {
		t.Fatalf("VerificationGuard = %d, %v, %v; want a guard", guard, need, err)
	}
	if again, _, _ := r.VerificationGuard(7, 0); again != guard {
		t.Fatalf("a second request of the producer got guard %d, want the same %d", again, guard)
	}
	if _, err := r.AppendVerified(ctx, first(0), -1, guard+1); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("another guard: %v, want INVALID_TXN_STATE", err)
	}
	if end := r.Log().EndOffset(); end != 0 {
		t.Fatalf("refused batches wrote up to %d, want nothing", end)
	}
	mustAppendVerified(t, r, first(0), guard) // 0: opens the transaction
	if _, need, _ := r.VerificationGuard(7, 0); need {
		t.Fatal("the producer's transaction is open, yet VerificationGuard asks for a check")
	}
	if _, need, _ := r.VerificationGuard(7, 1); !need {
		t.Fatal("a batch of another epoch than the open transaction's needs no check")
	}
	mustAppendVerified(t, r, first(1), 0) // 1: in the open transaction, no guard
	if err := r.AppendMarker(ctx, 7, 0, false, 0); err != nil {
		t.Fatal(err) // 2: abort
	}
	// The guard of a verification that started before the marker is void after it: the
	// transaction it verified is over.
	late, _, _ := r.VerificationGuard(7, 0)
	if err := r.AppendMarker(ctx, 7, 0, false, 0); err != nil {
		t.Fatal(err) // 3: the coordinator's abort of a timed-out transaction, say
	}
	if _, err := r.AppendVerified(ctx, first(2), -1, late); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("a guard from before a marker: %v, want INVALID_TXN_STATE", err)
	}
	if end, lso := r.Log().EndOffset(), r.LastStableOffset(); end != 4 || lso != 4 {
		t.Fatalf("log end %d, LSO %d; want 4 and 4: no transaction left open", end, lso)
	}

	r.Apply(meta.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 2, Epoch: 2})
	if _, _, err := r.VerificationGuard(7, 0); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("a follower's VerificationGuard: %v, want NOT_LEADER_FOR_PARTITION", err)
	}

	unsafe := newFixture(t, 1)
	u := unsafe.leader(t, 1)
	mustAppend(t, u, first(0))
	if lso := u.LastStableOffset(); lso != 0 {
		t.Fatalf("without VerifyTransactions the unverified batch opens a transaction: LSO %d, want 0", lso)
	}
}

func mustAppendVerified(t *testing.T, r *Replica, b []byte, guard uint64) {
	t.Helper()
	if _, err := r.AppendVerified(t.Context(), b, -1, guard); err != nil {
		t.Fatal(err)
	}
}
