package server

import (
	"context"
	"fmt"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
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
			if err := b.groups.Load(b.ctx, p, store, replayOffsets(r)); err != nil {
				b.lg.Error("loading group coordinator state", "partition", p, "err", err)
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

// replayOffsets yields the records of an offsets partition in offset order, up to its log end.
func replayOffsets(r *partition.Replica) func(yield func(group.Record) bool) {
	return func(yield func(group.Record) bool) {
		l := r.Log()
		off, end := l.StartOffset(), l.EndOffset()
		for off < end {
			data, err := l.Read(off, 1<<20, end)
			if err != nil || len(data) == 0 {
				return
			}
			batches, err := records.Decode(data)
			if err != nil || len(batches) == 0 {
				return
			}
			for _, bt := range batches {
				for _, rec := range bt.Recs {
					if !yield(group.Record{Key: rec.Key, Value: rec.Value}) {
						return
					}
				}
				off = bt.FirstOffset + int64(bt.LastOffsetDelta) + 1
			}
		}
	}
}
