package consume

import (
	"errors"
	"fmt"
)

// Errors caused by how the package is called.
var (
	// ErrInvalidOption is wrapped by every error New and NewSarama return
	// for an option that is out of range, contradicts another, or would
	// re-enable auto-commit.
	ErrInvalidOption = errors.New("consume: invalid option")

	// ErrRunning is returned by Run when the consumer is already running or
	// has already run: a Consumer runs once.
	ErrRunning = errors.New("consume: consumer already ran")

	// ErrClosed is returned by methods called after the consumer stopped.
	ErrClosed = errors.New("consume: consumer closed")
)

// Errors reported while consuming.
var (
	// ErrDrainTimeout is wrapped by the error Run returns when records were
	// still running at the end of the drain timeout on shutdown. The
	// committed offsets never pass such a record: it runs again on the next
	// start.
	ErrDrainTimeout = errors.New("consume: records still running at the drain timeout")
)

// CommitError is one partition's offset commit that Kafka refused. Nothing
// is lost by a refused commit: the partition's next owner starts from the
// previous commit and runs some records again.
type CommitError struct {
	Topic     string
	Partition int32
	Offset    int64 // the offset that was to be committed
	Err       error // the Kafka error, matchable with errors.Is (kerr)
}

// Error implements error.
func (e *CommitError) Error() string {
	return fmt.Sprintf("consume: commit %s/%d offset %d: %v", e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the Kafka error.
func (e *CommitError) Unwrap() error { return e.Err }

// ParkError reports a record whose handler failed and whose hand-over to
// the retry path (Parker.Park) failed as well. The record then blocks what
// the order keeps behind it, like a handler error with no retry path.
// errors.Is matches both the Parker's and the handler's error.
type ParkError struct {
	Topic      string
	Partition  int32
	Offset     int64
	HandlerErr error // what the handler returned
	Err        error // what Park returned
}

// Error implements error.
func (e *ParkError) Error() string {
	return fmt.Sprintf("consume: park %s/%d offset %d: %v (handler: %v)",
		e.Topic, e.Partition, e.Offset, e.Err, e.HandlerErr)
}

// Unwrap returns the Parker's and the handler's errors.
func (e *ParkError) Unwrap() []error { return []error{e.Err, e.HandlerErr} }
