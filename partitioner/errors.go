package partitioner

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidPartitionCount is returned when a partition count is below 1
	// or above the largest Kafka partition count (math.MaxInt32).
	ErrInvalidPartitionCount = errors.New("kafkaguard: invalid partition count")

	// ErrUnknownHasher is returned for a Hasher value or name that is none of
	// HashMurmur2, HashFNV1a and HashCRC32.
	ErrUnknownHasher = errors.New("kafkaguard: unknown hasher")

	// ErrPartitionCountChanged is matched, with errors.Is, by every
	// *PartitionCountChangedError.
	ErrPartitionCountChanged = errors.New("kafkaguard: partition count changed")
)

// PartitionCountChangedError is returned by a strict Sarama partitioner (see
// StrictPartitionCount) for a keyed message when the topic's partition
// count differs from the count it saw with its first keyed message.
type PartitionCountChangedError struct {
	Topic string // topic whose partition count changed
	Old   int    // count seen with the first keyed record
	New   int    // count seen now
}

func (e *PartitionCountChangedError) Error() string {
	return fmt.Sprintf("kafkaguard: partition count of topic %q changed from %d to %d: keyed records would move partition and lose per-key order",
		e.Topic, e.Old, e.New)
}

// Unwrap returns ErrPartitionCountChanged.
func (e *PartitionCountChangedError) Unwrap() error { return ErrPartitionCountChanged }
