package produce

import (
	"fmt"
	"strings"
	"time"
)

// Preset names a producer delivery contract. The zero value is [NoLoss].
type Preset int

const (
	// NoLoss loses nothing that was acknowledged, duplicates nothing on
	// retry and keeps per-partition order: acks=all, idempotent writes,
	// retries until the delivery timeout, at most 5 requests in flight, and
	// a full buffer blocks the producer instead of dropping records.
	NoLoss Preset = iota

	// StrictOrder is NoLoss, except that idempotent writes may be switched
	// off (for clusters that deny IDEMPOTENT_WRITE); without idempotence
	// exactly one request may be in flight per broker so that a retried
	// batch can never land after a later one. Without idempotence a retry
	// can still duplicate a record.
	StrictOrder

	// LeaderAck answers as soon as the partition leader has the record
	// (acks=1). A leader that dies before its followers copied the record
	// loses it although the producer saw success. It exists to demonstrate
	// that loss; use NoLoss for data that matters.
	LeaderAck

	// AtMostOnce sends without waiting for any acknowledgement (acks=0) and
	// never retries. Records may be lost silently; a nil error only means
	// the record left the client.
	AtMostOnce

	// ExactlyOnce is NoLoss inside transactions: a transactional id is
	// required (it implies idempotent writes, acks=all and at most 5
	// requests in flight), records are written between BeginTransaction
	// and EndTransaction (see [Producer.Transact]), and the paired consumer
	// reads with isolation level read_committed ([KgoConsumerOpts],
	// [ApplySaramaConsumer]), so it sees a transaction's records only once
	// the transaction committed, and never those of an aborted one.
	ExactlyOnce
)

// DeliveryTimeout is how long the retrying presets keep retrying a record
// before failing it: kgo's RecordDeliveryTimeout, and for sarama the sum of
// the retry backoffs. It matches the Java producer's delivery.timeout.ms
// default.
const DeliveryTimeout = 2 * time.Minute

// MinRetryWindow is the shortest retry window the retrying presets accept:
// a producer that gives up sooner can fail records during an ordinary leader
// election.
const MinRetryWindow = 30 * time.Second

var presetNames = [...]string{
	NoLoss:      "NoLoss",
	StrictOrder: "StrictOrder",
	LeaderAck:   "LeaderAck",
	AtMostOnce:  "AtMostOnce",
	ExactlyOnce: "ExactlyOnce",
}

// String returns the preset's name, such as "NoLoss".
func (p Preset) String() string {
	if p.valid() {
		return presetNames[p]
	}
	return fmt.Sprintf("Preset(%d)", int(p))
}

// ParsePreset returns the preset with the given name, as printed by String.
// Case is ignored.
func ParsePreset(name string) (Preset, error) {
	for i, n := range presetNames {
		if strings.EqualFold(n, name) {
			return Preset(i), nil
		}
	}
	return 0, fmt.Errorf("produce: unknown preset %q (want NoLoss, StrictOrder, LeaderAck, AtMostOnce or ExactlyOnce): %w", name, ErrUnknownPreset)
}

// MarshalText implements encoding.TextMarshaler.
func (p Preset) MarshalText() ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, so a Preset can be a
// flag (flag.TextVar) or a JSON string.
func (p *Preset) UnmarshalText(text []byte) error {
	v, err := ParsePreset(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p Preset) valid() bool { return p >= 0 && int(p) < len(presetNames) }

func (p Preset) check() error {
	if !p.valid() {
		return fmt.Errorf("produce: %v: %w", p, ErrUnknownPreset)
	}
	return nil
}

// retries reports whether the preset retries failed sends.
func (p Preset) retries() bool { return p != AtMostOnce }

// wantsAllAcks reports whether the preset requires acks=all.
func (p Preset) wantsAllAcks() bool { return p == NoLoss || p == StrictOrder || p == ExactlyOnce }

// wantsIdempotence reports whether the preset requires idempotent writes.
func (p Preset) wantsIdempotence() bool { return p == NoLoss || p == ExactlyOnce }
