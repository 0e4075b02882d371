package log

import (
	"errors"
	"fmt"
)

// Errors caused by the bytes a caller hands to the log (a producer's or a
// leader's record batches).
var (
	// ErrCorruptBatch is returned (wrapped in a *BatchError) when bytes that
	// should hold Kafka v2 record batches do not: a short or torn batch, a
	// magic byte other than 2, a CRC-32C mismatch, an impossible length, or
	// record counts and offset deltas that disagree. Kafka answers such a
	// produce with CORRUPT_MESSAGE.
	ErrCorruptBatch = errors.New("log: corrupt record batch")

	// ErrBatchTooLarge is returned (wrapped in a *BatchError) when a batch
	// is larger than the limit passed to ValidateBatches. Kafka answers such
	// a produce with MESSAGE_TOO_LARGE.
	ErrBatchTooLarge = errors.New("log: record batch too large")

	// ErrInvalidRecord is returned (wrapped in a *BatchError) by
	// ProduceValidator.Validate when an intact batch breaks a rule Kafka's
	// LogValidator enforces on a producer's batch: more than one batch, a
	// base offset other than 0, a record count that disagrees with the
	// offsets or the records, a control batch, a producer id without a base
	// sequence, malformed records or compressed data that does not
	// decompress. Kafka answers such a produce with INVALID_RECORD.
	ErrInvalidRecord = errors.New("log: invalid record batch")

	// ErrInvalidTimestamp is returned (wrapped in a *BatchError) by
	// ProduceValidator.Validate for a record stamped more than
	// TimestampAfterMax ahead of the broker's clock. Kafka answers such a
	// produce with INVALID_TIMESTAMP.
	ErrInvalidTimestamp = errors.New("log: record timestamp out of range")
)

// Errors caused by the offsets a caller asks for.
var (
	// ErrOffsetOutOfRange is returned when an offset lies outside
	// [StartOffset(), EndOffset()]. Kafka answers such a fetch with
	// OFFSET_OUT_OF_RANGE.
	ErrOffsetOutOfRange = errors.New("log: offset out of range")

	// ErrOffsetMismatch is returned by AppendFollower when the first batch
	// does not start at EndOffset(), or a later batch does not start right
	// after the previous one.
	ErrOffsetMismatch = errors.New("log: batch offsets do not continue the log")

	// ErrStaleEpoch is returned by AppendLeader when the leader epoch is
	// older than the latest epoch already in the log.
	ErrStaleEpoch = errors.New("log: stale leader epoch")
)

// Errors about the state of the Log itself.
var (
	// ErrClosed is returned by every method of a Log after Close or Delete.
	ErrClosed = errors.New("log: log closed")

	// ErrFailed is returned by every write after an I/O error left the
	// files in a state the log could not roll back (Kafka would take the
	// log directory offline). Reopening the log recovers it.
	ErrFailed = errors.New("log: log failed after an unrecoverable I/O error")
)

// A BatchError describes why the batch at a given place in a byte slice is
// not a valid record batch. It wraps ErrCorruptBatch, ErrBatchTooLarge,
// ErrInvalidRecord or ErrInvalidTimestamp.
type BatchError struct {
	Index  int    // 0-based position of the batch in the slice
	Pos    int64  // byte position of the batch's first byte
	Reason string // what is wrong, e.g. "crc mismatch: stored 0x..., computed 0x..."
	Err    error  // ErrCorruptBatch, ErrBatchTooLarge, ErrInvalidRecord or ErrInvalidTimestamp
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("log: batch %d at byte %d: %s", e.Index, e.Pos, e.Reason)
}

// Unwrap returns the sentinel error.
func (e *BatchError) Unwrap() error { return e.Err }
