package retry

import (
	"errors"

	"github.com/cenkalti/backoff/v4"
)

// Errors caused by how the package is called.
var (
	// ErrInvalidOption is wrapped by every error NewParker, NewJob and
	// NewKeyLocks return for an option that is out of range, missing, or does
	// not fit the others.
	ErrInvalidOption = errors.New("retry: invalid option")

	// ErrUnsafeClient is returned by NewParker and Republish for a client
	// that does not produce with acks=all: a marker acknowledged by the
	// leader alone can be lost, and with it the failed record whose offset
	// the consumer has already committed.
	ErrUnsafeClient = errors.New("retry: client does not produce with acks=all")

	// ErrClosed is returned by methods called after Close, and by Job.Run
	// called a second time.
	ErrClosed = errors.New("retry: closed")

	// ErrKeyLocksTopic is returned by Parker.Park for a record whose retry
	// topic is not the one the Parker's KeyLocks follow.
	ErrKeyLocksTopic = errors.New("retry: record's retry topic is not followed by the key locks")

	// ErrNotRun is wrapped by the error of a handler made by Parker.Wrap when
	// it could neither run the record nor park it behind its key: the key
	// locks could not be read, or the marker could not be written. The
	// record's handler never ran, so Park of such an error writes a marker
	// that counts no failed attempt.
	ErrNotRun = errors.New("retry: record not run")
)

// Errors caused by data read back from Kafka.
var (
	// ErrNotMarker is wrapped by the error ParseMarker returns for a record
	// that carries no kafkaguard retry headers at all.
	ErrNotMarker = errors.New("retry: record is not a failure marker")

	// ErrInvalidMarker is wrapped by the error ParseMarker returns for a
	// record whose kafkaguard retry headers are malformed. The Job sends
	// such records to the dead-letter topic rather than dropping them.
	ErrInvalidMarker = errors.New("retry: malformed failure marker")
)

// PermanentError marks a handler error that retrying cannot fix: the record
// goes to the dead-letter topic at once, whatever attempts are left. Create one
// with Permanent. A *backoff.PermanentError from github.com/cenkalti/backoff/v4
// is honoured the same way.
type PermanentError struct {
	Err error
}

// Permanent wraps err so that the Parker and the Job dead-letter the record
// instead of retrying it. Permanent(nil) returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Error returns the wrapped error's message.
func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "retry: permanent error"
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err, or an error it wraps, is a
// *PermanentError or a *backoff.PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	var be *backoff.PermanentError
	return errors.As(err, &pe) || errors.As(err, &be)
}
