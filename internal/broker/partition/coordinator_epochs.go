package partition

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// Coordinator epochs. A transaction coordinator writes its markers with its
// coordinator epoch, the leader epoch of its __transaction_state partition;
// each partition remembers, per producer, the coordinator epoch of the last
// marker in its log. A leader refuses a marker of an older coordinator epoch
// with TRANSACTION_COORDINATOR_FENCED (Kafka's ProducerAppendInfo), so that a
// deposed coordinator still writing a transaction's markers cannot close a
// later transaction of the same producer epoch after the new coordinator
// completed the first one. The epoch is in the marker record, so a follower,
// a restarted replica and a truncated one learn it from the log like the rest
// of the transaction state.

// observeMarker is observe for a batch whose marker, if it is one, is m: a
// marker also records its coordinator epoch for its producer. A follower and
// a replay record what the log holds, an older epoch included, as Kafka does
// for replicated markers; only a leader's append is checked
// (checkCoordinatorEpoch).
func (t *txns) observeMarker(h log.BatchHeader, m records.Marker) (log.AbortedTxn, bool) {
	if h.IsControl() && h.ProducerID >= 0 {
		t.coordinatorEpochs[h.ProducerID] = m.CoordinatorEpoch
	}
	return t.observe(h, m.Commit)
}

// checkCoordinatorEpoch refuses a marker of producerID written by a
// coordinator older than the one that wrote the producer's last marker here.
func (t *txns) checkCoordinatorEpoch(producerID int64, coordinatorEpoch int32) error {
	if last, ok := t.coordinatorEpochs[producerID]; ok && coordinatorEpoch < last {
		return fmt.Errorf("marker of producer %d from coordinator epoch %d, older than the epoch %d of its last marker: %w",
			producerID, coordinatorEpoch, last, kerr.TransactionCoordinatorFenced)
	}
	return nil
}
