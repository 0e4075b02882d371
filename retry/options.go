package retry

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// Default option values.
const (
	DefaultMaxAttempts     = 5
	DefaultConcurrency     = 16
	DefaultMaxBuffered     = 10000
	DefaultCommitInterval  = time.Second
	DefaultShutdownTimeout = 30 * time.Second
	DefaultRefreshInterval = 5 * time.Second
	DefaultAlertInterval   = 5 * time.Second
)

// Topic-name suffixes used when RetryTopic or DeadLetterTopic is not given:
// RetrySuffix and DeadLetterSuffix in the kafkaguard header mode, the Spring
// ones (Spring Kafka's defaults) in SpringHeaders mode.
const (
	RetrySuffix            = ".retry"
	DeadLetterSuffix       = ".dlq"
	SpringRetrySuffix      = "-retry"
	SpringDeadLetterSuffix = "-dlt"
)

// DefaultRetryTopic returns the retry topic of topic's records in the given
// header mode: topic+".retry", or topic+"-retry" for SpringHeaders.
func DefaultRetryTopic(topic string, mode HeaderMode) string {
	if mode == SpringHeaders {
		return topic + SpringRetrySuffix
	}
	return topic + RetrySuffix
}

// DefaultDeadLetterTopic returns the dead-letter topic of topic's records in
// the given header mode: topic+".dlq", or topic+"-dlt" for SpringHeaders.
func DefaultDeadLetterTopic(topic string, mode HeaderMode) string {
	if mode == SpringHeaders {
		return topic + SpringDeadLetterSuffix
	}
	return topic + DeadLetterSuffix
}

// DefaultGroup returns the consumer group a Job uses for retryTopic unless
// Group is given.
func DefaultGroup(retryTopic string) string { return "kafkaguard-retry-" + retryTopic }

// The options of this package are scoped by type, as franz-go's are: each
// constructor takes only the options that apply to it, and passing one that
// does not apply is a compile error, not an option silently ignored.
//
//   - ParkerOpt configures NewParker, JobOpt NewJob, LocksOpt NewKeyLocks,
//     DeadLettersOpt NewDeadLetters.
//   - Opt applies to all four (Topic, RetryTopic, Headers, Logger).
//   - RetryOpt applies to a Parker and a Job: how records are retried
//     (MaxAttempts, RetryBackoff, KeyOrder, ReportMetrics, OnAlert, Tracing);
//     DeadLetterOpt to them and DeadLetters (DeadLetterTopic).
//   - GroupOpt applies to a Job and KeyLocks: the Job's consumer group
//     (Group); ClientOpt to them and DeadLetters (KgoOpts).
//
// Options have bare names (MaxAttempts, not WithMaxAttempts), as in every
// kafkaguard package.
type (
	// ParkerOpt configures a Parker.
	ParkerOpt interface {
		option
		parkerOpt()
	}
	// JobOpt configures a Job.
	JobOpt interface {
		option
		jobOpt()
	}
	// LocksOpt configures KeyLocks.
	LocksOpt interface {
		option
		locksOpt()
	}
	// DeadLettersOpt configures DeadLetters.
	DeadLettersOpt interface {
		option
		deadLettersOpt()
	}
	// Opt configures a Parker, a Job, KeyLocks and DeadLetters alike.
	Opt interface {
		ParkerOpt
		JobOpt
		LocksOpt
		DeadLettersOpt
	}
	// DeadLetterOpt configures a Parker, a Job and DeadLetters alike.
	DeadLetterOpt interface {
		RetryOpt
		DeadLettersOpt
	}
	// ClientOpt configures a Job, KeyLocks and DeadLetters alike.
	ClientOpt interface {
		GroupOpt
		DeadLettersOpt
	}
	// RetryOpt configures a Parker and a Job alike.
	RetryOpt interface {
		ParkerOpt
		JobOpt
	}
	// GroupOpt configures a Job and KeyLocks alike.
	GroupOpt interface {
		JobOpt
		LocksOpt
	}
)

// option is what every option does: set part of the config.
type option interface{ apply(*config) }

type (
	allOpt   func(*config) // Opt
	retryOpt func(*config) // RetryOpt
	groupOpt func(*config) // GroupOpt
	jobOpt   func(*config) // JobOpt
	locksOpt func(*config) // LocksOpt
	dlOpt    func(*config) // DeadLetterOpt
	clOpt    func(*config) // ClientOpt
)

func (f allOpt) apply(c *config)   { f(c) }
func (f retryOpt) apply(c *config) { f(c) }
func (f groupOpt) apply(c *config) { f(c) }
func (f jobOpt) apply(c *config)   { f(c) }
func (f locksOpt) apply(c *config) { f(c) }
func (f dlOpt) apply(c *config)    { f(c) }
func (f clOpt) apply(c *config)    { f(c) }

func (allOpt) parkerOpt()      {}
func (allOpt) jobOpt()         {}
func (allOpt) locksOpt()       {}
func (allOpt) deadLettersOpt() {}
func (dlOpt) parkerOpt()       {}
func (dlOpt) jobOpt()          {}
func (dlOpt) deadLettersOpt()  {}
func (clOpt) jobOpt()          {}
func (clOpt) locksOpt()        {}
func (clOpt) deadLettersOpt()  {}
func (retryOpt) parkerOpt()    {}
func (retryOpt) jobOpt()       {}
func (groupOpt) jobOpt()       {}
func (groupOpt) locksOpt()     {}
func (jobOpt) jobOpt()         {}
func (locksOpt) locksOpt()     {}

type config struct {
	topic           string
	retryTopic      string
	dlqTopic        string
	group           string
	clientOpts      []kgo.Opt
	maxAttempts     int
	backoff         Backoff
	concurrency     int
	maxBuffered     int
	commitInterval  time.Duration
	shutdownTimeout time.Duration
	refreshInterval time.Duration
	locks           *KeyLocks
	logger          *slog.Logger
	metrics         *Metrics
	thresholds      Thresholds
	onAlert         func(Alert)
	headers         HeaderMode
	exactlyOnce     bool         // ExactlyOnce
	instance        string       // ExactlyOnce's instance name
	tracer          trace.Tracer // Tracing; nil: off
}

func newConfig[O option](opts []O) config {
	c := config{
		maxAttempts:     DefaultMaxAttempts,
		backoff:         DefaultBackoff(),
		concurrency:     DefaultConcurrency,
		maxBuffered:     DefaultMaxBuffered,
		commitInterval:  DefaultCommitInterval,
		shutdownTimeout: DefaultShutdownTimeout,
		refreshInterval: DefaultRefreshInterval,
		thresholds:      Thresholds{Interval: DefaultAlertInterval},
	}
	for _, o := range opts {
		if option(o) != nil {
			o.apply(&c)
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.thresholds.Interval == 0 {
		c.thresholds.Interval = DefaultAlertInterval
	}
	return c
}

// retryTopicFor returns the retry topic of records read from topic.
func (c *config) retryTopicFor(topic string) string {
	if c.retryTopic != "" {
		return c.retryTopic
	}
	if c.topic != "" {
		return DefaultRetryTopic(c.topic, c.headers)
	}
	return DefaultRetryTopic(topic, c.headers)
}

// dlqTopicFor returns the dead-letter topic of records read from topic.
func (c *config) dlqTopicFor(topic string) string {
	if c.dlqTopic != "" {
		return c.dlqTopic
	}
	if c.topic != "" {
		return DefaultDeadLetterTopic(c.topic, c.headers)
	}
	return DefaultDeadLetterTopic(topic, c.headers)
}

// fixedRetryTopic is the one retry topic a Job or KeyLocks follows.
func (c *config) fixedRetryTopic() string {
	if c.retryTopic != "" {
		return c.retryTopic
	}
	if c.topic != "" {
		return DefaultRetryTopic(c.topic, c.headers)
	}
	return ""
}

func (c *config) groupName() string {
	if c.group != "" {
		return c.group
	}
	return DefaultGroup(c.fixedRetryTopic())
}

// validate reports every invalid option at once; needTopic says whether a
// fixed retry topic is required (Job, KeyLocks).
func (c *config) validate(needTopic bool) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
	}
	if needTopic && c.fixedRetryTopic() == "" {
		bad("Topic or RetryTopic is required")
	}
	if c.maxAttempts < 1 {
		bad("MaxAttempts must be >= 1, got %d", c.maxAttempts)
	}
	errs = append(errs, c.backoff.validate()...)
	if c.concurrency < 1 {
		bad("Concurrency must be >= 1, got %d", c.concurrency)
	}
	if c.maxBuffered < 1 {
		bad("MaxBuffered must be >= 1, got %d", c.maxBuffered)
	} else if c.maxBuffered < c.concurrency {
		bad("MaxBuffered (%d) must be >= Concurrency (%d)", c.maxBuffered, c.concurrency)
	}
	if c.commitInterval <= 0 {
		bad("CommitInterval must be > 0, got %v", c.commitInterval)
	}
	if c.shutdownTimeout < 0 {
		bad("ShutdownTimeout must be >= 0, got %v", c.shutdownTimeout)
	}
	if c.refreshInterval <= 0 {
		bad("RefreshInterval must be > 0, got %v", c.refreshInterval)
	}
	t := c.thresholds
	if t.Backlog < 0 || t.Age < 0 || t.DeadLetters < 0 || t.Interval < 0 {
		bad("Thresholds must not be negative, got %+v", t)
	}
	if c.locks != nil && needTopic && c.fixedRetryTopic() != "" && c.locks.topic != c.fixedRetryTopic() {
		bad("KeyOrder locks follow %q, not the retry topic %q", c.locks.topic, c.fixedRetryTopic())
	}
	if c.headers != KafkaguardHeaders && c.headers != SpringHeaders {
		bad("Headers: unknown mode %d", c.headers)
	}
	if c.headers == SpringHeaders && c.locks != nil {
		bad("KeyOrder needs the kafkaguard header mode: its resolution records have no Spring equivalent")
	}
	if c.exactlyOnce && c.instance == "" {
		bad("ExactlyOnce needs an instance name, stable across restarts of the same instance")
	}
	if c.exactlyOnce && c.locks != nil {
		bad("KeyOrder cannot be combined with ExactlyOnce yet: its resolution records and key locks follow the retry topic outside the Job's transactions")
	}
	if c.retryTopic != "" && c.retryTopic == c.dlqTopic {
		bad("RetryTopic and DeadLetterTopic must differ, both are %q", c.retryTopic)
	}
	return errors.Join(errs...)
}

// Topic names the topic whose failed records are retried. The retry topic
// defaults to topic+".retry" and the dead-letter topic to topic+".dlq"
// (topic+"-retry" and topic+"-dlt" with SpringHeaders).
// A Parker without Topic or RetryTopic derives both from each record's topic.
func Topic(name string) Opt { return allOpt(func(c *config) { c.topic = name }) }

// RetryTopic sets the topic failure markers are written to and read from.
func RetryTopic(name string) Opt { return allOpt(func(c *config) { c.retryTopic = name }) }

// DeadLetterTopic sets the topic records go to once their attempts are
// exhausted or their error is permanent.
func DeadLetterTopic(name string) DeadLetterOpt { return dlOpt(func(c *config) { c.dlqTopic = name }) }

// Group sets the Job's consumer group on the retry topic; KeyLocks read its
// committed offsets to know which markers are finished. The default is
// DefaultGroup(retry topic).
func Group(name string) GroupOpt { return groupOpt(func(c *config) { c.group = name }) }

// KgoOpts are the franz-go options (seed brokers, TLS, SASL, ...) of the
// clients a Job, KeyLocks or DeadLetters creates. The Job's and DeadLetters'
// producing clients are built with produce.NoLoss in front of them, so
// options that contradict acks=all and idempotent writes are refused.
func KgoOpts(opts ...kgo.Opt) ClientOpt {
	return clOpt(func(c *config) { c.clientOpts = append(c.clientOpts, opts...) })
}

// Headers sets the header format of the markers and dead letters a Parker,
// Job or DeadLetters writes, and the default topic names (see HeaderMode).
// Every reader of this package recognises both formats. The default is
// KafkaguardHeaders.
func Headers(mode HeaderMode) Opt { return allOpt(func(c *config) { c.headers = mode }) }

// MaxAttempts sets how many times a record's handler may run, counting the
// consumer's first run, before the record is dead-lettered. The default is
// DefaultMaxAttempts.
func MaxAttempts(n int) RetryOpt { return retryOpt(func(c *config) { c.maxAttempts = n }) }

// RetryBackoff sets the delay between attempts. The default is
// DefaultBackoff().
func RetryBackoff(b Backoff) RetryOpt { return retryOpt(func(c *config) { c.backoff = b }) }

// Concurrency sets how many handlers the Job runs at once. The default is
// DefaultConcurrency.
func Concurrency(n int) JobOpt { return jobOpt(func(c *config) { c.concurrency = n }) }

// MaxBuffered bounds the markers a Job holds in memory, waiting for their due
// time or running; it stops fetching while the bound is reached. Markers held
// only because an earlier record of their key has not been read yet (key
// order) do not count, so that they cannot stall the Job. The default is
// DefaultMaxBuffered.
func MaxBuffered(n int) JobOpt { return jobOpt(func(c *config) { c.maxBuffered = n }) }

// CommitInterval sets how often the Job commits its progress on the retry
// topic. The default is DefaultCommitInterval.
func CommitInterval(d time.Duration) JobOpt { return jobOpt(func(c *config) { c.commitInterval = d }) }

// ShutdownTimeout bounds how long Job.Run waits, once its context is done,
// for running handlers before cancelling their context. Markers whose
// handler did not finish are not committed and run again on the next start.
// The default is DefaultShutdownTimeout.
func ShutdownTimeout(d time.Duration) JobOpt {
	return jobOpt(func(c *config) { c.shutdownTimeout = d })
}

// RefreshInterval sets how often KeyLocks read the Job group's committed
// offsets to forget finished markers. The default is DefaultRefreshInterval.
func RefreshInterval(d time.Duration) LocksOpt {
	return locksOpt(func(c *config) { c.refreshInterval = d })
}

// KeyOrder keeps the records of each key in order through the retry path,
// using locks (see KeyLocks) to know which keys have a parked record.
// A Parker parks every record of a locked key behind the earlier ones
// (see Parker.Wrap); a Job runs the markers of one key one at a time, in the
// order the records were first read, and writes a KindResolved record when a
// key's record leaves the retry path so that every KeyLocks unlocks it. Both
// the Parker and the Job must be given KeyOrder. Records without a key are
// not ordered.
func KeyOrder(locks *KeyLocks) RetryOpt { return retryOpt(func(c *config) { c.locks = locks }) }

// ExactlyOnce makes the Job write each marker's outcome in one Kafka
// transaction with the retry topic's consumer offset: the new marker of a
// re-park, the dead letter, a record Republish writes, and the commit of the
// marker (or, for a success, the commit alone) become visible to
// read_committed readers together or not at all. The Job reads the retry
// topic read_committed. Its transactional id is TransactionalID(group,
// instance): give each instance of the Job its own name, the same across its
// restarts, so that a restarted instance fences its previous incarnation.
// A rebalance aborts the open transaction, as franz-go's
// GroupTransactSession does, and the Job runs the markers of the aborted
// transaction again. A commit whose answer is lost (the coordinator's broker
// died after taking it) stops Run with an error matching
// produce.ErrOutcomeUnknown: the transaction may have committed, and the Job,
// restarted, resumes from the offsets the brokers hold, so no outcome is
// written twice. The handler itself still runs at least once: an HTTP
// call or a command may be repeated; only the Kafka outputs are exactly
// once. KeyOrder is refused in this mode.
func ExactlyOnce(instance string) JobOpt {
	return jobOpt(func(c *config) { c.exactlyOnce, c.instance = true, instance })
}

// TransactionalID returns the transactional id of an ExactlyOnce Job of the
// given consumer group and instance: group + "/" + instance.
func TransactionalID(group, instance string) string { return group + "/" + instance }

// Logger sets the logger for parks, retries, dead letters and alerts.
// The default discards.
func Logger(l *slog.Logger) Opt { return allOpt(func(c *config) { c.logger = l }) }

// ReportMetrics makes a Parker or Job count into m (see NewMetrics).
func ReportMetrics(m *Metrics) RetryOpt { return retryOpt(func(c *config) { c.metrics = m }) }

// OnAlert calls fn when a threshold in t is crossed (see Alert); a Parker
// checks only the dead-letter threshold.
func OnAlert(t Thresholds, fn func(Alert)) RetryOpt {
	return retryOpt(func(c *config) { c.thresholds, c.onAlert = t, fn })
}
