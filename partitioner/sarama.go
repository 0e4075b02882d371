package partitioner

import (
	"fmt"

	"github.com/IBM/sarama"
)

// defaultSaramaStickyRecords is how many records without a key a Sarama
// partitioner sends to one partition unless StickyRecords says otherwise.
const defaultSaramaStickyRecords = 100

// Sarama returns a sarama partitioner constructor, for
// sarama.Config.Producer.Partitioner, that sends a message with a key to the
// partition h picks and a message with a nil Key to a sticky partition that
// changes after 100 messages (see StickyRecords).
//
// With HashFNV1a it places keyed messages exactly as sarama.NewHashPartitioner,
// with HashCRC32 as sarama.NewConsistentCRCHashPartitioner and with
// HashMurmur2 as sarama.NewMurmur2Partitioner. It reports partition count
// changes of a topic (see the package documentation); with
// StrictPartitionCount it then fails keyed messages with a
// *PartitionCountChangedError. An unknown h fails keyed messages with an error
// wrapping ErrUnknownHasher.
func Sarama(h Hasher, opts ...Opt) sarama.PartitionerConstructor {
	cfg := newConfig(opts)
	if cfg.stickyRecords == 0 {
		cfg.stickyRecords = defaultSaramaStickyRecords
	}
	action := "hashing keys over the new count"
	if cfg.strict {
		action = "strict: failing keyed messages with ErrPartitionCountChanged"
	}
	return func(topic string) sarama.Partitioner {
		return &saramaPartitioner{
			h:      h,
			topic:  topic,
			guard:  countGuard{topic: topic, cfg: &cfg, action: action},
			sticky: newSticky(cfg.stickyRecords),
		}
	}
}

// saramaPartitioner implements sarama.DynamicConsistencyPartitioner. sarama
// builds one per topic and calls it for one message at a time.
type saramaPartitioner struct {
	h      Hasher
	topic  string
	guard  countGuard
	sticky sticky
}

// Partition implements sarama.Partitioner.
func (s *saramaPartitioner) Partition(msg *sarama.ProducerMessage, numPartitions int32) (int32, error) {
	n := int(numPartitions)
	if err := checkCount(n); err != nil {
		return -1, fmt.Errorf("%w (topic %q)", err, s.topic)
	}
	if msg.Key == nil {
		// sarama passes the writable partitions only for messages
		// that do not require consistency: not a partition count.
		return int32(s.sticky.pick(n)), nil
	}
	if !s.h.valid() {
		return -1, fmt.Errorf("%w %v (topic %q)", ErrUnknownHasher, s.h, s.topic)
	}
	key, err := msg.Key.Encode()
	if err != nil {
		return -1, fmt.Errorf("kafkaguard: encoding key for topic %q: %w", s.topic, err)
	}
	use, changed := s.guard.observe(n)
	if changed && s.guard.cfg.strict {
		return -1, &PartitionCountChangedError{Topic: s.topic, Old: use, New: n}
	}
	return int32(s.h.partition(key, use)), nil
}

// RequiresConsistency implements sarama.Partitioner.
func (*saramaPartitioner) RequiresConsistency() bool { return true }

// MessageRequiresConsistency implements sarama.DynamicConsistencyPartitioner:
// only messages with a key must stay on their partition.
func (*saramaPartitioner) MessageRequiresConsistency(msg *sarama.ProducerMessage) bool {
	return msg.Key != nil
}
