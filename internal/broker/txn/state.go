package txn

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// State is the state of a transactional id, with the numbering Kafka persists
// in TransactionLogValue.TransactionStatus.
type State int8

// The states of Kafka's TransactionState.
const (
	Empty             State = 0 // no transaction: after InitProducerID
	Ongoing           State = 1 // partitions or offsets were added
	PrepareCommit     State = 2 // EndTxn(commit) accepted; markers being written
	PrepareAbort      State = 3 // EndTxn(abort) or a fence; markers being written
	CompleteCommit    State = 4 // every commit marker is written
	CompleteAbort     State = 5 // every abort marker is written
	Dead              State = 6 // the transactional id is being expired
	PrepareEpochFence State = 7 // the epoch was bumped to abort an open transaction (in memory only)
)

// String returns the name Kafka uses for the state (as DescribeTransactions
// answers it), or "Unknown".
func (s State) String() string { return kmsg.TransactionState(s).String() }

// Valid reports whether s is one of Kafka's eight states.
func (s State) Valid() bool { return s >= Empty && s <= PrepareEpochFence }

// previous is Kafka's TransactionState.validPreviousStates for the classic
// flow (transaction.version 2 also lets Empty, CompleteCommit and
// CompleteAbort move to PrepareAbort).
func previous(to State) []State {
	switch to {
	case Empty:
		return []State{Empty, CompleteCommit, CompleteAbort}
	case Ongoing:
		return []State{Ongoing, Empty, CompleteCommit, CompleteAbort}
	case PrepareCommit, PrepareEpochFence:
		return []State{Ongoing}
	case PrepareAbort:
		return []State{Ongoing, PrepareEpochFence}
	case CompleteCommit:
		return []State{PrepareCommit}
	case CompleteAbort:
		return []State{PrepareAbort}
	case Dead:
		return []State{Empty, CompleteAbort, CompleteCommit}
	}
	return nil
}

// CanTransition reports whether Kafka allows a transactional id to move from
// state from to state to.
func CanTransition(from, to State) bool {
	return from.Valid() && slices.Contains(previous(to), from)
}
