package ordering

import (
	"errors"
	"fmt"
	"log/slog"
)

// Mode says which records a Dispatcher keeps in order.
type Mode int

const (
	// KeyOrder runs the records of one key of one partition one at a time,
	// in offset order, and different keys in parallel. A record with an
	// empty or nil key is ordered with the other empty-keyed records of its
	// partition.
	KeyOrder Mode = iota
	// PartitionOrder runs the records of one partition one at a time, in
	// offset order, and different partitions in parallel.
	PartitionOrder
	// Unordered runs every record independently, up to the concurrency.
	Unordered
)

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case KeyOrder:
		return "KeyOrder"
	case PartitionOrder:
		return "PartitionOrder"
	case Unordered:
		return "Unordered"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Default option values.
const (
	// DefaultConcurrency is the default number of worker goroutines.
	DefaultConcurrency = 16
	// DefaultMaxBuffered is the default bound on records held.
	DefaultMaxBuffered = 10000
)

// Opt configures a Dispatcher (New, NewWithFailureFunc). Options have bare
// names (Concurrency, not WithConcurrency), as in every kafkaguard package.
type Opt interface{ apply(*cfg) }

type optFunc func(*cfg)

func (f optFunc) apply(c *cfg) { f(c) }

type cfg struct {
	mode        Mode
	concurrency int
	maxBuffered int
	maxMetadata int
	logger      *slog.Logger
	metrics     *Metrics
}

func defaultCfg() cfg {
	return cfg{
		mode:        KeyOrder,
		concurrency: DefaultConcurrency,
		maxBuffered: DefaultMaxBuffered,
		maxMetadata: DefaultMetadataMaxBytes,
	}
}

// OrderBy sets which records are kept in order. The default is KeyOrder.
func OrderBy(m Mode) Opt { return optFunc(func(c *cfg) { c.mode = m }) }

// Concurrency sets the number of worker goroutines, the most records that
// run at once. The default is DefaultConcurrency.
func Concurrency(n int) Opt { return optFunc(func(c *cfg) { c.concurrency = n }) }

// MaxBuffered bounds the records a Dispatcher holds: queued, running, and
// failed ones waiting for Resolve or Retry. Submit blocks while the bound is
// reached. In KeyOrder it should be well above Concurrency, so that enough
// distinct keys are at hand to keep every worker busy. The default is
// DefaultMaxBuffered; it plays the part of a consumer's
// max.poll.records / fetch buffering.
func MaxBuffered(n int) Opt { return optFunc(func(c *cfg) { c.maxBuffered = n }) }

// MetadataMaxBytes bounds the length of the commit metadata in checkpoints.
// It corresponds to Kafka's broker setting offset.metadata.max.bytes; set it
// to that value if the brokers lowered it. Zero disables the metadata. The
// default is DefaultMetadataMaxBytes.
func MetadataMaxBytes(n int) Opt { return optFunc(func(c *cfg) { c.maxMetadata = n }) }

// Logger sets the logger for failures and revocations. The default discards.
func Logger(l *slog.Logger) Opt { return optFunc(func(c *cfg) { c.logger = l }) }

func (c *cfg) validate() error {
	var errs []error
	if c.mode < KeyOrder || c.mode > Unordered {
		errs = append(errs, fmt.Errorf("%w: OrderBy mode %d unknown", ErrInvalidOption, int(c.mode)))
	}
	if c.concurrency < 1 {
		errs = append(errs, fmt.Errorf("%w: Concurrency must be >= 1, got %d", ErrInvalidOption, c.concurrency))
	}
	if c.maxBuffered < 1 {
		errs = append(errs, fmt.Errorf("%w: MaxBuffered must be >= 1, got %d", ErrInvalidOption, c.maxBuffered))
	}
	if c.maxMetadata < 0 {
		errs = append(errs, fmt.Errorf("%w: MetadataMaxBytes must be >= 0, got %d", ErrInvalidOption, c.maxMetadata))
	}
	return errors.Join(errs...)
}
