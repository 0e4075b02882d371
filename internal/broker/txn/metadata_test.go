package txn

import (
	"errors"
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func noAlloc() (int64, error) { return 0, errors.New("no allocation expected") }

// moved fails t unless m can become next by Kafka's table and the receiver
// kept its state, and returns next.
func moved(t *testing.T, m, next Metadata, err error) Metadata {
	t.Helper()
	if err != nil {
		t.Fatalf("from %s: %v", m.State, err)
	}
	if !CanTransition(m.State, next.State) {
		t.Fatalf("illegal transition %s -> %s", m.State, next.State)
	}
	return next
}

func initialized(t *testing.T) Metadata {
	t.Helper()
	m := New("tx", 7, 60000, 100)
	next, err := m.InitProducerID(60000, NoProducerID, NoProducerEpoch, 100, noAlloc)
	return moved(t, m, next, err)
}

func TestInitProducerIDGivesANewTransactionalIDEpochZero(t *testing.T) {
	m := initialized(t)
	if m.ProducerID != 7 || m.ProducerEpoch != 0 || m.State != Empty || m.StartTimestamp != -1 {
		t.Fatalf("got %+v, want producer 7 epoch 0, Empty", m)
	}
}

func TestInitProducerIDBumpsTheEpochAndFencesTheOldProducer(t *testing.T) {
	m := initialized(t)
	next, err := m.InitProducerID(30000, NoProducerID, NoProducerEpoch, 200, noAlloc)
	m2 := moved(t, m, next, err)
	if m2.ProducerEpoch != 1 || m2.TimeoutMillis != 30000 || m2.LastUpdateTimestamp != 200 {
		t.Fatalf("second init: %+v, want epoch 1, timeout 30000", m2)
	}
	if m.ProducerEpoch != 0 {
		t.Fatal("InitProducerID changed its receiver")
	}
	// The producer at epoch 0 is now a zombie.
	if _, _, err := m2.AddPartitions(7, 0, []Partition{{"t", 0}}, 300); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("AddPartitions at the old epoch: %v, want PRODUCER_FENCED", err)
	}
	if _, _, err := m2.EndTxn(7, 0, true, 300); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("EndTxn at the old epoch: %v, want PRODUCER_FENCED", err)
	}
	if _, _, err := m2.AddPartitions(8, 1, []Partition{{"t", 0}}, 300); !errors.Is(err, kerr.InvalidProducerIDMapping) {
		t.Fatalf("AddPartitions with another producer id: %v, want INVALID_PRODUCER_ID_MAPPING", err)
	}
}

func TestInitProducerIDWithTheCurrentEpochBumpsAndItsRetryGetsTheSameEpoch(t *testing.T) {
	m := initialized(t) // epoch 0
	next, err := m.InitProducerID(60000, 7, 0, 200, noAlloc)
	m1 := moved(t, m, next, err)
	if m1.ProducerEpoch != 1 || m1.LastProducerEpoch != 0 {
		t.Fatalf("KIP-360 bump: %+v, want epoch 1, last epoch 0", m1)
	}
	// The response was lost; the producer retries with epoch 0.
	retry, err := m1.InitProducerID(60000, 7, 0, 300, noAlloc)
	if err != nil || retry.ProducerEpoch != 1 {
		t.Fatalf("retry: epoch %d, %v; want epoch 1", retry.ProducerEpoch, err)
	}
	// Any older epoch, or a foreign producer id, is a zombie.
	if _, err := m1.InitProducerID(60000, 7, 5, 300, noAlloc); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("stale epoch: %v, want PRODUCER_FENCED", err)
	}
	if _, err := m1.InitProducerID(60000, 99, 1, 300, noAlloc); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("foreign producer id: %v, want PRODUCER_FENCED", err)
	}
}

func TestInitProducerIDRotatesTheProducerIDWhenTheEpochIsExhausted(t *testing.T) {
	m := initialized(t)
	m.ProducerEpoch = math.MaxInt16 - 1
	next, err := m.InitProducerID(60000, 7, math.MaxInt16-1, 200, func() (int64, error) { return 42, nil })
	next = moved(t, m, next, err)
	if next.ProducerID != 42 || next.ProducerEpoch != 0 || next.LastProducerID != 7 {
		t.Fatalf("rotation: %+v, want producer 42 epoch 0, last producer 7", next)
	}
	// The previous id with its exhausted epoch is a retry, not a zombie.
	if retry, err := next.InitProducerID(60000, 7, math.MaxInt16-1, 300, noAlloc); err != nil || retry.ProducerID != 42 || retry.ProducerEpoch != 0 {
		t.Fatalf("retry with the rotated-away id: producer %d epoch %d, %v; want 42, 0", retry.ProducerID, retry.ProducerEpoch, err)
	}
	boom := errors.New("controller down")
	if _, err := m.InitProducerID(60000, NoProducerID, NoProducerEpoch, 200, func() (int64, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("failed allocation: %v", err)
	}
}

func TestATransactionCommitsThroughThePrepareState(t *testing.T) {
	for _, commit := range []bool{true, false} {
		m := initialized(t)
		next, persist, err := m.AddPartitions(7, 0, []Partition{{"b", 1}, {"a", 2}}, 1000)
		m = moved(t, m, next, err)
		if !persist || m.State != Ongoing || m.StartTimestamp != 1000 || len(m.Partitions) != 2 || m.Partitions[0] != (Partition{"a", 2}) {
			t.Fatalf("after AddPartitions: %+v", m)
		}
		// Adding what is already there writes nothing.
		if same, persist, err := m.AddPartitions(7, 0, []Partition{{"a", 2}}, 1100); err != nil || persist || same.LastUpdateTimestamp != 1000 {
			t.Fatalf("re-adding: persist %v, %v", persist, err)
		}
		next, persist, err = m.AddPartitions(7, 0, []Partition{{"a", 2}, {"a", 0}}, 1200)
		m = moved(t, m, next, err)
		if !persist || len(m.Partitions) != 3 || m.StartTimestamp != 1000 {
			t.Fatalf("adding one more: %+v", m)
		}
		next, persist, err = m.EndTxn(7, 0, commit, 1300)
		m = moved(t, m, next, err)
		want, done := PrepareAbort, CompleteAbort
		if commit {
			want, done = PrepareCommit, CompleteCommit
		}
		if !persist || m.State != want {
			t.Fatalf("EndTxn(commit=%v): %s, want %s", commit, m.State, want)
		}
		if _, _, err := m.EndTxn(7, 0, commit, 1400); !errors.Is(err, kerr.ConcurrentTransactions) {
			t.Fatalf("EndTxn retried while preparing: %v, want CONCURRENT_TRANSACTIONS", err)
		}
		if _, _, err := m.EndTxn(7, 0, !commit, 1400); !errors.Is(err, kerr.InvalidTxnState) {
			t.Fatalf("EndTxn with the other outcome while preparing: %v, want INVALID_TXN_STATE", err)
		}
		if _, _, err := m.AddPartitions(7, 0, []Partition{{"c", 0}}, 1400); !errors.Is(err, kerr.ConcurrentTransactions) {
			t.Fatalf("AddPartitions while preparing: %v, want CONCURRENT_TRANSACTIONS", err)
		}
		if _, err := m.InitProducerID(60000, NoProducerID, NoProducerEpoch, 1400, noAlloc); !errors.Is(err, kerr.ConcurrentTransactions) {
			t.Fatalf("InitProducerID while preparing: %v, want CONCURRENT_TRANSACTIONS", err)
		}
		next, err = m.Complete(1500)
		m = moved(t, m, next, err)
		if m.State != done || m.Partitions != nil {
			t.Fatalf("Complete: %+v, want %s with no partitions", m, done)
		}
		if _, persist, err := m.EndTxn(7, 0, commit, 1600); err != nil || persist {
			t.Fatalf("EndTxn retried after completion: persist %v, %v; want a no-op", persist, err)
		}
		if _, _, err := m.EndTxn(7, 0, !commit, 1600); !errors.Is(err, kerr.InvalidTxnState) {
			t.Fatalf("EndTxn with the other outcome after completion: %v, want INVALID_TXN_STATE", err)
		}
		// The next transaction starts afresh.
		next, _, err = m.AddPartitions(7, 0, []Partition{{"z", 0}}, 2000)
		m = moved(t, m, next, err)
		if m.StartTimestamp != 2000 || len(m.Partitions) != 1 {
			t.Fatalf("next transaction: %+v", m)
		}
	}
}

func TestEndTxnWithoutAnOpenTransactionIsInvalidTxnState(t *testing.T) {
	m := initialized(t)
	for _, commit := range []bool{true, false} {
		if _, _, err := m.EndTxn(7, 0, commit, 200); !errors.Is(err, kerr.InvalidTxnState) {
			t.Errorf("EndTxn(commit=%v) on Empty: %v, want INVALID_TXN_STATE", commit, err)
		}
	}
	if _, err := m.Complete(200); !errors.Is(err, kerr.InvalidTxnState) {
		t.Errorf("Complete on Empty: %v", err)
	}
}

func TestInitProducerIDOnAnOpenTransactionFencesAndAbortsIt(t *testing.T) {
	m := initialized(t)
	next, _, err := m.AddPartitions(7, 0, []Partition{{"t", 0}}, 1000)
	m = moved(t, m, next, err)
	if _, err := m.InitProducerID(60000, NoProducerID, NoProducerEpoch, 1100, noAlloc); !errors.Is(err, ErrOngoing) || !errors.Is(err, kerr.ConcurrentTransactions) {
		t.Fatalf("InitProducerID on Ongoing: %v, want ErrOngoing (CONCURRENT_TRANSACTIONS)", err)
	}
	next, err = m.Fence()
	fenced := moved(t, m, next, err)
	if fenced.State != PrepareEpochFence || fenced.ProducerEpoch != 1 {
		t.Fatalf("Fence: %+v, want PrepareEpochFence at epoch 1", fenced)
	}
	// The old producer cannot commit what is being aborted.
	if _, _, err := fenced.EndTxn(7, 0, true, 1200); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("old producer's commit: %v, want PRODUCER_FENCED", err)
	}
	if _, _, err := fenced.EndTxn(7, 1, true, 1200); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("commit of a fenced transaction: %v, want INVALID_TXN_STATE", err)
	}
	next, _, err = fenced.EndTxn(7, 1, false, 1200)
	m = moved(t, fenced, next, err)
	next, err = m.Complete(1300)
	m = moved(t, m, next, err)
	next, err = m.InitProducerID(60000, NoProducerID, NoProducerEpoch, 1400, noAlloc)
	m = moved(t, m, next, err)
	if m.ProducerEpoch != 2 || m.State != Empty {
		t.Fatalf("the retried InitProducerID: %+v, want epoch 2, Empty", m)
	}
	if _, err := m.Fence(); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("Fence on Empty: %v", err)
	}
}

func TestATransactionExpiresAfterItsTimeout(t *testing.T) {
	m := initialized(t)
	if m.Expired(1 << 40) {
		t.Fatal("an Empty transactional id expired")
	}
	m, _, _ = m.AddPartitions(7, 0, []Partition{{"t", 0}}, 1000)
	if m.Expired(1000+60000) || !m.Expired(1000+60001) {
		t.Fatal("an Ongoing transaction of 60 s started at 1000 must expire after 61000, not at it")
	}
}

// Verify answers a partition leader: only a partition of the producer's open transaction, at
// its epoch, is verified; nothing changes.
func TestVerifyAcceptsOnlyAPartitionOfTheOpenTransaction(t *testing.T) {
	m := initialized(t)
	p0, p1 := []Partition{{"t", 0}}, []Partition{{"t", 1}}
	if err := m.Verify(7, 0, p0); !errors.Is(err, kerr.TransactionAbortable) {
		t.Fatalf("no transaction open: %v, want TRANSACTION_ABORTABLE", err)
	}
	next, _, err := m.AddPartitions(7, 0, p0, 200)
	ongoing := moved(t, m, next, err)
	for _, tc := range []struct {
		name  string
		pid   int64
		epoch int16
		parts []Partition
		want  error
	}{
		{"the added partition", 7, 0, p0, nil},
		{"a partition not added", 7, 0, p1, kerr.TransactionAbortable},
		{"another epoch", 7, 1, p0, kerr.ProducerFenced},
		{"another producer id", 8, 0, p0, kerr.InvalidProducerIDMapping},
	} {
		if err := ongoing.Verify(tc.pid, tc.epoch, tc.parts); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	next, _, err = ongoing.EndTxn(7, 0, false, 300)
	ending := moved(t, ongoing, next, err)
	if err := ending.Verify(7, 0, p0); !errors.Is(err, kerr.ConcurrentTransactions) {
		t.Fatalf("while the markers are written: %v, want CONCURRENT_TRANSACTIONS", err)
	}
	done, err := ending.Complete(400)
	if err != nil {
		t.Fatal(err)
	}
	if err := done.Verify(7, 0, p0); !errors.Is(err, kerr.TransactionAbortable) {
		t.Fatalf("after the abort: %v, want TRANSACTION_ABORTABLE", err)
	}
}
