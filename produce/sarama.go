package produce

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// saramaMaxRetryLevels bounds Producer.Retry.Max: sarama's async producer
// allocates Retry.Max+1 retry levels for every partition it produces to.
const saramaMaxRetryLevels = 1 << 16

// saramaMinBackoff is the least retry backoff ApplySarama leaves in place
// when it raises Producer.Retry.Max to cover DeliveryTimeout, so that the
// number of retry levels stays small.
const saramaMinBackoff = 100 * time.Millisecond

// ApplySarama writes p into cfg and then validates cfg as [ValidateSarama]
// does, returning an error joining one [*ConfigError] for every setting
// that still contradicts p. cfg is modified even if an error is returned.
//
// It writes Producer.RequiredAcks (WaitForAll, WaitForLocal or NoResponse),
// Producer.Idempotent (on for NoLoss, and for StrictOrder when cfg.Version
// supports it; off for LeaderAck and AtMostOnce), Net.MaxOpenRequests = 1
// (not for AtMostOnce), Producer.Retry.MaxBufferLength and MaxBufferBytes =
// 0 so a full retry buffer blocks, and, for the retrying presets, sets
// Producer.Retry.Max (and a Producer.Retry.Backoff under 100ms) so that the
// retries span [DeliveryTimeout]: a shorter span is raised, and a Retry.Max
// above 65536 (sarama allocates that many retry levels per partition) is
// replaced. AtMostOnce gets Producer.Retry.Max = 0.
//
// ExactlyOnce is written as NoLoss plus Consumer.IsolationLevel =
// ReadCommitted, for a config shared with the consumer of a
// consume-transform-produce loop. The transactional id is the
// application's: set Producer.Transaction.ID, which ExactlyOnce requires.
//
// It does not write settings whose change would alter how the application
// uses sarama, such as Producer.Return.Errors or Version; those are only
// reported.
func ApplySarama(p Preset, cfg *sarama.Config) error {
	if err := p.check(); err != nil {
		return err
	}
	if cfg == nil {
		return nilSaramaConfig(p)
	}
	pr := &cfg.Producer
	switch p {
	case NoLoss, StrictOrder, ExactlyOnce:
		pr.RequiredAcks = sarama.WaitForAll
		pr.Idempotent = p != StrictOrder || cfg.Version.IsAtLeast(sarama.V0_11_0_0)
		if p == ExactlyOnce {
			cfg.Consumer.IsolationLevel = sarama.ReadCommitted
		}
	case LeaderAck:
		pr.RequiredAcks = sarama.WaitForLocal
		pr.Idempotent = false
	case AtMostOnce:
		pr.RequiredAcks = sarama.NoResponse
		pr.Idempotent = false
		pr.Retry.Max = 0
	}
	if p.retries() {
		cfg.Net.MaxOpenRequests = 1
		pr.Retry.MaxBufferLength = 0
		pr.Retry.MaxBufferBytes = 0
		raiseSaramaRetries(cfg)
	}
	return ValidateSarama(p, cfg)
}

// ApplySaramaConsumer writes into cfg what a consumer reading the output of
// a producer with preset p must set: for ExactlyOnce,
// Consumer.IsolationLevel = ReadCommitted, so the consumer reads a
// transaction's messages only once it committed and never those of an
// aborted transaction. The other presets write no transactions and need
// nothing. It returns a [*ConfigError] if cfg cannot read committed
// messages (Version older than V0_11_0_0).
func ApplySaramaConsumer(p Preset, cfg *sarama.Config) error {
	if err := p.check(); err != nil {
		return err
	}
	if cfg == nil {
		return nilSaramaConfig(p)
	}
	if p != ExactlyOnce {
		return nil
	}
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	if !cfg.Version.IsAtLeast(sarama.V0_11_0_0) {
		return &ConfigError{Preset: p, Setting: "Version", Value: cfg.Version.String(),
			Problem: "reading committed messages needs Kafka 0.11.0.0 or later",
			Fix:     "set Version to the brokers' version (at least sarama.V0_11_0_0)", Err: ErrUnsafeConfig}
	}
	return nil
}

// raiseSaramaRetries raises Producer.Retry.Max (and a too short fixed
// backoff) until the retries span DeliveryTimeout, within
// saramaMaxRetryLevels.
func raiseSaramaRetries(cfg *sarama.Config) {
	r := &cfg.Producer.Retry
	if r.Max > saramaMaxRetryLevels {
		r.Max = 0
	}
	if saramaRetryWindow(cfg) >= DeliveryTimeout {
		return
	}
	if r.BackoffFunc == nil {
		if r.Backoff < saramaMinBackoff {
			r.Backoff = 2 * saramaMinBackoff
		}
		r.Max = int((DeliveryTimeout + r.Backoff - 1) / r.Backoff)
		return
	}
	n := max(r.Max, 1)
	for n < saramaMaxRetryLevels {
		r.Max = n
		if saramaRetryWindow(cfg) >= DeliveryTimeout {
			return
		}
		n *= 2
	}
	r.Max = saramaMaxRetryLevels
}

// saramaRetryWindow is the total backoff sarama sleeps while retrying a
// message Producer.Retry.Max times. Counting stops once it reaches
// DeliveryTimeout.
func saramaRetryWindow(cfg *sarama.Config) time.Duration {
	r := cfg.Producer.Retry
	if r.Max <= 0 {
		return 0
	}
	if r.BackoffFunc == nil {
		if r.Backoff <= 0 {
			return 0
		}
		if int64(r.Max) > int64(math.MaxInt64/r.Backoff) {
			return math.MaxInt64
		}
		return time.Duration(r.Max) * r.Backoff
	}
	var sum time.Duration
	for i := 1; i <= r.Max && i <= saramaMaxRetryLevels && sum < DeliveryTimeout; i++ {
		if b := r.BackoffFunc(i, r.Max); b > 0 {
			sum += b
		}
	}
	return sum
}

func nilSaramaConfig(p Preset) error {
	return &ConfigError{Preset: p, Setting: "*sarama.Config", Value: "nil",
		Problem: "no configuration to check", Fix: "pass sarama.NewConfig()", Err: ErrInvalidConfig}
}

// ValidateSarama checks cfg against p without modifying it and returns an
// error joining one [*ConfigError] for every contradicting setting, named
// by its field path, or nil. It also reports what sarama's own
// cfg.Validate rejects outside the settings checked here.
//
// Contradictions, by field:
//
//   - Producer.RequiredAcks: NoLoss, StrictOrder and ExactlyOnce need
//     WaitForAll, LeaderAck needs WaitForLocal, AtMostOnce needs
//     NoResponse; Producer.Idempotent needs WaitForAll.
//   - Producer.Idempotent: NoLoss and ExactlyOnce need it, and so does a
//     Producer.Transaction.ID under StrictOrder (sarama refuses a
//     transactional producer without it).
//   - Producer.Transaction.ID: ExactlyOnce needs one; LeaderAck and
//     AtMostOnce refuse one (transactions need idempotence and WaitForAll).
//   - Producer.Transaction.Timeout: ExactlyOnce needs it above 0.
//   - Version: Producer.Idempotent needs V0_11_0_0 or later.
//   - Net.MaxOpenRequests: Producer.Idempotent (and so ExactlyOnce) needs
//     exactly 1; without idempotence and with retries more than 1 can
//     reorder.
//   - Producer.Retry.Max: the retrying presets need retries spanning at
//     least [MinRetryWindow] (Retry.Max × Retry.Backoff, or the sum of
//     Retry.BackoffFunc); AtMostOnce needs 0; more than 65536 makes sarama
//     allocate that many retry levels per partition.
//   - Producer.Return.Errors: off, failures are only logged; refused by the
//     retrying presets.
//   - Producer.Retry.MaxBufferLength, Producer.Retry.MaxBufferBytes: a
//     limit fails messages with ErrProducerRetryBufferOverflow instead of
//     blocking; refused by the retrying presets.
//
// sarama's async producer blocks Input() when its ChannelBufferSize
// buffer is full, which is the blocking behaviour the presets want, so
// ChannelBufferSize is not checked.
func ValidateSarama(p Preset, cfg *sarama.Config) error {
	if err := p.check(); err != nil {
		return err
	}
	if cfg == nil {
		return nilSaramaConfig(p)
	}
	var errs []*ConfigError
	unsafe := func(setting, value, problem, fix string) {
		errs = append(errs, &ConfigError{Preset: p, Setting: setting, Value: value, Problem: problem, Fix: fix, Err: ErrUnsafeConfig})
	}
	invalid := func(setting, value, problem, fix string) {
		errs = append(errs, &ConfigError{Preset: p, Setting: setting, Value: value, Problem: problem, Fix: fix, Err: ErrInvalidConfig})
	}
	pr := cfg.Producer
	// ExactlyOnce's transactions need idempotence: check what follows
	// from it even when Producer.Idempotent itself is the contradiction.
	idem := pr.Idempotent || p == ExactlyOnce
	txnID := pr.Transaction.ID != ""

	// Producer.RequiredAcks.
	want := sarama.WaitForAll
	switch p {
	case LeaderAck:
		want = sarama.WaitForLocal
	case AtMostOnce:
		want = sarama.NoResponse
	}
	switch {
	case pr.RequiredAcks != want && p.wantsAllAcks():
		unsafe("Producer.RequiredAcks", saramaAcksString(pr.RequiredAcks),
			"acks=all is required: a leader that dies before its followers copied a message loses it although the send succeeded",
			"Producer.RequiredAcks = sarama.WaitForAll")
	case pr.RequiredAcks != want:
		unsafe("Producer.RequiredAcks", saramaAcksString(pr.RequiredAcks),
			"the "+p.String()+" preset is defined by its acks setting",
			"Producer.RequiredAcks = sarama."+saramaAcksString(want)+", or choose the NoLoss preset for acks=all")
	case idem && pr.RequiredAcks != sarama.WaitForAll:
		unsafe("Producer.RequiredAcks", saramaAcksString(pr.RequiredAcks),
			"Producer.Idempotent requires WaitForAll",
			"Producer.Idempotent = false")
	}

	// Producer.Idempotent and Version.
	switch {
	case p == NoLoss && !idem:
		unsafe("Producer.Idempotent", "false",
			"NoLoss needs idempotent writes: without them a retried batch that the broker already wrote is written again",
			"Producer.Idempotent = true, or use the StrictOrder preset if the cluster denies IDEMPOTENT_WRITE")
	case p == ExactlyOnce && !pr.Idempotent:
		unsafe("Producer.Idempotent", "false",
			"transactions need idempotent writes (sarama refuses a Producer.Transaction.ID without them)",
			"Producer.Idempotent = true")
	case p == StrictOrder && !idem && txnID:
		unsafe("Producer.Idempotent", "false",
			"a Producer.Transaction.ID needs idempotent writes (sarama refuses the combination)",
			"Producer.Idempotent = true, or Producer.Transaction.ID = \"\"")
	}

	// Producer.Transaction.
	switch {
	case p == ExactlyOnce && !txnID:
		unsafe("Producer.Transaction.ID", `""`,
			"ExactlyOnce writes in transactions: without a transactional id nothing is atomic and a restarted producer cannot fence its previous instance",
			"set Producer.Transaction.ID to an id that stays the same across restarts of this producer and differs between concurrent producers")
	case txnID && (p == LeaderAck || p == AtMostOnce):
		unsafe("Producer.Transaction.ID", strconv.Quote(pr.Transaction.ID),
			"transactions need idempotent writes and WaitForAll, which the "+p.String()+" preset switches off",
			"Producer.Transaction.ID = \"\", or use the ExactlyOnce preset")
	}
	if p == ExactlyOnce && pr.Transaction.Timeout <= 0 {
		invalid("Producer.Transaction.Timeout", pr.Transaction.Timeout.String(),
			"the broker refuses a transaction timeout that is not positive (INVALID_TRANSACTION_TIMEOUT)",
			"Producer.Transaction.Timeout = time.Minute (sarama's default)")
	}
	if idem && !cfg.Version.IsAtLeast(sarama.V0_11_0_0) {
		unsafe("Version", cfg.Version.String(),
			"Producer.Idempotent needs Kafka 0.11.0.0 or later",
			"set Version to the brokers' version (at least sarama.V0_11_0_0), or use StrictOrder with Producer.Idempotent = false")
	}

	// Net.MaxOpenRequests.
	switch {
	case cfg.Net.MaxOpenRequests <= 0:
		invalid("Net.MaxOpenRequests", strconv.Itoa(cfg.Net.MaxOpenRequests),
			"must be at least 1", "Net.MaxOpenRequests = 1")
	case idem && cfg.Net.MaxOpenRequests != 1:
		unsafe("Net.MaxOpenRequests", strconv.Itoa(cfg.Net.MaxOpenRequests),
			"sarama's idempotent producer keeps order only with one request in flight and rejects more",
			"Net.MaxOpenRequests = 1")
	case !idem && pr.Retry.Max > 0 && cfg.Net.MaxOpenRequests > 1:
		unsafe("Net.MaxOpenRequests", strconv.Itoa(cfg.Net.MaxOpenRequests),
			"with retries and without idempotent writes, a retried batch can land after a later one, reordering the partition",
			"Net.MaxOpenRequests = 1")
	}

	// Producer.Retry.Max.
	switch {
	case pr.Retry.Max > saramaMaxRetryLevels:
		invalid("Producer.Retry.Max", strconv.Itoa(pr.Retry.Max),
			fmt.Sprintf("sarama allocates Retry.Max+1 retry levels for every partition; more than %d wastes memory", saramaMaxRetryLevels),
			"lower Producer.Retry.Max and raise Producer.Retry.Backoff so the retries still span "+DeliveryTimeout.String())
	case p.retries() && idem && pr.Retry.Max <= 0:
		invalid("Producer.Retry.Max", strconv.Itoa(pr.Retry.Max),
			"Producer.Idempotent requires retries", saramaRetryFix(cfg))
	case p.retries() && saramaRetryWindow(cfg) < MinRetryWindow:
		unsafe("Producer.Retry.Max", strconv.Itoa(pr.Retry.Max),
			fmt.Sprintf("retries span %v of backoff, less than %v: messages fail during an ordinary leader election", saramaRetryWindow(cfg), MinRetryWindow),
			saramaRetryFix(cfg))
	case !p.retries() && pr.Retry.Max != 0:
		unsafe("Producer.Retry.Max", strconv.Itoa(pr.Retry.Max),
			"a retried message can be written twice, which breaks at-most-once",
			"Producer.Retry.Max = 0")
	}

	if p.retries() {
		if !pr.Return.Errors {
			unsafe("Producer.Return.Errors", "false",
				"failed messages are only logged, never reported to the application",
				"Producer.Return.Errors = true and read the Errors() channel")
		}
		if pr.Retry.MaxBufferLength > 0 {
			unsafe("Producer.Retry.MaxBufferLength", strconv.Itoa(pr.Retry.MaxBufferLength),
				"a full retry buffer fails messages with sarama.ErrProducerRetryBufferOverflow instead of blocking",
				"Producer.Retry.MaxBufferLength = 0")
		}
		if pr.Retry.MaxBufferBytes > 0 {
			unsafe("Producer.Retry.MaxBufferBytes", strconv.FormatInt(pr.Retry.MaxBufferBytes, 10),
				"a full retry buffer fails messages with sarama.ErrProducerRetryBufferOverflow instead of blocking",
				"Producer.Retry.MaxBufferBytes = 0")
		}
	}

	// Whatever sarama rejects beyond the settings above: validate a copy
	// in which those settings agree with each other.
	c := *cfg
	c.Producer.Idempotent = c.Producer.Transaction.ID != ""
	if c.Producer.Idempotent {
		c.Producer.RequiredAcks = sarama.WaitForAll
		c.Net.MaxOpenRequests = 1
		c.Producer.Retry.Max = max(c.Producer.Retry.Max, 1)
		if !c.Version.IsAtLeast(sarama.V0_11_0_0) {
			c.Version = sarama.V0_11_0_0
		}
	}
	if c.Consumer.IsolationLevel == sarama.ReadCommitted && !c.Version.IsAtLeast(sarama.V0_11_0_0) && p == ExactlyOnce {
		c.Version = sarama.V0_11_0_0 // the Version contradiction above says it
	}
	c.Net.MaxOpenRequests = max(c.Net.MaxOpenRequests, 1)
	if err := c.Validate(); err != nil {
		errs = append(errs, &ConfigError{Preset: p, Setting: "sarama.Config.Validate", Problem: err.Error(),
			Fix: "change the field sarama names", Err: fmt.Errorf("%w: %w", ErrInvalidConfig, err)})
	}
	return joinConfigErrors(errs)
}

// saramaRetryFix says which retry settings make the retries span
// DeliveryTimeout.
func saramaRetryFix(cfg *sarama.Config) string {
	c := *cfg
	raiseSaramaRetries(&c)
	r := c.Producer.Retry
	if r.BackoffFunc == nil && r.Backoff != cfg.Producer.Retry.Backoff {
		return fmt.Sprintf("Producer.Retry.Max = %d and Producer.Retry.Backoff = %v (ApplySarama sets them)", r.Max, r.Backoff)
	}
	return fmt.Sprintf("Producer.Retry.Max = %d (ApplySarama sets it)", r.Max)
}

func saramaAcksString(a sarama.RequiredAcks) string {
	switch a {
	case sarama.WaitForAll:
		return "WaitForAll"
	case sarama.WaitForLocal:
		return "WaitForLocal"
	case sarama.NoResponse:
		return "NoResponse"
	}
	return strconv.Itoa(int(a))
}
