package ordering

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Errors caused by how the package is called.
var (
	// ErrInvalidOption is wrapped by every error New returns for an option
	// that is out of range or does not fit the others.
	ErrInvalidOption = errors.New("ordering: invalid option")

	// ErrOffsetOrder is returned by Tracker.Add and Dispatcher.Submit for an
	// offset that is not above every offset already added to the partition
	// (or below the offset the partition was assigned at).
	ErrOffsetOrder = errors.New("ordering: offset out of order")

	// ErrUnknownOffset is returned by Tracker.Done for an offset that is not
	// pending: it was never added or it is already done.
	ErrUnknownOffset = errors.New("ordering: offset not pending")

	// ErrNotAssigned is returned for a partition that is not assigned to the
	// Dispatcher (never assigned, or revoked).
	ErrNotAssigned = errors.New("ordering: partition not assigned")

	// ErrAssigned is returned by Dispatcher.Assign for a partition that is
	// already assigned.
	ErrAssigned = errors.New("ordering: partition already assigned")

	// ErrNotFailed is returned by Dispatcher.Resolve and Dispatcher.Retry for
	// a record that is not a failure waiting to be resolved.
	ErrNotFailed = errors.New("ordering: record has no pending failure")

	// ErrClosed is returned by Dispatcher methods called after Close.
	ErrClosed = errors.New("ordering: dispatcher closed")
)

// Errors caused by data read back from Kafka.
var (
	// ErrInvalidMetadata is wrapped by every error DecodeMetadata returns
	// for a string that is not commit metadata written by this package.
	ErrInvalidMetadata = errors.New("ordering: invalid commit metadata")

	// ErrMetadataMismatch is returned when commit metadata describes a
	// different offset than the one it was committed with, so it cannot be
	// trusted to name the records done above that offset.
	ErrMetadataMismatch = errors.New("ordering: commit metadata does not match committed offset")
)

// PanicError is the failure reported for a handler that panicked. The
// record is treated as failed, like a handler that returned an error.
type PanicError struct {
	// Value is the value the handler panicked with.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("ordering: handler panicked: %v", e.Value)
}

// Guard calls f and returns its error, or a *PanicError if f panicked. The
// Dispatcher runs every handler through it; so does code that must see a
// handler's panic as a failure before the Dispatcher does (consume's retry
// path parks it).
func Guard(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return f()
}

// Unwrap returns Value if it is an error, so errors.Is and errors.As see
// through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
