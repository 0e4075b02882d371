package produce

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KgoOpts returns the kgo options that configure a client for p. It returns
// nil for an unknown preset (which [ApplyKgo] reports).
//
// NoLoss and StrictOrder: RequiredAcks(AllISRAcks()), idempotent writes
// (kgo's default, with up to 5 requests in flight), unlimited RecordRetries
// and RecordDeliveryTimeout([DeliveryTimeout]). A full buffer blocks Produce
// (kgo's default without ManualFlushing).
//
// LeaderAck: DisableIdempotentWrite(), RequiredAcks(LeaderAck()), one
// request in flight, unlimited retries and the same delivery timeout.
//
// AtMostOnce: DisableIdempotentWrite(), RequiredAcks(NoAck()) and
// RecordRetries(0).
//
// ExactlyOnce: NoLoss's options and FetchIsolationLevel(ReadCommitted()),
// for a client that also consumes (a consume-transform-produce loop). The
// transactional id is the application's: add kgo.TransactionalID(id),
// which ApplyKgo and ValidateKgo require.
func KgoOpts(p Preset) []kgo.Opt {
	switch p {
	case NoLoss, StrictOrder:
		return []kgo.Opt{
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordRetries(math.MaxInt),
			kgo.RecordDeliveryTimeout(DeliveryTimeout),
		}
	case ExactlyOnce:
		return []kgo.Opt{
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordRetries(math.MaxInt),
			kgo.RecordDeliveryTimeout(DeliveryTimeout),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		}
	case LeaderAck:
		return []kgo.Opt{
			kgo.DisableIdempotentWrite(),
			kgo.RequiredAcks(kgo.LeaderAck()),
			kgo.MaxProduceRequestsInflightPerBroker(1),
			kgo.RecordRetries(math.MaxInt),
			kgo.RecordDeliveryTimeout(DeliveryTimeout),
		}
	case AtMostOnce:
		return []kgo.Opt{
			kgo.DisableIdempotentWrite(),
			kgo.RequiredAcks(kgo.NoAck()),
			kgo.RecordRetries(0),
		}
	}
	return nil
}

// KgoConsumerOpts returns the kgo options that a consumer reading what a
// producer with preset p wrote must use. For ExactlyOnce it is
// FetchIsolationLevel(ReadCommitted()): the consumer then reads a
// transaction's records only once it committed, never those of an aborted
// transaction, and stops at the last stable offset while a transaction is
// open. The other presets write no transactions and need nothing (nil).
func KgoConsumerOpts(p Preset) []kgo.Opt {
	if p == ExactlyOnce {
		return []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted())}
	}
	return nil
}

// ApplyKgo returns a new slice holding KgoOpts(p) followed by opts, so that
// the application's options override the preset's, after checking that the
// result keeps the preset's contract. If it does not, ApplyKgo returns nil
// and an error joining one [*ConfigError] per contradicting setting. opts is
// not modified.
func ApplyKgo(p Preset, opts []kgo.Opt) ([]kgo.Opt, error) {
	all, _, err := applyKgo(p, opts)
	return all, err
}

// applyKgo is ApplyKgo that also returns the settings it read.
func applyKgo(p Preset, opts []kgo.Opt) ([]kgo.Opt, kgoSettings, error) {
	if err := p.check(); err != nil {
		return nil, kgoSettings{}, err
	}
	all := append(KgoOpts(p), opts...)
	s, err := validateKgo(p, all)
	if err != nil {
		return nil, s, err
	}
	return all, s, nil
}

// ValidateKgo checks opts as they are (kgo's defaults for everything they
// do not set) against p and returns an error joining one [*ConfigError] for
// every contradicting setting, or nil. It reads the options by building
// clients that are never used for I/O and are closed before it returns.
//
// Contradictions, by option:
//
//   - RequiredAcks: NoLoss, StrictOrder and ExactlyOnce need AllISRAcks, LeaderAck needs
//     LeaderAck, AtMostOnce needs NoAck; idempotent writes need AllISRAcks.
//   - DisableIdempotentWrite: NoLoss and ExactlyOnce need idempotent writes.
//   - MaxProduceRequestsInflightPerBroker: must stay unset (1) with
//     idempotent writes, where kgo itself keeps up to 5 in flight; without
//     idempotence and with retries it must be 1, else a retry can reorder.
//   - AllowIdempotentProduceCancellation: lets a cancelled record be written
//     twice; refused by NoLoss and StrictOrder.
//   - RecordRetries: must be unlimited for the retrying presets (bound the
//     time with RecordDeliveryTimeout instead) and 0 for AtMostOnce.
//   - RecordDeliveryTimeout: if set, at least [MinRetryWindow] and at least
//     ProduceRequestTimeout + ProducerLinger.
//   - ManualFlushing: a full buffer then fails records with ErrMaxBuffered
//     instead of blocking; refused by the retrying presets.
//   - TransactionalID: ExactlyOnce needs one, not empty; LeaderAck and
//     AtMostOnce refuse one (transactions need idempotent writes and
//     acks=all). A transactional id also needs idempotent writes under
//     StrictOrder.
//   - TransactionTimeout: ExactlyOnce needs it above 0.
//   - FetchIsolationLevel: under ExactlyOnce, a client that also consumes
//     (ConsumeTopics or ConsumePartitions) must read committed records only.
//
// Contradictions that kgo itself refuses (a transactional id with
// idempotence off or with AllowIdempotentProduceCancellation, an empty
// transactional id) are named as these settings, not as kgo's error.
func ValidateKgo(p Preset, opts []kgo.Opt) error {
	_, err := validateKgo(p, opts)
	return err
}

// validateKgo is ValidateKgo that also returns the settings it read.
func validateKgo(p Preset, opts []kgo.Opt) (kgoSettings, error) {
	if err := p.check(); err != nil {
		return kgoSettings{}, err
	}
	s, err := readKgo(opts)
	if err != nil {
		return s, &ConfigError{
			Preset:  p,
			Setting: "kgo.NewClient",
			Problem: err.Error(),
			Fix:     "change the option kgo names",
			Err:     fmt.Errorf("%w: %w", ErrInvalidConfig, err),
		}
	}
	return s, joinConfigErrors(s.check(p))
}

// kgoSettings are the producer settings of a []kgo.Opt that the presets
// care about.
type kgoSettings struct {
	idempotent      bool
	allowCancel     bool
	transactional   bool   // TransactionalID is set
	txnID           string // its value
	txnTimeout      time.Duration
	manualFlushing  bool
	consumes        bool // ConsumeTopics or ConsumePartitions is set
	readCommitted   bool // FetchIsolationLevel(ReadCommitted())
	acks            kgo.Acks
	inflight        int
	inflightText    string // set when the exact value could not be read
	retries         int64
	deliveryTimeout time.Duration
	produceTimeout  time.Duration
	linger          time.Duration
	logger          kgo.Logger
}

// readKgo reads the settings opts produce. kgo refuses to build a client
// whose idempotence, acks, in-flight and transactional settings disagree,
// and those are exactly the settings to report. So the TransactionalID
// options are set aside (see splitTxn) and read on their own, and each of
// the others is read from a client built with the rest forced to agreeing
// values.
func readKgo(opts []kgo.Opt) (kgoSettings, error) {
	rest, txn := splitTxn(opts)
	s, err := readKgoPlain(rest)
	if err != nil || len(txn) == 0 {
		return s, err
	}
	s.transactional = true
	// The last TransactionalID wins; an empty one is refused by kgo, so
	// a client that cannot be built holds "".
	_ = withClient(txn[len(txn)-1:], nil, func(cl *kgo.Client) {
		s.txnID, _ = optAt[string](cl, kgo.TransactionalID, 0)
	})
	return s, nil
}

// txnProbeID stands in for an application's transactional id while its
// options are read.
const txnProbeID = "kafkaguard-probe"

// splitTxn returns opts without the options that set a transactional id,
// and those options. An option sets one when a client with idempotence off
// refuses it (kgo refuses a transactional id without idempotent writes)
// while a client that overrides the transactional id accepts it. Options
// are probed one by one only if opts as a whole set a transactional id or
// cannot be read, so plain options cost one client.
func splitTxn(opts []kgo.Opt) (rest, txn []kgo.Opt) {
	plain := false
	if withClient(opts, []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxProduceRequestsInflightPerBroker(1)}, func(cl *kgo.Client) {
		plain = !optBool2(cl, kgo.TransactionalID)
	}) == nil && plain {
		return opts, nil
	}
	for _, o := range opts {
		refusedWithoutIdempotence := withClient([]kgo.Opt{kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(1), o}, nil, nil) != nil
		if refusedWithoutIdempotence && withClient([]kgo.Opt{o, kgo.TransactionalID(txnProbeID)}, nil, nil) == nil {
			txn = append(txn, o)
			continue
		}
		rest = append(rest, o)
	}
	return rest, txn
}

// readKgoPlain reads the settings of opts, which set no transactional id.
func readKgoPlain(opts []kgo.Opt) (kgoSettings, error) {
	var s kgoSettings
	// Every other setting is read with acks and in-flight forced valid;
	// if kgo still refuses, it refuses something outside the presets.
	err := withClient(opts, []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxProduceRequestsInflightPerBroker(1)}, func(cl *kgo.Client) {
		s.idempotent = !optBool(cl, kgo.DisableIdempotentWrite)
		s.allowCancel = optBool(cl, kgo.AllowIdempotentProduceCancellation)
		s.manualFlushing = optBool(cl, kgo.ManualFlushing)
		s.retries, _ = optAt[int64](cl, kgo.RecordRetries, 0)
		s.deliveryTimeout, _ = optAt[time.Duration](cl, kgo.RecordDeliveryTimeout, 0)
		s.produceTimeout, _ = optAt[time.Duration](cl, kgo.ProduceRequestTimeout, 0)
		s.linger, _ = optAt[time.Duration](cl, kgo.ProducerLinger, 0)
		s.logger, _ = optAt[kgo.Logger](cl, kgo.WithLogger, 0)
		s.txnTimeout, _ = optAt[time.Duration](cl, kgo.TransactionTimeout, 0)
		topics, _ := optAt[[]string](cl, kgo.ConsumeTopics, 0)
		parts, _ := optAt[map[string]map[int32]kgo.Offset](cl, kgo.ConsumePartitions, 0)
		s.consumes = len(topics) > 0 || len(parts) > 0
		level, _ := optAt[int8](cl, kgo.FetchIsolationLevel, 0)
		s.readCommitted = level == 1
	})
	if err != nil {
		return s, err
	}

	// Acks: with idempotence off kgo accepts any acks.
	err = withClient(opts, []kgo.Opt{kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(1)}, func(cl *kgo.Client) {
		s.acks, _ = optAt[kgo.Acks](cl, kgo.RequiredAcks, 0)
	})
	if err != nil {
		return s, err
	}

	// In-flight: readable whenever idempotence is off and the value is
	// positive, which kgo requires.
	idem := []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}
	if s.idempotent {
		idem = append(idem, kgo.DisableIdempotentWrite())
	}
	if withClient(opts, idem, func(cl *kgo.Client) {
		s.inflight, _ = optAt[int](cl, kgo.MaxProduceRequestsInflightPerBroker, 0)
	}) != nil {
		s.inflight, s.inflightText = 0, "<= 0"
	}
	return s, nil
}

// withClient builds a client from opts followed by overrides, calls fn (if
// not nil) with it and closes it. It returns kgo's error if kgo refuses the
// options.
func withClient(opts, overrides []kgo.Opt, fn func(*kgo.Client)) error {
	all := make([]kgo.Opt, 0, len(opts)+len(overrides))
	all = append(all, opts...)
	all = append(all, overrides...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if fn != nil {
		fn(cl)
	}
	return nil
}

// optAt returns element i of cl.OptValues(opt) as a T.
func optAt[T any](cl *kgo.Client, opt any, i int) (T, bool) {
	var zero T
	vs := cl.OptValues(opt)
	if i >= len(vs) || vs[i] == nil {
		return zero, false
	}
	v, ok := vs[i].(T)
	return v, ok
}

func optBool(cl *kgo.Client, opt any) bool {
	v, _ := optAt[bool](cl, opt, 0)
	return v
}

// optBool2 returns the second value of a pointer-backed option such as
// TransactionalID: whether it is set.
func optBool2(cl *kgo.Client, opt any) bool {
	v, _ := optAt[bool](cl, opt, 1)
	return v
}

func acksString(a kgo.Acks) string {
	switch a {
	case kgo.AllISRAcks():
		return "AllISRAcks"
	case kgo.LeaderAck():
		return "LeaderAck"
	case kgo.NoAck():
		return "NoAck"
	}
	return fmt.Sprintf("%v", a)
}

func (s kgoSettings) acksValue() string { return acksString(s.acks) }

func (s kgoSettings) inflightValue() string {
	if s.inflightText != "" {
		return s.inflightText
	}
	return strconv.Itoa(s.inflight)
}

func retriesString(n int64) string {
	if n >= math.MaxInt32 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

// check returns one ConfigError per setting that contradicts p.
func (s kgoSettings) check(p Preset) []*ConfigError {
	var errs []*ConfigError
	unsafe := func(setting, value, problem, fix string) {
		errs = append(errs, &ConfigError{Preset: p, Setting: setting, Value: value, Problem: problem, Fix: fix, Err: ErrUnsafeConfig})
	}
	invalid := func(setting, value, problem, fix string) {
		errs = append(errs, &ConfigError{Preset: p, Setting: setting, Value: value, Problem: problem, Fix: fix, Err: ErrInvalidConfig})
	}

	// RequiredAcks.
	want, wantText := kgo.AllISRAcks(), "kgo.RequiredAcks(kgo.AllISRAcks())"
	switch p {
	case LeaderAck:
		want, wantText = kgo.LeaderAck(), "kgo.RequiredAcks(kgo.LeaderAck())"
	case AtMostOnce:
		want, wantText = kgo.NoAck(), "kgo.RequiredAcks(kgo.NoAck())"
	}
	switch {
	case s.acks != want && p.wantsAllAcks():
		unsafe("RequiredAcks", s.acksValue(),
			"acks=all is required: a leader that dies before its followers copied a record loses it although the send succeeded",
			"remove the RequiredAcks option or use "+wantText)
	case s.acks != want:
		unsafe("RequiredAcks", s.acksValue(),
			"the "+p.String()+" preset is defined by its acks setting",
			"use "+wantText+", or choose the NoLoss preset for acks=all")
	case s.idempotent && s.acks != kgo.AllISRAcks():
		unsafe("RequiredAcks", s.acksValue(),
			"idempotent writes require acks=all",
			"add kgo.DisableIdempotentWrite()")
	}

	// DisableIdempotentWrite.
	switch {
	case p == NoLoss && !s.idempotent:
		unsafe("DisableIdempotentWrite", "set",
			"NoLoss needs idempotent writes: without them a retried batch that the broker already wrote is written again",
			"remove kgo.DisableIdempotentWrite(), or use the StrictOrder preset if the cluster denies IDEMPOTENT_WRITE")
	case p == ExactlyOnce && !s.idempotent:
		unsafe("DisableIdempotentWrite", "set",
			"transactions need idempotent writes (kgo refuses a transactional id without them)",
			"remove kgo.DisableIdempotentWrite()")
	case p == StrictOrder && !s.idempotent && s.transactional:
		unsafe("DisableIdempotentWrite", "set",
			"a transactional id needs idempotent writes (kgo refuses the combination)",
			"remove kgo.DisableIdempotentWrite(), or remove kgo.TransactionalID")
	}

	// TransactionalID and TransactionTimeout.
	switch {
	case p == ExactlyOnce && !s.transactional:
		unsafe("TransactionalID", "unset",
			"ExactlyOnce writes in transactions: without a transactional id nothing is atomic and a restarted producer cannot fence its previous instance",
			"add kgo.TransactionalID(id), with an id that stays the same across restarts of this producer and differs between concurrent producers")
	case s.transactional && s.txnID == "":
		invalid("TransactionalID", `""`,
			"an empty transactional id is refused by kgo and by the broker",
			"kgo.TransactionalID(id) with a non-empty id")
	}
	if s.transactional && (p == LeaderAck || p == AtMostOnce) {
		unsafe("TransactionalID", strconv.Quote(s.txnID),
			"transactions need idempotent writes and acks=all, which the "+p.String()+" preset switches off",
			"remove kgo.TransactionalID, or use the ExactlyOnce preset")
	}
	if p == ExactlyOnce && s.txnTimeout <= 0 {
		invalid("TransactionTimeout", s.txnTimeout.String(),
			"the broker refuses a transaction timeout that is not positive (INVALID_TRANSACTION_TIMEOUT)",
			"remove kgo.TransactionTimeout (kgo's default is 40s) or set it above 0")
	}

	// MaxProduceRequestsInflightPerBroker.
	switch {
	case s.idempotent && s.inflight != 1:
		unsafe("MaxProduceRequestsInflightPerBroker", s.inflightValue(),
			"must not be set with idempotent writes: kgo itself keeps up to 5 requests in flight, the broker's deduplication window, and rejects any other value",
			"remove the MaxProduceRequestsInflightPerBroker option")
	case !s.idempotent && s.inflight < 1:
		invalid("MaxProduceRequestsInflightPerBroker", s.inflightValue(),
			"must be at least 1",
			"kgo.MaxProduceRequestsInflightPerBroker(1)")
	case !s.idempotent && s.inflight > 1 && s.retries > 0:
		unsafe("MaxProduceRequestsInflightPerBroker", s.inflightValue(),
			"with retries and without idempotent writes, a retried batch can land after a later one, reordering the partition",
			"kgo.MaxProduceRequestsInflightPerBroker(1), or keep idempotent writes on")
	}

	// AllowIdempotentProduceCancellation.
	if (p.wantsAllAcks() || s.transactional) && s.idempotent && s.allowCancel {
		unsafe("AllowIdempotentProduceCancellation", "set",
			"a cancelled in-flight record may already be written; sending it again writes it twice",
			"remove kgo.AllowIdempotentProduceCancellation()")
	}

	// RecordRetries.
	switch {
	case p.retries() && s.retries < math.MaxInt32:
		unsafe("RecordRetries", retriesString(s.retries),
			"bounded retries fail records during a long leader election; the preset retries until the delivery timeout",
			fmt.Sprintf("remove the RecordRetries option and bound delivery time with kgo.RecordDeliveryTimeout (at least %v)", MinRetryWindow))
	case !p.retries() && s.retries != 0:
		unsafe("RecordRetries", retriesString(s.retries),
			"a retried record can be written twice, which breaks at-most-once",
			"kgo.RecordRetries(0)")
	}

	// RecordDeliveryTimeout.
	if p.retries() && s.deliveryTimeout > 0 {
		switch {
		case s.deliveryTimeout < MinRetryWindow:
			unsafe("RecordDeliveryTimeout", s.deliveryTimeout.String(),
				fmt.Sprintf("shorter than %v: records fail during an ordinary leader election", MinRetryWindow),
				fmt.Sprintf("kgo.RecordDeliveryTimeout(%v), or remove it to retry without a time limit", DeliveryTimeout))
		case s.deliveryTimeout < s.produceTimeout+s.linger:
			unsafe("RecordDeliveryTimeout", s.deliveryTimeout.String(),
				fmt.Sprintf("shorter than ProduceRequestTimeout + ProducerLinger (%v): a record can time out before its first request is answered", s.produceTimeout+s.linger),
				fmt.Sprintf("raise it above %v", s.produceTimeout+s.linger))
		}
	}

	// FetchIsolationLevel.
	if p == ExactlyOnce && s.consumes && !s.readCommitted {
		unsafe("FetchIsolationLevel", "ReadUncommitted",
			"this client also consumes, and would read the records of aborted transactions and of transactions still open",
			"remove the FetchIsolationLevel option (ExactlyOnce sets kgo.FetchIsolationLevel(kgo.ReadCommitted()))")
	}

	// ManualFlushing.
	if p.retries() && s.manualFlushing {
		unsafe("ManualFlushing", "set",
			"a full buffer fails records with kgo.ErrMaxBuffered instead of blocking the producer",
			"remove kgo.ManualFlushing(); bound memory with kgo.MaxBufferedRecords or kgo.MaxBufferedBytes, which block")
	}
	return errs
}
