package partitioner

import (
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Kgo returns a franz-go partitioner, for kgo.RecordPartitioner, that sends a
// keyed record to the partition h picks and a record with a nil key to a
// sticky partition that changes at every new batch (KIP-480), or also after
// the number of records set by StickyRecords.
//
// With HashMurmur2 it places keyed records exactly as
// kgo.StickyKeyPartitioner(nil), the franz-go default, does, and records
// without a key by the same sticky strategy. It reports
// partition count changes of a topic (see the package documentation); with
// StrictPartitionCount it keeps hashing keys over the first count seen.
//
// Kgo does not fail: an unknown h is logged at level Error once, and every
// keyed record is then failed by kgo with an invalid-partition error.
func Kgo(h Hasher, opts ...Opt) kgo.Partitioner {
	cfg := newConfig(opts)
	if !h.valid() {
		cfg.logger.Error("kafkaguard: kgo partitioner with an unknown hasher fails every keyed record", slog.String("hasher", h.String()))
	}
	return &kgoPartitioner{h: h, cfg: cfg}
}

type kgoPartitioner struct {
	h   Hasher
	cfg config
}

// ForTopic implements kgo.Partitioner.
func (p *kgoPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	action := "hashing keys over the new count"
	if p.cfg.strict {
		action = "strict: hashing keys over the old count; new partitions get no keyed records"
	}
	return &kgoTopicPartitioner{
		h:      p.h,
		guard:  countGuard{topic: topic, cfg: &p.cfg, action: action},
		sticky: newSticky(p.cfg.stickyRecords),
	}
}

// kgoTopicPartitioner implements kgo.TopicPartitioner and
// kgo.TopicPartitionerOnNewBatch. kgo calls it for one record at a time.
type kgoTopicPartitioner struct {
	h      Hasher
	guard  countGuard
	sticky sticky
}

func (*kgoTopicPartitioner) RequiresConsistency(r *kgo.Record) bool { return r.Key != nil }

func (t *kgoTopicPartitioner) OnNewBatch() { t.sticky.next() }

// Partition returns an index in [0, n), or -1, which makes kgo fail the
// record, when no index is right for it.
func (t *kgoTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if checkCount(n) != nil {
		return -1
	}
	if r.Key == nil {
		// For records that do not require consistency, n counts the
		// writable partitions only, so it is no partition count and
		// is not given to the guard.
		return t.sticky.pick(n)
	}
	if !t.h.valid() {
		return -1
	}
	use, _ := t.guard.observe(n)
	p := t.h.partition(r.Key, use)
	if p >= n {
		return -1 // strict, and the key's partition is gone
	}
	return p
}
