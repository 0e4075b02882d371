package produce

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors caused by configuration: returned (joined, wrapped in
// [*ConfigError]) by the Apply and Validate functions and by the
// constructors, which refuse such a configuration.
var (
	// ErrUnsafeConfig is matched by every [*ConfigError] whose setting
	// contradicts the preset: with it the producer could lose, duplicate
	// or reorder records that the preset promises to keep.
	ErrUnsafeConfig = errors.New("produce: setting contradicts the preset")

	// ErrInvalidConfig is matched by a [*ConfigError] that the client
	// library itself (kgo or sarama) rejected, independent of the preset.
	ErrInvalidConfig = errors.New("produce: client library rejects the configuration")

	// ErrUnknownPreset is returned for a Preset value or name that is not
	// one of NoLoss, StrictOrder, LeaderAck, AtMostOnce and ExactlyOnce.
	ErrUnknownPreset = errors.New("produce: unknown preset")
)

// Errors of delivery: every failed send is a [*DeliveryError], which
// matches exactly one of these two.
var (
	// ErrOutcomeUnknown means the record may or may not have been written:
	// the send was abandoned (its context ended, the client closed) or
	// failed after a request carrying it had been sent and no definite
	// answer came back. Re-sending it may duplicate it.
	ErrOutcomeUnknown = errors.New("produce: outcome unknown, the record may have been written")

	// ErrNotWritten means the record was certainly not written: it never
	// left the client, or the broker rejected it.
	ErrNotWritten = errors.New("produce: record not written")
)

// Errors of the handle's life cycle.
var (
	// ErrClosed is the cause of a [*DeliveryError] for a send on a closed
	// [Producer], [SaramaSyncProducer] or [SaramaAsyncProducer].
	ErrClosed = errors.New("produce: producer closed")
)

// ConfigError is one setting that contradicts a preset or that the client
// library rejects. Several are joined with errors.Join; [ConfigErrors]
// lists them.
type ConfigError struct {
	Preset  Preset // Preset is the preset the setting was checked against.
	Setting string // Setting is the option or field path, such as "RequiredAcks" or "Net.MaxOpenRequests".
	Value   string // Value is the setting's current value as text, if known.
	Problem string // Problem says why the value breaks the preset's contract.
	Fix     string // Fix says what to change.

	// Err is ErrUnsafeConfig, or ErrInvalidConfig joined with the client
	// library's own error.
	Err error
}

// Error returns "produce: <preset>: <setting> = <value>: <problem> (fix: <fix>)".
func (e *ConfigError) Error() string {
	s := "produce: " + e.Preset.String() + ": " + e.Setting
	if e.Value != "" {
		s += " = " + e.Value
	}
	if e.Problem != "" {
		s += ": " + e.Problem
	}
	if e.Fix != "" {
		s += " (fix: " + e.Fix + ")"
	}
	return s
}

// Unwrap returns Err.
func (e *ConfigError) Unwrap() error { return e.Err }

// ConfigErrors returns every [*ConfigError] in err's tree, in order. It
// returns nil if there are none.
func ConfigErrors(err error) []*ConfigError {
	var out []*ConfigError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *ConfigError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// joinConfigErrors joins errs for one preset, or returns nil if there are
// none.
func joinConfigErrors(errs []*ConfigError) error {
	if len(errs) == 0 {
		return nil
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

// DeliveryError is a record that was not acknowledged as its preset
// requires. It matches ErrOutcomeUnknown if MaybeWritten is true, otherwise
// ErrNotWritten, and also matches Err (the client's or broker's error).
type DeliveryError struct {
	Topic     string // Topic is the record's topic.
	Partition int32  // Partition is the record's partition, or -1 if none was chosen.

	// MaybeWritten is true if the record may have been written despite the
	// error; re-sending it may then duplicate it.
	MaybeWritten bool

	Err error // Err is the underlying cause.
}

// Error describes the failure and whether the record may have been written.
func (e *DeliveryError) Error() string {
	where := "topic " + strconv.Quote(e.Topic)
	if e.Partition >= 0 {
		where += " partition " + strconv.Itoa(int(e.Partition))
	}
	if e.MaybeWritten {
		return fmt.Sprintf("produce: record for %s: outcome unknown, it may have been written: %v", where, e.Err)
	}
	return fmt.Sprintf("produce: record for %s not written: %v", where, e.Err)
}

// Unwrap returns the matching sentinel (ErrOutcomeUnknown or ErrNotWritten)
// and Err.
func (e *DeliveryError) Unwrap() []error {
	sentinel := ErrNotWritten
	if e.MaybeWritten {
		sentinel = ErrOutcomeUnknown
	}
	if e.Err == nil {
		return []error{sentinel}
	}
	return []error{sentinel, e.Err}
}
