package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// applyGroups moves group coordination with leadership of __consumer_offsets partitions: this
// node coordinates exactly the groups whose offsets partition it leads, after replaying it.
func (b *Broker) applyGroups(img *meta.Image) {
	b.applyCoordinator(img, meta.OffsetsTopic, b.loaded, b.groups.Load, b.groups.Unload)
}

// applyCoordinator moves a coordinator (groups, transactions) with leadership of its internal
// topic's partitions: loaded (guarded by b.mu) says which partitions it owns; a partition this
// node now leads is replayed and loaded, one it no longer leads unloaded.
func (b *Broker) applyCoordinator(img *meta.Image, topic string, loaded map[int32]bool,
	load func(context.Context, int32, group.Store, group.Replay) error, unload func(int32)) {
	t := img.Topic(topic)
	if t == nil {
		return
	}
	for i, st := range t.Partitions {
		p := int32(i)
		lead := st.Leader == b.cfg.ID
		b.mu.Lock()
		was := loaded[p]
		loaded[p] = lead
		b.mu.Unlock()
		switch {
		case lead && !was:
			r := b.replica(topic, p)
			if r == nil {
				continue
			}
			if err := load(b.ctx, p, offsetsStore{r: r}, b.replayOffsets(topic, p, r)); err != nil {
				// Not loaded: its groups or transactional ids get NOT_COORDINATOR until a later
				// metadata change tries again.
				b.lg.Error("loading coordinator state", "topic", topic, "partition", p, "err", err)
				b.mu.Lock()
				loaded[p] = false
				b.mu.Unlock()
			}
		case !lead && was:
			unload(p)
		}
	}
}

// offsetsStore persists coordinator records in one partition of an internal topic
// (__consumer_offsets, __transaction_state) with acks=all.
type offsetsStore struct{ r *partition.Replica }

// Append writes the records as one batch and returns once the ISR has them: the coordinator's
// own records as a plain batch, a producer's transactional offset commits as its transactional
// batch, a transaction marker as the control batch a partition leader writes.
func (s offsetsStore) Append(ctx context.Context, recs []group.Record) error {
	if len(recs) == 0 {
		return nil
	}
	txn := recs[0].Txn
	rs := make([]records.Record, len(recs))
	for i, r := range recs {
		if (r.Txn == nil) != (txn == nil) || (txn != nil && (*r.Txn != *txn || txn.Marker && len(recs) > 1)) {
			return errors.New("server: coordinator records of different transactions in one append")
		}
		rs[i] = records.Record{Key: r.Key, Value: r.Value}
	}
	var err error
	now := time.Now().UnixMilli()
	switch {
	case txn == nil:
		_, err = s.r.Append(ctx, records.Build(rs, now, records.NoProducer), -1)
	case txn.Marker:
		err = s.r.AppendMarker(ctx, txn.ProducerID, txn.ProducerEpoch, txn.Commit, txn.CoordinatorEpoch)
	default:
		err = s.r.AppendTxnOffsets(ctx, records.BuildTxn(rs, now, records.Producer{ID: txn.ProducerID, Epoch: txn.ProducerEpoch, Sequence: -1}))
	}
	if err != nil {
		return fmt.Errorf("server: persisting coordinator records: %w", err)
	}
	return nil
}

// replayOffsets replays a partition of an internal topic in offset order, up to its log end as it was when
// the replay started. A batch it cannot decode is skipped with a log line (only the coordinator
// writes this topic, so that is damage, not data); a log start that moved past the replay is
// followed. Any other read failure ends the replay with an error, so that Load serves nothing
// from a partial state.
func (b *Broker) replayOffsets(topic string, p int32, r *partition.Replica) group.Replay {
	return func(yield func(group.Record) bool) error {
		l := r.Log()
		off, end := l.StartOffset(), l.EndOffset()
		for off < end {
			data, err := l.Read(off, 1<<20, end)
			if errors.Is(err, log.ErrOffsetOutOfRange) && off < l.StartOffset() {
				off = l.StartOffset()
				continue
			}
			if err != nil {
				return fmt.Errorf("read %s-%d at offset %d: %w", topic, p, off, err)
			}
			from := off
			for pos := 0; pos < len(data); {
				h, err := log.ParseBatchHeader(data[pos:])
				if err != nil || h.Size() > len(data)-pos {
					break // a partial batch at the end of the read: read again from off
				}
				batch := data[pos : pos+h.Size()]
				pos += h.Size()
				off = h.LastOffset() + 1
				bs, err := records.Decode(batch)
				if err != nil || len(bs) != 1 {
					b.lg.Error("skipping an undecodable batch of an internal topic", "topic", topic, "partition", p, "offset", h.BaseOffset, "err", err)
					continue
				}
				txn := replayedTxn(bs[0])
				for _, rec := range bs[0].Recs {
					if !yield(group.Record{Key: rec.Key, Value: rec.Value, Txn: txn}) {
						return nil
					}
				}
			}
			if off == from {
				return fmt.Errorf("read %s-%d at offset %d: no whole batch below the log end %d", topic, p, off, end)
			}
		}
		return nil
	}
}

// replayedTxn says how the records of a batch of an internal topic belong to a transaction: nil
// for a plain batch, the producer's for a transactional one, and the outcome for a marker.
func replayedTxn(b records.Batch) *group.Txn {
	if !b.Transactional() {
		return nil
	}
	txn := &group.Txn{ProducerID: b.ProducerID, ProducerEpoch: b.ProducerEpoch}
	if b.Attributes&0x20 != 0 {
		commit, ok := b.Marker()
		if !ok {
			return nil // not a marker: its record is reported undecodable
		}
		txn.Marker, txn.Commit = true, commit
	}
	return txn
}
