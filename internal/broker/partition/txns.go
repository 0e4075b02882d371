package partition

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// AbortedTxn is an aborted transaction of one partition (Kafka's AbortedTxn,
// an entry of the .txnindex): the producer and the offsets of its first
// record and of its abort marker.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// txns tracks the transactions of one partition, in the order batches are in
// the log: which producers have one open (and from which offset), which
// ended with a marker the high watermark may not have passed yet, and which
// were aborted. Its owner (Replica) serializes access.
//
// The aborted transactions are also in the segments' .txnindex files, and
// the open ones in the producer snapshots (see snapshot.go): Open loads both
// and scans only the log after the snapshot.
type txns struct {
	open    map[int64]int64 // producer id -> first offset of its open transaction
	aborted []AbortedTxn    // in marker order, so by LastOffset
	// ended are the transactions closed by a marker, committed or aborted, in
	// marker order, until the high watermark passes the marker (Kafka's
	// unreplicatedTxns): until then the transaction is still unstable, as the
	// leader may lose the marker and the transaction end otherwise.
	ended []endedTxn
	// coordinatorEpochs is, per producer id, the coordinator epoch of its last
	// marker (see observeMarker).
	coordinatorEpochs map[int64]int32
}

// endedTxn is a transaction closed by the marker at last, which began at
// first.
type endedTxn struct{ first, last int64 }

func newTxns() txns {
	return txns{open: make(map[int64]int64), coordinatorEpochs: make(map[int64]int32)}
}

// observe accounts for one batch appended at h's offsets. A transactional
// data batch opens its producer's transaction if none is open; a marker
// (control batch, commit tells which) closes it, recording an abort.
// Markers of a producer with no open transaction change nothing, as a
// repeated marker must not. For an abort it returns the entry of the
// .txnindex (with the last stable offset once the transaction is closed,
// as Kafka's: the first offset of the earliest transaction still open, else
// the offset after the marker) and true. A closed transaction stays unstable
// until the high watermark passes its marker (see lso).
func (t *txns) observe(h log.BatchHeader, commit bool) (log.AbortedTxn, bool) {
	if !h.IsTransactional() || h.ProducerID < 0 {
		return log.AbortedTxn{}, false
	}
	first, ok := t.open[h.ProducerID]
	if !h.IsControl() {
		if !ok {
			t.open[h.ProducerID] = h.BaseOffset
		}
		return log.AbortedTxn{}, false
	}
	if !ok {
		return log.AbortedTxn{}, false
	}
	delete(t.open, h.ProducerID)
	t.ended = append(t.ended, endedTxn{first: first, last: h.LastOffset()})
	if commit {
		return log.AbortedTxn{}, false
	}
	t.aborted = append(t.aborted, AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.LastOffset()})
	return log.AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.LastOffset(), LastStableOffset: t.firstOpen(h.NextOffset())}, true
}

// trimBelow forgets the aborted transactions whose marker is below start,
// after retention deleted their segments (and .txnindex files).
func (t *txns) trimBelow(start int64) {
	t.aborted = slices.DeleteFunc(t.aborted, func(a AbortedTxn) bool { return a.LastOffset < start })
}

// lso is the last stable offset given the high watermark, as Kafka's
// firstUnstableOffset bounded by it: the first offset of the earliest
// transaction that is open or whose marker is at or above hw, or hw if that
// is smaller or there is none.
func (t *txns) lso(hw int64) int64 {
	lso := t.firstOpen(hw)
	for _, e := range t.ended {
		if e.last >= hw {
			lso = min(lso, e.first)
		}
	}
	return lso
}

// forgetStable forgets the ended transactions whose markers are below hw, as
// Kafka's onHighWatermarkUpdated: its owner calls it when the high watermark
// moves forward.
func (t *txns) forgetStable(hw int64) {
	i := 0
	for i < len(t.ended) && t.ended[i].last < hw {
		i++
	}
	t.ended = t.ended[i:]
}

// firstOpen is the first offset of the earliest open transaction, or bound
// if that is smaller or none is open.
func (t *txns) firstOpen(bound int64) int64 {
	for _, first := range t.open {
		bound = min(bound, first)
	}
	return bound
}

// abortedIn returns the aborted transactions a read of [from, upto) must
// skip: those whose marker is at or after from and whose first record is
// before upto, in marker order (what Kafka's collectAbortedTxns answers).
func (t *txns) abortedIn(from, upto int64) []AbortedTxn {
	i, _ := slices.BinarySearchFunc(t.aborted, from, func(a AbortedTxn, off int64) int {
		switch {
		case a.LastOffset < off:
			return -1
		case a.LastOffset > off:
			return 1
		}
		return 0
	})
	var out []AbortedTxn
	for _, a := range t.aborted[i:] {
		if a.FirstOffset < upto {
			out = append(out, a)
		}
	}
	return out
}

// reset forgets everything, before the state is rebuilt from the log.
func (t *txns) reset() {
	clear(t.open)
	t.aborted = t.aborted[:0]
	t.ended = nil
	clear(t.coordinatorEpochs)
}

// AppendMarker writes a transaction marker for producerID at epoch as this
// partition's leader (what Kafka's WriteTxnMarkers does on each leader): a
// control batch closing the producer's open transaction, committed or
// aborted, and returns once the high watermark passes it (acks=all). A
// marker of an older epoch than the producer's on this partition is
// INVALID_PRODUCER_EPOCH, one of an older coordinator epoch than the
// producer's last marker here TRANSACTION_COORDINATOR_FENCED (a deposed
// coordinator's); a marker for a producer with no open transaction is written
// and changes nothing, so retries are harmless.
func (r *Replica) AppendMarker(ctx context.Context, producerID int64, epoch int16, commit bool, coordinatorEpoch int32) error {
	batch := records.BuildMarker(producerID, epoch, commit, coordinatorEpoch, r.cfg.Now().UnixMilli())
	h, err := log.ParseBatchHeader(batch)
	if err != nil {
		return fmt.Errorf("%s-%d: marker: %w", r.cfg.Topic, r.cfg.Partition, err)
	}
	_, last, leaderEpoch, err := r.write(batch, h, -1, true, 0)
	if err != nil {
		return err
	}
	return r.waitHW(ctx, last, leaderEpoch)
}

// LastStableOffset is the partition's last stable offset: read_committed
// consumers read below it. It is the first offset of the earliest open
// transaction, or the high watermark.
func (r *Replica) LastStableOffset() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.txns.lso(r.hw)
}

// AbortedTransactions returns the aborted transactions a read_committed
// fetch of [from, upto) must filter out (Fetch's AbortedTransactions).
func (r *Replica) AbortedTransactions(from, upto int64) []AbortedTxn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.txns.abortedIn(from, upto)
}

// ProducerState is what a partition's leader knows of one producer
// (DescribeProducers' ActiveProducer): its epoch, the sequence of its last
// batch (-1 when only a marker of it is known), the max timestamp of its last
// batch or marker, the coordinator epoch of its last marker (-1 when none) and
// the first offset of its open transaction (-1 when none).
type ProducerState struct {
	ProducerID       int64
	ProducerEpoch    int16
	LastSequence     int32
	LastTimestamp    int64
	CoordinatorEpoch int32
	TxnStartOffset   int64
}

// Producers lists the producers this partition keeps state for, by producer
// id, as its leader: NOT_LEADER_OR_FOLLOWER on a follower, as Kafka answers
// DescribeProducers.
func (r *Replica) Producers() ([]ProducerState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader != r.cfg.BrokerID {
		return nil, fmt.Errorf("broker %d is not the leader of %s-%d (leader %d): %w", r.cfg.BrokerID, r.cfg.Topic, r.cfg.Partition, r.leader, kerr.NotLeaderForPartition)
	}
	out := make([]ProducerState, 0, len(r.producers))
	for id, e := range r.producers {
		ps := ProducerState{ProducerID: id, ProducerEpoch: e.epoch, LastSequence: -1, LastTimestamp: e.lastTimestamp, CoordinatorEpoch: -1, TxnStartOffset: -1}
		if last, ok := e.last(); ok {
			ps.LastSequence = last.lastSeq
		}
		if first, ok := r.txns.open[id]; ok {
			ps.TxnStartOffset = first
		}
		if ce, ok := r.txns.coordinatorEpochs[id]; ok {
			ps.CoordinatorEpoch = ce
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b ProducerState) int { return cmp.Compare(a.ProducerID, b.ProducerID) })
	return out, nil
}
