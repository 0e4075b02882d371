package log

import (
	"errors"
	"fmt"
	"math"
)

// Defaults applied to zero fields of Config, as Apache Kafka's.
const (
	DefaultSegmentBytes       int64 = 1 << 30                 // segment.bytes
	DefaultIndexIntervalBytes int   = 4096                    // index.interval.bytes
	DefaultRetentionMs        int64 = 7 * 24 * 60 * 60 * 1000 // retention.ms, 7 days
)

// Config tunes a Log. The zero value of every field means its default.
type Config struct {
	// SegmentBytes is the size at which the active segment is rolled: a
	// batch that would make a non-empty active segment larger than this
	// goes into a new segment. This corresponds to Kafka's segment.bytes.
	// Default 1 GiB; at most math.MaxInt32.
	SegmentBytes int64

	// IndexIntervalBytes is how many bytes of log lie between two offset
	// index entries. This corresponds to Kafka's index.interval.bytes.
	// Default 4096.
	IndexIntervalBytes int

	// RetentionMs is how long a closed segment is kept after its newest
	// batch's MaxTimestamp; -1 keeps segments forever. This corresponds to
	// Kafka's retention.ms. Default 7 days.
	RetentionMs int64

	// RetentionBytes caps the log's size; the oldest closed segments are
	// deleted while the log would stay at or above it without them. -1 (the
	// default) means no limit. This corresponds to Kafka's retention.bytes.
	RetentionBytes int64

	// SyncEveryAppend makes every append fsync before it returns, as
	// FlushMessages 1 does. The default, false, leaves flushing to the OS
	// (and to Sync, roll and Close): as in Kafka, durability comes from
	// replication.
	SyncEveryAppend bool

	// FlushMessages fsyncs the log (its active segment, and the directory
	// when the append created a segment) before an append returns once this
	// many messages (offsets) were appended since the last fsync. This
	// corresponds to Kafka's flush.messages. 0 (the default) and
	// math.MaxInt64 (Kafka's default) mean never; 1 fsyncs every append.
	FlushMessages int64

	// Disk, if set, records which bytes of the log's files are on stable
	// storage, so that a power loss can be simulated (Disk.PowerLoss). Nil
	// records nothing.
	Disk *Disk
}

// withDefaults returns cfg with its zero fields set to their defaults, or
// every problem with it.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	switch {
	case cfg.SegmentBytes == 0:
		cfg.SegmentBytes = DefaultSegmentBytes
	case cfg.SegmentBytes < 0 || cfg.SegmentBytes > math.MaxInt32:
		errs = append(errs, fmt.Errorf("log: Config.SegmentBytes must be in [1, %d], got %d", math.MaxInt32, cfg.SegmentBytes))
	}
	switch {
	case cfg.IndexIntervalBytes == 0:
		cfg.IndexIntervalBytes = DefaultIndexIntervalBytes
	case cfg.IndexIntervalBytes < 0:
		errs = append(errs, fmt.Errorf("log: Config.IndexIntervalBytes must be >= 1, got %d", cfg.IndexIntervalBytes))
	}
	switch {
	case cfg.RetentionMs == 0:
		cfg.RetentionMs = DefaultRetentionMs
	case cfg.RetentionMs < -1:
		errs = append(errs, fmt.Errorf("log: Config.RetentionMs must be -1 or > 0, got %d", cfg.RetentionMs))
	}
	switch {
	case cfg.RetentionBytes == 0:
		cfg.RetentionBytes = -1
	case cfg.RetentionBytes < -1:
		errs = append(errs, fmt.Errorf("log: Config.RetentionBytes must be -1 or > 0, got %d", cfg.RetentionBytes))
	}
	switch {
	case cfg.SyncEveryAppend:
		cfg.FlushMessages = 1
	case cfg.FlushMessages == 0:
		cfg.FlushMessages = math.MaxInt64
	case cfg.FlushMessages < 0:
		errs = append(errs, fmt.Errorf("log: Config.FlushMessages must be >= 1, got %d", cfg.FlushMessages))
	}
	return cfg, errors.Join(errs...)
}
