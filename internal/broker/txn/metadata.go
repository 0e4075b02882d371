package txn

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// NoProducerID and NoProducerEpoch are Kafka's "none" values
// (RecordBatch.NO_PRODUCER_ID and NO_PRODUCER_EPOCH).
const (
	NoProducerID    int64 = -1
	NoProducerEpoch int16 = -1
)

// ErrOngoing is returned by [Metadata.InitProducerID] when the transactional
// id has an open transaction: the coordinator must [Metadata.Fence] it and
// abort it; the client gets CONCURRENT_TRANSACTIONS (errors.Is matches
// kerr.ConcurrentTransactions) and retries.
var ErrOngoing = fmt.Errorf("txn: an open transaction must be aborted first: %w", kerr.ConcurrentTransactions)

// errEpochOverflow is returned by Fence at the last epoch, which Kafka treats
// as a broken invariant (the epoch is rotated before it gets there).
var errEpochOverflow = errors.New("txn: cannot fence a producer at epoch 32767")

// Partition is one partition that takes part in a transaction.
type Partition struct {
	Topic     string
	Partition int32
}

// Metadata is the state of one transactional id, Kafka's
// TransactionMetadata. A Metadata is a value: the transitions return the next
// one and leave their receiver unchanged.
type Metadata struct {
	TransactionalID string
	ProducerID      int64
	// LastProducerID is the producer id before the last rotation (KIP-360),
	// or NoProducerID. Not persisted in the classic record format.
	LastProducerID int64
	ProducerEpoch  int16
	// LastProducerEpoch is the epoch before the last bump asked for by a
	// producer that passed its id and epoch (KIP-360), so that its retry gets
	// the same answer; in memory only, as in Kafka.
	LastProducerEpoch int16
	TimeoutMillis     int32
	State             State
	// Partitions are the partitions of the open transaction, sorted by topic
	// then partition, without duplicates.
	Partitions []Partition
	// StartTimestamp is when the open transaction started (ms), or -1.
	StartTimestamp      int64
	LastUpdateTimestamp int64
}

// New returns the metadata of a transactional id seen for the first time:
// Empty, with producerID and no epoch yet (InitProducerID then bumps it to 0).
func New(transactionalID string, producerID int64, timeoutMillis int32, now int64) Metadata {
	return Metadata{
		TransactionalID:     transactionalID,
		ProducerID:          producerID,
		LastProducerID:      NoProducerID,
		ProducerEpoch:       NoProducerEpoch,
		LastProducerEpoch:   NoProducerEpoch,
		TimeoutMillis:       timeoutMillis,
		State:               Empty,
		StartTimestamp:      -1,
		LastUpdateTimestamp: now,
	}
}

// epochExhausted is Kafka's TransactionMetadata.isEpochExhausted: the last
// epoch is kept for fencing, so the epoch before it is the last one handed
// out.
func epochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }

// InitProducerID is InitProducerID with this transactional id (Kafka's
// TransactionCoordinator.prepareInitProducerIdTransit). expectedID and
// expectedEpoch are the request's producer id and epoch (-1 and -1 for a new
// producer). It returns the metadata to persist, whose producer id and epoch
// answer the client:
//   - a producer id the request names that is neither the current one nor,
//     with an exhausted epoch, the previous one: PRODUCER_FENCED;
//   - a transaction being completed (Prepare states): CONCURRENT_TRANSACTIONS;
//   - an open transaction: [ErrOngoing];
//   - otherwise the epoch is bumped (with a new producer id from allocate
//     once the epoch is exhausted), and the transactional id is Empty with
//     the request's timeout. A request whose epoch is the one before the
//     last bump is a retry of it and gets the current epoch again (KIP-360);
//     any other stale epoch is PRODUCER_FENCED.
func (m Metadata) InitProducerID(timeoutMillis int32, expectedID int64, expectedEpoch int16, now int64, allocate func() (int64, error)) (Metadata, error) {
	expected := expectedID != NoProducerID
	if expected && m.ProducerEpoch != NoProducerEpoch && expectedID != m.ProducerID &&
		(expectedID != m.LastProducerID || !epochExhausted(expectedEpoch)) {
		return m, kerr.ProducerFenced
	}
	switch m.State {
	case Ongoing:
		return m, ErrOngoing
	case Empty, CompleteCommit, CompleteAbort:
	default:
		return m, kerr.ConcurrentTransactions
	}
	next := m
	next.State, next.Partitions, next.StartTimestamp = Empty, nil, -1
	next.TimeoutMillis, next.LastUpdateTimestamp = timeoutMillis, now
	if epochExhausted(m.ProducerEpoch) && (!expected || expectedEpoch == m.ProducerEpoch) {
		id, err := allocate()
		if err != nil {
			return m, fmt.Errorf("txn: allocating a producer id: %w", err)
		}
		next.LastProducerID, next.ProducerID = m.ProducerID, id
		next.ProducerEpoch, next.LastProducerEpoch = 0, NoProducerEpoch
		if expected {
			next.LastProducerEpoch = m.ProducerEpoch // so that a retry gets the new id again
		}
		return next, nil
	}
	switch {
	case !expected:
		next.ProducerEpoch, next.LastProducerEpoch = m.ProducerEpoch+1, NoProducerEpoch
	case m.ProducerEpoch == NoProducerEpoch || expectedEpoch == m.ProducerEpoch:
		next.ProducerEpoch, next.LastProducerEpoch = m.ProducerEpoch+1, m.ProducerEpoch
	case expectedEpoch == m.LastProducerEpoch:
		// A retry of the bump that gave the current epoch.
	default:
		return m, kerr.ProducerFenced
	}
	return next, nil
}

// Fence bumps the epoch of an open transaction so that it can be aborted
// without its producer (Kafka's prepareFenceProducerEpoch): the result is in
// PrepareEpochFence, which is never persisted; [Metadata.EndTxn] with abort
// and the bumped epoch moves it to PrepareAbort. InitProducerID on an open
// transaction and a transaction past its timeout both fence.
func (m Metadata) Fence() (Metadata, error) {
	if m.State != Ongoing {
		return m, fmt.Errorf("txn: fencing %q in state %s: %w", m.TransactionalID, m.State, kerr.InvalidTxnState)
	}
	if m.ProducerEpoch == math.MaxInt16 {
		return m, errEpochOverflow
	}
	next := m
	next.State, next.ProducerEpoch, next.LastProducerEpoch = PrepareEpochFence, m.ProducerEpoch+1, NoProducerEpoch
	return next, nil
}

// checkProducer is the producer check of AddPartitionsToTxn, AddOffsetsToTxn
// and EndTxn: another producer id is INVALID_PRODUCER_ID_MAPPING, another
// epoch PRODUCER_FENCED.
func (m Metadata) checkProducer(producerID int64, epoch int16) error {
	switch {
	case producerID != m.ProducerID:
		return kerr.InvalidProducerIDMapping
	case epoch != m.ProducerEpoch:
		return kerr.ProducerFenced
	}
	return nil
}

// Verify answers a partition leader's verification (KIP-890 part 1, an
// AddPartitionsToTxn with VerifyOnly) before it writes a producer's first
// transactional batch on a partition: nil when parts are all in the open
// transaction of producerID at epoch; PRODUCER_FENCED for another epoch,
// INVALID_PRODUCER_ID_MAPPING for another producer id, CONCURRENT_TRANSACTIONS
// while the transaction ends, TRANSACTION_ABORTABLE when no transaction with
// them is open (the batch is late, or its partition was never added).
func (m Metadata) Verify(producerID int64, epoch int16, parts []Partition) error {
	if err := m.checkProducer(producerID, epoch); err != nil {
		return err
	}
	switch {
	case m.State == Ongoing && containsAll(m.Partitions, parts):
		return nil
	case m.State == PrepareCommit || m.State == PrepareAbort || m.State == PrepareEpochFence:
		return kerr.ConcurrentTransactions
	}
	return kerr.TransactionAbortable
}

// AddPartitions adds partitions to the transaction, starting it if none is
// open (AddPartitionsToTxn, and AddOffsetsToTxn with the group's offsets
// partition). persist is false when every partition is already part of the
// open transaction: nothing changes and the client gets no error.
func (m Metadata) AddPartitions(producerID int64, epoch int16, parts []Partition, now int64) (next Metadata, persist bool, err error) {
	if err := m.checkProducer(producerID, epoch); err != nil {
		return m, false, err
	}
	switch m.State {
	case Ongoing:
		if containsAll(m.Partitions, parts) {
			return m, false, nil
		}
	case Empty, CompleteCommit, CompleteAbort:
	default:
		return m, false, kerr.ConcurrentTransactions
	}
	next = m
	if m.State != Ongoing {
		next.StartTimestamp = now
		next.Partitions = nil
	}
	next.State, next.LastUpdateTimestamp = Ongoing, now
	next.Partitions = merge(next.Partitions, parts)
	return next, true, nil
}

// EndTxn is EndTxn from the client (Kafka's endTransaction, classic flow), or
// the coordinator's own abort of a fenced transaction (state
// PrepareEpochFence, with the bumped epoch). An open transaction moves to
// PrepareCommit or PrepareAbort. A retry of an EndTxn that completed is
// answered without change (persist false); a retry while the markers are
// being written is CONCURRENT_TRANSACTIONS; ending with the other outcome, or
// ending when no transaction is open, is INVALID_TXN_STATE.
func (m Metadata) EndTxn(producerID int64, epoch int16, commit bool, now int64) (next Metadata, persist bool, err error) {
	if err := m.checkProducer(producerID, epoch); err != nil {
		return m, false, err
	}
	want, done, pending := PrepareAbort, CompleteAbort, PrepareAbort
	if commit {
		want, done, pending = PrepareCommit, CompleteCommit, PrepareCommit
	}
	switch m.State {
	case Ongoing:
	case PrepareEpochFence:
		if commit {
			return m, false, kerr.InvalidTxnState
		}
	case done:
		return m, false, nil
	case pending:
		return m, false, kerr.ConcurrentTransactions
	default:
		return m, false, kerr.InvalidTxnState
	}
	next = m
	next.State, next.LastUpdateTimestamp = want, now
	return next, true, nil
}

// Complete ends a transaction whose markers are all written: PrepareCommit
// becomes CompleteCommit and PrepareAbort CompleteAbort, with no partitions.
func (m Metadata) Complete(now int64) (Metadata, error) {
	next := m
	switch m.State {
	case PrepareCommit:
		next.State = CompleteCommit
	case PrepareAbort:
		next.State = CompleteAbort
	default:
		return m, fmt.Errorf("txn: completing %q in state %s: %w", m.TransactionalID, m.State, kerr.InvalidTxnState)
	}
	next.Partitions, next.LastUpdateTimestamp = nil, now
	return next, nil
}

// Expired reports whether the open transaction has outlived its timeout at
// now (ms), so that the coordinator aborts it (Kafka's
// timedOutTransactions).
func (m Metadata) Expired(now int64) bool {
	return m.State == Ongoing && m.StartTimestamp+int64(m.TimeoutMillis) < now
}

func comparePartitions(a, b Partition) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// merge returns the sorted union of have (sorted) and add, in a new slice.
func merge(have, add []Partition) []Partition {
	out := slices.Concat(have, add)
	slices.SortFunc(out, comparePartitions)
	return slices.Compact(out)
}

func containsAll(have, want []Partition) bool {
	for _, p := range want {
		if _, ok := slices.BinarySearchFunc(have, p, comparePartitions); !ok {
			return false
		}
	}
	return true
}
