package produce

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
)

// SaramaSyncProducer sends messages through a sarama.SyncProducer
// configured by a preset. It is safe for concurrent use.
type SaramaSyncProducer struct {
	sp     sarama.SyncProducer
	preset Preset
	closed atomic.Bool
	// sending is read-locked while a message is being handed to sarama
	// and write-locked by Close: sarama panics on a send after Close.
	sending sync.RWMutex

	// txnID is Producer.Transaction.ID (ExactlyOnce), or "". txnMu runs
	// one Transact at a time; txnFailed counts the sends that failed
	// since the current transaction began.
	txnID     string
	txnMu     sync.Mutex
	txnFailed atomic.Int64
}

// NewSaramaSync returns a SaramaSyncProducer for preset p connected to
// addrs. It applies p ([ApplySarama]) to a copy of cfg (nil means
// sarama.NewConfig()) with Producer.Return.Successes and Errors switched on,
// as sarama's SyncProducer requires; cfg itself is not modified. A copy that
// still contradicts p is refused before any connection is made, and so is
// a Producer.Transaction.ID under any preset but ExactlyOnce, whose
// messages are sent inside [SaramaSyncProducer.Transact].
func NewSaramaSync(addrs []string, p Preset, cfg *sarama.Config) (*SaramaSyncProducer, error) {
	c, err := saramaProducerConfig(p, cfg, "SaramaSyncProducer.Transact")
	if err != nil {
		return nil, err
	}
	sp, err := sarama.NewSyncProducer(addrs, c)
	if err != nil {
		return nil, fmt.Errorf("produce: sarama: %w", err)
	}
	return &SaramaSyncProducer{sp: sp, preset: p, txnID: c.Producer.Transaction.ID}, nil
}

// saramaProducerConfig returns a copy of cfg (nil means
// sarama.NewConfig()) with p applied and Producer.Return.Successes and
// Errors switched on, or the error joining every setting of the copy that
// contradicts p. A Producer.Transaction.ID is refused under any preset but
// ExactlyOnce; transact names what runs ExactlyOnce's transactions, or is
// "" when the producer runs none (then ExactlyOnce is refused too).
func saramaProducerConfig(p Preset, cfg *sarama.Config, transact string) (*sarama.Config, error) {
	if cfg == nil {
		cfg = sarama.NewConfig()
	}
	if transact == "" && p == ExactlyOnce {
		return nil, &ConfigError{Preset: p, Setting: "preset", Value: p.String(),
			Problem: "SaramaAsyncProducer runs no transactions",
			Fix:     "send ExactlyOnce's transactions with NewSaramaSync and SaramaSyncProducer.Transact",
			Err:     ErrInvalidConfig}
	}
	c := *cfg
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	if err := ApplySarama(p, &c); err != nil {
		return nil, err
	}
	if id := c.Producer.Transaction.ID; id != "" && p != ExactlyOnce {
		problem := "only the ExactlyOnce preset runs transactions (" + transact + "); every message sent outside one fails"
		fix := `Producer.Transaction.ID = "", or use the ExactlyOnce preset`
		if transact == "" {
			problem = "SaramaAsyncProducer runs no transactions; every message sent outside one fails"
			fix += " with NewSaramaSync"
		}
		return nil, &ConfigError{Preset: p, Setting: "Producer.Transaction.ID", Value: strconv.Quote(id),
			Problem: problem, Fix: fix, Err: ErrInvalidConfig}
	}
	return &c, nil
}

// Preset returns the preset the producer was built with.
func (s *SaramaSyncProducer) Preset() Preset { return s.preset }

// SyncProducer returns the underlying sarama producer.
func (s *SaramaSyncProducer) SyncProducer() sarama.SyncProducer { return s.sp }

// Send produces msg and waits for the outcome. It returns nil once the
// broker acknowledged msg as the preset requires; msg's Partition and
// Offset are then set. Otherwise it returns a [*DeliveryError] matching
// [ErrNotWritten] or, if msg may have been written, [ErrOutcomeUnknown].
//
// sarama's send cannot be cancelled: if ctx ends first, Send returns
// ErrOutcomeUnknown while sarama keeps retrying msg in the background. Do
// not reuse msg after that.
func (s *SaramaSyncProducer) Send(ctx context.Context, msg *sarama.ProducerMessage) error {
	err := s.send(ctx, msg)
	if err != nil {
		s.txnFailed.Add(1)
	}
	return err
}

func (s *SaramaSyncProducer) send(ctx context.Context, msg *sarama.ProducerMessage) error {
	if msg == nil {
		return &DeliveryError{Partition: -1, Err: errNilRecord}
	}
	if s.closed.Load() {
		return &DeliveryError{Topic: msg.Topic, Partition: -1, Err: ErrClosed}
	}
	if err := ctx.Err(); err != nil {
		return &DeliveryError{Topic: msg.Topic, Partition: -1, Err: err}
	}
	topic := msg.Topic
	s.sending.RLock()
	if s.closed.Load() {
		s.sending.RUnlock()
		return &DeliveryError{Topic: topic, Partition: -1, Err: ErrClosed}
	}
	done := make(chan error, 1)
	go func() {
		defer s.sending.RUnlock()
		_, _, err := s.sp.SendMessage(msg)
		done <- err
	}()
	select {
	case err := <-done:
		return s.result(msg, err)
	case <-ctx.Done():
		select {
		case err := <-done:
			return s.result(msg, err)
		default:
		}
		return &DeliveryError{Topic: topic, Partition: -1, MaybeWritten: true, Err: ctx.Err()}
	}
}

// Close stops new sends (they fail with [ErrClosed]), waits for the sends
// in progress and closes the sarama producer, which first waits for
// buffered messages to finish. If ctx ends
// before that, Close returns ctx's error while sarama goes on closing.
// Calling Close again returns nil.
func (s *SaramaSyncProducer) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		s.sending.Lock() // wait for sends already handed to sarama
		defer s.sending.Unlock()
		done <- s.sp.Close()
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("produce: close: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("produce: close: still flushing: %w", ctx.Err())
	}
}

func (s *SaramaSyncProducer) result(msg *sarama.ProducerMessage, err error) error {
	return saramaResult(msg, err)
}

// saramaResult turns the error sarama reported for msg into the error a
// sender sees.
func saramaResult(msg *sarama.ProducerMessage, err error) error {
	if err == nil {
		return nil
	}
	return &DeliveryError{Topic: msg.Topic, Partition: msg.Partition, MaybeWritten: saramaMaybeWritten(err), Err: err}
}

// saramaRetriable are the broker errors sarama's producer retries; a
// message failing with one has exhausted its retries, and an earlier
// attempt may have been written.
var saramaRetriable = [...]sarama.KError{
	sarama.ErrInvalidMessage, sarama.ErrUnknownTopicOrPartition, sarama.ErrLeaderNotAvailable,
	sarama.ErrNotLeaderForPartition, sarama.ErrRequestTimedOut, sarama.ErrNotEnoughReplicas,
	sarama.ErrNotEnoughReplicasAfterAppend, sarama.ErrKafkaStorageError,
}

// saramaMaybeWritten reports whether a message sarama failed with err may
// nevertheless have been written. sarama retries a batch after a broken
// connection without knowing whether the broker wrote it, so only errors
// that prove the message never reached a log count as not written.
func saramaMaybeWritten(err error) bool {
	var cfgErr sarama.ConfigurationError
	switch {
	case errors.As(err, &cfgErr), errors.Is(err, sarama.ErrShuttingDown), errors.Is(err, sarama.ErrClosedClient):
		return false // refused before sending
	}
	var ke sarama.KError
	if errors.As(err, &ke) {
		for _, r := range saramaRetriable {
			if ke == r {
				return true
			}
		}
		return false // the broker rejected the batch
	}
	return true
}
