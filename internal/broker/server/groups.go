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

// Append writes the records as one batch and returns once the ISR has them.
func (s offsetsStore) Append(ctx context.Context, recs []group.Record) error {
	rs := make([]records.Record, len(recs))
	for i, r := range recs {
		rs[i] = records.Record{Key: r.Key, Value: r.Value}
	}
	batch := records.Build(rs, time.Now().UnixMilli(), records.NoProducer)
	if _, err := s.r.Append(ctx, batch, -1); err != nil {
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
				for _, rec := range bs[0].Recs {
					if !yield(group.Record{Key: rec.Key, Value: rec.Value}) {
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
