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
func KgoOpts(p Preset) []kgo.Opt {
	switch p {
	case NoLoss, StrictOrder:
		return []kgo.Opt{
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordRetries(math.MaxInt),
			kgo.RecordDeliveryTimeout(DeliveryTimeout),
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
//   - RequiredAcks: NoLoss and StrictOrder need AllISRAcks, LeaderAck needs
//     LeaderAck, AtMostOnce needs NoAck; idempotent writes need AllISRAcks.
//   - DisableIdempotentWrite: NoLoss needs idempotent writes.
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
	transactional   bool
	manualFlushing  bool
	acks            kgo.Acks
	acksText        string // set when the exact value could not be read
	inflight        int
	inflightText    string // set when the exact value could not be read
	retries         int64
	deliveryTimeout time.Duration
	produceTimeout  time.Duration
	linger          time.Duration
	logger          kgo.Logger
}

// readKgo reads the settings opts produce. kgo refuses to build a client
// whose idempotence, acks and in-flight settings disagree, and those are
// exactly the settings to report, so each is read from a client built with
// the others forced to agreeing values.
func readKgo(opts []kgo.Opt) (kgoSettings, error) {
	var s kgoSettings
	// Every other setting is read with acks and in-flight forced valid;
	// if kgo still refuses, it refuses something outside the presets.
	err := withClient(opts, []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxProduceRequestsInflightPerBroker(1)}, func(cl *kgo.Client) {
		s.idempotent = !optBool(cl, kgo.DisableIdempotentWrite)
		s.allowCancel = optBool(cl, kgo.AllowIdempotentProduceCancellation)
		s.manualFlushing = optBool(cl, kgo.ManualFlushing)
		s.transactional = optBool2(cl, kgo.TransactionalID)
		s.retries, _ = optAt[int64](cl, kgo.RecordRetries, 0)
		s.deliveryTimeout, _ = optAt[time.Duration](cl, kgo.RecordDeliveryTimeout, 0)
		s.produceTimeout, _ = optAt[time.Duration](cl, kgo.ProduceRequestTimeout, 0)
		s.linger, _ = optAt[time.Duration](cl, kgo.ProducerLinger, 0)
		s.logger, _ = optAt[kgo.Logger](cl, kgo.WithLogger, 0)
	})
	if err != nil {
		return s, err
	}

	// Acks: with idempotence off kgo accepts any acks. A transactional
	// client cannot switch idempotence off; there, acks is AllISRAcks
	// exactly when kgo accepts the options as they are.
	if !s.transactional {
		err = withClient(opts, []kgo.Opt{kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(1)}, func(cl *kgo.Client) {
			s.acks, _ = optAt[kgo.Acks](cl, kgo.RequiredAcks, 0)
		})
		if err != nil {
			return s, err
		}
	} else if withClient(opts, []kgo.Opt{kgo.MaxProduceRequestsInflightPerBroker(1)}, nil) == nil {
		s.acks = kgo.AllISRAcks()
	} else {
		s.acks, s.acksText = kgo.LeaderAck(), "not AllISRAcks"
	}

	// In-flight: readable whenever idempotence is off and the value is
	// positive, which kgo requires.
	switch {
	case !s.idempotent:
		if withClient(opts, []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}, func(cl *kgo.Client) {
			s.inflight, _ = optAt[int](cl, kgo.MaxProduceRequestsInflightPerBroker, 0)
		}) != nil {
			s.inflight, s.inflightText = 0, "<= 0"
		}
	case !s.transactional:
		if withClient(opts, []kgo.Opt{kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks())}, func(cl *kgo.Client) {
			s.inflight, _ = optAt[int](cl, kgo.MaxProduceRequestsInflightPerBroker, 0)
		}) != nil {
			s.inflight, s.inflightText = 0, "<= 0"
		}
	default:
		if withClient(opts, []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}, nil) == nil {
			s.inflight = 1
		} else {
			s.inflight, s.inflightText = 0, "not 1"
		}
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

func (s kgoSettings) acksValue() string {
	if s.acksText != "" {
		return s.acksText
	}
	return acksString(s.acks)
}

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
	if p == NoLoss && !s.idempotent {
		unsafe("DisableIdempotentWrite", "set",
			"NoLoss needs idempotent writes: without them a retried batch that the broker already wrote is written again",
			"remove kgo.DisableIdempotentWrite(), or use the StrictOrder preset if the cluster denies IDEMPOTENT_WRITE")
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
	if p.wantsAllAcks() && s.idempotent && s.allowCancel {
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

	// ManualFlushing.
	if p.retries() && s.manualFlushing {
		unsafe("ManualFlushing", "set",
			"a full buffer fails records with kgo.ErrMaxBuffered instead of blocking the producer",
			"remove kgo.ManualFlushing(); bound memory with kgo.MaxBufferedRecords or kgo.MaxBufferedBytes, which block")
	}
	return errs
}
