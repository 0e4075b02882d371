package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkaguard/kafkaguard/internal/groupengine"
	"github.com/kafkaguard/kafkaguard/ordering"
)

// Order says which records run one after another; records that need not be
// ordered run in parallel.
type Order = ordering.Mode

const (
	// KeyOrder runs the records of one key of one partition one at a time,
	// in offset order, and different keys in parallel (up to the
	// concurrency). Records with an empty key are ordered with each other.
	// This is the default.
	KeyOrder = ordering.KeyOrder
	// PartitionOrder runs the records of one partition one at a time, in
	// offset order, and different partitions in parallel. On a topic with
	// one partition and a group with one member it gives global order.
	PartitionOrder = ordering.PartitionOrder
	// Unordered runs every record independently, up to the concurrency.
	Unordered = ordering.Unordered
)

// Default option values.
const (
	// DefaultConcurrency is the default number of records handled at once.
	DefaultConcurrency = ordering.DefaultConcurrency
	// DefaultMaxBuffered is the default bound on records held in memory.
	DefaultMaxBuffered = ordering.DefaultMaxBuffered
	// DefaultCommitInterval is the default time between periodic commits.
	DefaultCommitInterval = time.Second
	// DefaultDrainTimeout is the default bound on waiting for running
	// records when partitions are revoked or the consumer stops.
	DefaultDrainTimeout = 10 * time.Second
	// DefaultTxnInterval is the default length of an exactly-once
	// consumer's transaction window (NewExactlyOnce).
	DefaultTxnInterval = 100 * time.Millisecond
)

// Handler processes one record. Returning nil marks the record handled:
// its offset becomes committable once every record below it is handled too.
// Returning an error, or panicking, blocks the record's key (KeyOrder) or
// partition (PartitionOrder) until the failure is resolved, unless a retry
// path (RetryPath) takes the record. ctx is cancelled when the record's partition
// is revoked and the drain timeout passes, or when the consumer stops.
type Handler func(ctx context.Context, r *kgo.Record) error

// Parker is a durable retry path: Park stores a failure marker for a record
// whose handler failed (for example by producing it to a retry topic with
// acks=all) and returns nil only once the marker is durable. A parked
// record counts as handled, so the records behind it go on. If Park returns
// an error the record blocks like a handler error. The retry package
// implements Parker.
type Parker interface {
	Park(ctx context.Context, r *kgo.Record, err error) error
}

// AssignmentAware is implemented by a Parker that must hear when this consumer takes over a
// partition (retry.Parker does: it then re-reads which keys are parked before it answers for that
// partition, so a key parked by the partition's previous owner stays in order).
type AssignmentAware interface {
	Forget(topic string, partition int32)
}

// Failure is a record whose handler failed and that was not parked. It
// blocks what its Order keeps behind it until it is resolved
// (Consumer.Resolve) or run again (Consumer.Retry).
type Failure struct {
	// Record is the failed record. The sarama adapter gives a copy of the
	// message as a *kgo.Record, so one retry path serves both clients.
	Record *kgo.Record
	// Err is the handler's error, a *ordering.PanicError if it panicked,
	// or a *ParkError if the handler failed and parking failed too.
	Err error
	// Attempts is the number of times the handler ran for the record.
	Attempts int
	// Batch is the failed batch of a batch Consumer (NewBatch), whose
	// first record is Record; nil otherwise.
	Batch []*kgo.Record
}

// The options of this package are scoped by type, as franz-go's are: Opt
// configures a Consumer (New) and a SaramaHandler (NewSarama) alike,
// ConsumerOpt only a Consumer (KgoOpts, Client), SaramaOpt only a
// SaramaHandler, and ExactlyOnceOpt an exactly-once Consumer
// (NewExactlyOnce), which takes every ConsumerOpt too, and TxnInterval, and
// BatchOpt a batch Consumer (NewBatch): every ConsumerOpt, and BatchSize. An
// option that does not apply to a constructor does not compile. Options
// have bare names (Concurrency, not WithConcurrency), as in every kafkaguard
// package.
type (
	// ExactlyOnceOpt configures an exactly-once Consumer (NewExactlyOnce).
	ExactlyOnceOpt interface {
		option
		exactlyOnceOpt()
	}
	// ConsumerOpt configures a Consumer, exactly-once or not.
	ConsumerOpt interface {
		ExactlyOnceOpt
		BatchOpt
		consumerOpt()
	}
	// SaramaOpt configures a SaramaHandler.
	SaramaOpt interface {
		option
		saramaOpt()
	}
	// Opt configures a Consumer and a SaramaHandler alike.
	Opt interface {
		ConsumerOpt
		SaramaOpt
	}
)

// option is what every option does: set part of the config.
type option interface{ apply(*config) }

type (
	bothOpt        func(*config) // Opt
	consumerOpt    func(*config) // ConsumerOpt
	exactlyOnceOpt func(*config) // ExactlyOnceOpt
)

func (f bothOpt) apply(c *config)        { f(c) }
func (f consumerOpt) apply(c *config)    { f(c) }
func (f exactlyOnceOpt) apply(c *config) { f(c) }
func (bothOpt) consumerOpt()             {}
func (bothOpt) saramaOpt()               {}
func (bothOpt) exactlyOnceOpt()          {}
func (consumerOpt) consumerOpt()         {}
func (consumerOpt) exactlyOnceOpt()      {}
func (exactlyOnceOpt) exactlyOnceOpt()   {}

type config struct {
	kgoOpts        []kgo.Opt
	client         *kgo.Client
	hooks          *Hooks
	order          Order
	concurrency    int
	maxBuffered    int
	metadataMax    int
	parker         Parker
	retries        *RetryPolicy // Retries; nil: none
	batchSize      int          // BatchSize
	batch          bool         // NewBatch: the dispatcher's messages are batches (batchOf)
	commitInterval time.Duration
	txnInterval    time.Duration
	drainTimeout   time.Duration
	logger         *slog.Logger
	onError        func(Failure)
	metrics        *Metrics
	tracer         trace.Tracer // Tracing; nil: off
}

func newConfig[O option](opts []O) config {
	c := defaultConfig()
	for _, o := range opts {
		if option(o) != nil {
			o.apply(&c)
		}
	}
	return c
}

func defaultConfig() config {
	return config{
		order:          KeyOrder,
		concurrency:    DefaultConcurrency,
		maxBuffered:    DefaultMaxBuffered,
		metadataMax:    ordering.DefaultMetadataMaxBytes,
		commitInterval: DefaultCommitInterval,
		txnInterval:    DefaultTxnInterval,
		drainTimeout:   DefaultDrainTimeout,
		batchSize:      DefaultBatchSize,
	}
}

// KgoOpts gives the franz-go options of the Consumer's client: at least
// kgo.SeedBrokers, kgo.ConsumerGroup and kgo.ConsumeTopics (or
// kgo.ConsumeRegex). The Consumer adds kgo.DisableAutoCommit and
// kgo.BlockRebalanceOnPoll and owns the partition callbacks, so options that
// auto-commit (kgo.AutoCommitMarks, kgo.GreedyAutoCommit) or set
// kgo.OnPartitionsAssigned, kgo.OnPartitionsRevoked or kgo.OnPartitionsLost
// are refused. It may be given more than once; the options add up. To run
// on a client the application creates itself, use Client instead.
func KgoOpts(opts ...kgo.Opt) ConsumerOpt {
	return consumerOpt(func(c *config) { c.kgoOpts = append(c.kgoOpts, opts...) })
}

// Hooks let a Consumer run on a *kgo.Client the application creates
// itself: put Hooks.KgoOpts among the client's options, then pass the
// client and the same Hooks to New with Client. A Hooks serves one
// Consumer.
type Hooks struct{ b *groupengine.Binder }

// NewHooks returns Hooks for one Consumer.
func NewHooks() *Hooks { return &Hooks{b: groupengine.NewBinder()} }

// KgoOpts returns the options the client needs: kgo.DisableAutoCommit,
// kgo.BlockRebalanceOnPoll and the partition callbacks through which the
// Consumer drains and commits on revocation. Put them after the
// application's own options. Until the Consumer is created the callbacks
// wait, so the client is assigned nothing the Consumer does not know of.
func (h *Hooks) KgoOpts() []kgo.Opt { return h.b.Opts() }

// Client runs the Consumer on cl, a group client the application created
// with h.KgoOpts() among its options (and kgo.ConsumerGroup and
// kgo.ConsumeTopics). The application owns cl: Run neither creates nor
// closes it. Close cl after Run returns; closing leaves the group, which
// commits what the Consumer finished after its last commit. Client and
// KgoOpts exclude each other.
func Client(cl *kgo.Client, h *Hooks) ConsumerOpt {
	return consumerOpt(func(c *config) { c.client, c.hooks = cl, h })
}

// OrderBy sets which records run one after another. The default is
// KeyOrder.
func OrderBy(o Order) Opt { return bothOpt(func(c *config) { c.order = o }) }

// Concurrency sets how many records are handled at once. The default is
// DefaultConcurrency.
func Concurrency(n int) Opt { return bothOpt(func(c *config) { c.concurrency = n }) }

// MaxBuffered bounds the records held in memory: waiting, running, or
// failed and waiting to be resolved, with the records behind them. When the
// bound is reached the Consumer stops polling and pauses fetching of its
// partitions (kgo PauseFetchPartitions) until half of it is free again, so
// memory stays bounded even when one key is stuck. In KeyOrder it should be
// well above the concurrency. The default is DefaultMaxBuffered; it plays
// the part of Kafka's max.poll.records.
func MaxBuffered(n int) Opt { return bothOpt(func(c *config) { c.maxBuffered = n }) }

// MetadataMaxBytes bounds the commit metadata that names records done
// above the committed offset. It must not exceed the brokers'
// offset.metadata.max.bytes (4096 by default, the default here); zero
// commits no metadata, so records done above the committed offset run
// again after a crash.
func MetadataMaxBytes(n int) Opt {
	return bothOpt(func(c *config) { c.metadataMax = n })
}

// RetryPath sets the retry path: a record whose handler fails is handed to
// p, and counts as handled once Park returns nil.
func RetryPath(p Parker) Opt { return bothOpt(func(c *config) { c.parker = p }) }

// CommitInterval sets how often the committable offsets are committed
// while consuming; they are also committed on revocation and on shutdown.
// A shorter interval means fewer records run again after a crash. The
// default is DefaultCommitInterval. (Kafka's auto.commit.interval.ms plays
// this part for auto-commit, which the Consumer turns off.)
func CommitInterval(d time.Duration) Opt {
	return bothOpt(func(c *config) { c.commitInterval = d })
}

// TxnInterval sets the length of an exactly-once Consumer's transaction
// window: records are polled and handled in parallel for d, then the
// window's outputs and input offsets are committed in one transaction. A
// longer window costs fewer transactions per record but holds the outputs
// back from read_committed readers longer (they see them at the commit);
// after a crash or a rebalance the window's records run again. The default
// is DefaultTxnInterval. (Kafka Streams' commit.interval.ms plays this part
// under exactly_once_v2.)
func TxnInterval(d time.Duration) ExactlyOnceOpt {
	return exactlyOnceOpt(func(c *config) { c.txnInterval = d })
}

// DrainTimeout bounds how long revocation and shutdown wait for running
// records before committing. Keep it well below the group's rebalance
// timeout (kgo.RebalanceTimeout, Kafka's max.poll.interval.ms). The default
// is DefaultDrainTimeout.
func DrainTimeout(d time.Duration) Opt {
	return bothOpt(func(c *config) { c.drainTimeout = d })
}

// Logger sets the logger for failures, commits and rebalances. The
// default discards.
func Logger(l *slog.Logger) Opt { return bothOpt(func(c *config) { c.logger = l }) }

// OnError sets a function called for every record whose handler failed
// and that was not parked, after its key or partition is blocked. It runs on
// a worker goroutine, so it should return promptly; it may call Resolve or
// Retry, also later from another goroutine.
func OnError(fn func(Failure)) Opt { return bothOpt(func(c *config) { c.onError = fn }) }

// validate checks the options that both clients share, reporting every
// violation at once.
func (c *config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
	}
	if c.order < KeyOrder || c.order > Unordered {
		bad("OrderBy: unknown order %d", int(c.order))
	}
	if c.concurrency < 1 {
		bad("Concurrency must be >= 1, got %d", c.concurrency)
	}
	if c.maxBuffered < 1 {
		bad("MaxBuffered must be >= 1, got %d", c.maxBuffered)
	}
	if c.metadataMax < 0 {
		bad("MetadataMaxBytes must be >= 0, got %d", c.metadataMax)
	}
	if c.commitInterval <= 0 {
		bad("CommitInterval must be > 0, got %v", c.commitInterval)
	}
	if c.txnInterval <= 0 {
		bad("TxnInterval must be > 0, got %v", c.txnInterval)
	}
	if c.drainTimeout <= 0 {
		bad("DrainTimeout must be > 0, got %v", c.drainTimeout)
	}
	errs = append(errs, c.retries.validate()...)
	return errors.Join(errs...)
}

func (c *config) log() *slog.Logger {
	if c.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.logger
}
