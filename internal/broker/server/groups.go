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
	t := img.Topic(meta.OffsetsTopic)
	if t == nil {
		return
	}
	for i, st := range t.Partitions {
		p := int32(i)
		lead := st.Leader == b.cfg.ID
		b.mu.Lock()
		was := b.loaded[p]
		b.loaded[p] = lead
		b.mu.Unlock()
		switch {
		case lead && !was:
			r := b.replica(meta.OffsetsTopic, p)
			if r == nil {
				continue
			}
			store := offsetsStore{r: r}
			if err := b.groups.Load(b.ctx, p, store, b.replayOffsets(p, r)); err != nil {
				// Not loaded: its groups get NOT_COORDINATOR until a later metadata change
				// tries again.
				b.lg.Error("loading group coordinator state", "partition", p, "err", err)
				b.mu.Lock()
				b.loaded[p] = false
				b.mu.Unlock()
			}
		case !lead && was:
			b.groups.Unload(p)
		}
	}
}

// offsetsStore persists group records in one __consumer_offsets partition with acks=all.
type offsetsStore struct{ r *partition.Replica }

// Append writes the records as one batch and returns once the ISR has them.
func (s offsetsStore) Append(ctx context.Context, recs []group.Record) error {
	rs := make([]records.Record, len(recs))
	for i, r := range recs {
		rs[i] = records.Record{Key: r.Key, Value: r.Value}
	}
	batch := records.Build(rs, time.Now().UnixMilli(), records.NoProducer)
	if _, err := s.r.Append(ctx, batch, -1); err != nil {
		return fmt.Errorf("server: persisting group records: %w", err)
	}
	return nil
}

// replayOffsets replays an offsets partition in offset order, up to its log end as it was when
// the replay started. A batch it cannot decode is skipped with a log line (only the coordinator
// writes this topic, so that is damage, not data); a log start that moved past the replay is
// followed. Any other read failure ends the replay with an error, so that Load serves nothing
// from a partial state.
func (b *Broker) replayOffsets(p int32, r *partition.Replica) group.Replay {
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
				return fmt.Errorf("read %s-%d at offset %d: %w", meta.OffsetsTopic, p, off, err)
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
					b.lg.Error("skipping an undecodable batch of the offsets topic", "partition", p, "offset", h.BaseOffset, "err", err)
					continue
				}
				for _, rec := range bs[0].Recs {
					if !yield(group.Record{Key: rec.Key, Value: rec.Value}) {
						return nil
					}
				}
			}
			if off == from {
				return fmt.Errorf("read %s-%d at offset %d: no whole batch below the log end %d", meta.OffsetsTopic, p, off, end)
			}
		}
		return nil
	}
}
