package partition

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
)

// Transaction verification (Kafka's KIP-890 part 1). A producer's first transactional batch on
// a partition opens its transaction there; written after the transaction ended (a request
// delayed in the network past its abort) or for a partition never added to it, that batch
// would open a transaction no coordinator knows: the last stable offset would stay below it
// until the producer's next transaction ends, and that transaction's marker would then commit
// or abort a record of another. So, with Config.VerifyTransactions, the broker asks the
// transaction coordinator before such a batch is written:
//
//  1. VerificationGuard says whether the producer has a transaction open here (no check
//     needed) and, if not, hands out a guard;
//  2. the broker asks the coordinator whether the partition is in the producer's open
//     transaction;
//  3. AppendVerified writes the batch only if the guard is still the producer's: a marker of
//     the producer written meanwhile (the transaction ended while the coordinator was asked)
//     clears it, and so does a change of leader epoch.
//
// Batches of a producer with a transaction open on the partition at their epoch need no guard;
// one of another epoch is verified like a first batch (the coordinator knows the producer's
// epoch), as Kafka's hasOngoingTransaction does.

// verification is the guard of one producer's verification in progress.
type verification struct {
	guard       uint64
	leaderEpoch int32
}

// verifications holds, per producer id, its verification in progress.
type verifications map[int64]verification

// VerificationGuard returns the guard under which the producer's next transactional batch may
// be written once the transaction coordinator has said the partition is in its open
// transaction, and need true; or need false when the producer has a transaction open on this
// partition already at epoch (its batches need no check). A producer keeps its guard, whichever request
// asked first, until one of its markers is written or the leader epoch changes. Only the
// leader verifies: elsewhere the error wraps kerr.NotLeaderForPartition.
func (r *Replica) VerificationGuard(producerID int64, epoch int16) (guard uint64, need bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader != r.cfg.BrokerID || r.closed {
		return 0, false, fmt.Errorf("broker %d is not the leader of %s-%d (leader %d): %w", r.cfg.BrokerID, r.cfg.Topic, r.cfg.Partition, r.leader, kerr.NotLeaderForPartition)
	}
	if r.openAtLocked(producerID, epoch) {
		return 0, false, nil
	}
	if v, ok := r.verified[producerID]; ok && v.leaderEpoch == r.leaderEpoch {
		return v.guard, true, nil
	}
	r.guards++
	r.verified[producerID] = verification{guard: r.guards, leaderEpoch: r.leaderEpoch}
	return r.guards, true, nil
}

// checkVerifiedLocked refuses, with Config.VerifyTransactions, a producer's transactional data
// batch that would open its transaction here without the producer's current guard. The group
// coordinator's batches (bySelf: a TxnOffsetCommit, which the broker verified before handing it
// to the coordinator) need the producer to hold a guard, whichever it is.
func (r *Replica) checkVerifiedLocked(h log.BatchHeader, bySelf bool, guard uint64) error {
	if !r.cfg.VerifyTransactions || !h.IsTransactional() || h.IsControl() || h.ProducerID < 0 {
		return nil
	}
	if r.openAtLocked(h.ProducerID, h.ProducerEpoch) {
		return nil
	}
	if v, ok := r.verified[h.ProducerID]; ok && v.leaderEpoch == r.leaderEpoch && (bySelf || (guard != 0 && v.guard == guard)) {
		return nil
	}
	return fmt.Errorf("producer %d: transactional batch not verified with the transaction coordinator, or its transaction ended meanwhile: %w", h.ProducerID, kerr.InvalidTxnState)
}

// openAtLocked reports whether producerID has a transaction open on this partition at epoch.
func (r *Replica) openAtLocked(producerID int64, epoch int16) bool {
	_, open := r.txns.open[producerID]
	e := r.producers[producerID]
	return open && e != nil && e.epoch == epoch
}
