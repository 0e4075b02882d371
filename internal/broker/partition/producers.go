package partition

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
)

// maxCachedBatches is how many recent batches per producer the broker remembers, as Kafka does:
// the reason idempotent producers may keep up to 5 requests in flight.
const maxCachedBatches = 5

// batchMeta is what is remembered of one idempotent batch.
type batchMeta struct {
	firstSeq, lastSeq       int32
	firstOffset, lastOffset int64
}

// producerEntry is the idempotence state of one producer id on one partition.
type producerEntry struct {
	epoch         int16
	batches       []batchMeta // oldest first, at most maxCachedBatches
	lastTimestamp int64       // max timestamp of its last batch or marker
}

func (e *producerEntry) last() (batchMeta, bool) {
	if len(e.batches) == 0 {
		return batchMeta{}, false
	}
	return e.batches[len(e.batches)-1], true
}

// producers tracks idempotent producers by id. Its owner (Replica) serializes access.
type producers map[int64]*producerEntry

// check decides what to do with an idempotent batch before it is appended: nil, nil → append it;
// a non-nil batchMeta → it duplicates a batch already in the log (answer with its offsets);
// an error → reject (INVALID_PRODUCER_EPOCH or OUT_OF_ORDER_SEQUENCE_NUMBER). A batch the broker
// writes itself (bySelf: a transaction marker, or a group coordinator's transactional offset
// commit, as Kafka's AppendOrigin.COORDINATOR) has no sequence: only its epoch is checked.
func (ps producers) check(h log.BatchHeader, bySelf bool) (*batchMeta, error) {
	if h.ProducerID < 0 {
		return nil, nil
	}
	e := ps[h.ProducerID]
	if h.IsControl() || bySelf {
		// It may carry a newer epoch (a fence), never an older one.
		if e != nil && h.ProducerEpoch < e.epoch {
			return nil, fmt.Errorf("batch of producer %d epoch %d written by the broker is older than the current epoch %d: %w",
				h.ProducerID, h.ProducerEpoch, e.epoch, kerr.InvalidProducerEpoch)
		}
		return nil, nil
	}
	if e == nil {
		// An unknown producer may start at any sequence: its state may have been dropped with
		// old segments (KIP-360), as Kafka allows.
		return nil, nil
	}
	switch {
	case h.ProducerEpoch < e.epoch:
		return nil, fmt.Errorf("producer %d epoch %d is older than the current epoch %d: %w",
			h.ProducerID, h.ProducerEpoch, e.epoch, kerr.InvalidProducerEpoch)
	case h.ProducerEpoch > e.epoch:
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("producer %d new epoch %d must start at sequence 0, got %d: %w",
				h.ProducerID, h.ProducerEpoch, h.BaseSequence, kerr.OutOfOrderSequenceNumber)
		}
		return nil, nil
	}
	lastSeq := h.LastSequence()
	for i := range e.batches {
		if b := e.batches[i]; b.firstSeq == h.BaseSequence && b.lastSeq == lastSeq {
			return &b, nil
		}
	}
	last, ok := e.last()
	if !ok {
		return nil, nil
	}
	if h.BaseSequence != nextSeq(last.lastSeq) {
		return nil, fmt.Errorf("producer %d epoch %d: sequence %d does not follow %d: %w",
			h.ProducerID, h.ProducerEpoch, h.BaseSequence, last.lastSeq, kerr.OutOfOrderSequenceNumber)
	}
	return nil, nil
}

// update records a batch appended at baseOffset (leader) or replicated from the leader.
func (ps producers) update(h log.BatchHeader) {
	if h.ProducerID < 0 {
		return
	}
	e := ps[h.ProducerID]
	if e == nil || h.ProducerEpoch > e.epoch {
		e = &producerEntry{epoch: h.ProducerEpoch}
		ps[h.ProducerID] = e
	} else if h.ProducerEpoch < e.epoch {
		return
	}
	e.lastTimestamp = h.MaxTimestamp
	if h.IsControl() || h.BaseSequence < 0 {
		// A marker, or a batch without a sequence (a transactional offset commit the group
		// coordinator wrote), moves the producer to its epoch (fencing older ones) but is not
		// part of its sequence: the next batch of the same epoch follows the last data batch.
		return
	}
	if len(e.batches) == maxCachedBatches {
		copy(e.batches, e.batches[1:])
		e.batches = e.batches[:maxCachedBatches-1]
	}
	e.batches = append(e.batches, batchMeta{
		firstSeq: h.BaseSequence, lastSeq: h.LastSequence(),
		firstOffset: h.BaseOffset, lastOffset: h.LastOffset(),
	})
}

// nextSeq is the sequence after s; sequences wrap from MaxInt32 to 0, as in Kafka.
func nextSeq(s int32) int32 {
	if s == 1<<31-1 {
		return 0
	}
	return s + 1
}
