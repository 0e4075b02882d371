package produce

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
)

// SaramaAsyncProducer sends messages through a sarama.AsyncProducer
// configured by a preset, and hands each message's outcome to the callback
// it was sent with. It is safe for concurrent use.
//
// A message succeeds only once the broker acknowledged it as the preset
// requires; every other outcome is a [*DeliveryError] saying whether the
// message may have been written, with the same classes as
// [SaramaSyncProducer]. One goroutine reads sarama's Successes and Errors
// and calls the callbacks, serially; it ends once Close has had every
// outcome from sarama.
//
// While a message is in flight its Metadata field holds the producer's
// bookkeeping; the callback sees the application's value again.
type SaramaAsyncProducer struct {
	ap     sarama.AsyncProducer
	preset Preset
	closed atomic.Bool
	// sending is read-locked while a message is being handed to sarama
	// and write-locked by Close: sarama panics on a send after AsyncClose.
	sending sync.RWMutex
	// done is closed once the dispatcher has delivered sarama's last
	// outcome.
	done chan struct{}

	// mu guards outstanding, the messages handed to sarama whose callback
	// has not returned yet, and idle, closed when outstanding drops to 0.
	mu          sync.Mutex
	outstanding int
	idle        chan struct{}

	pending sync.Pool // *saramaPending
}

// errSaramaNoCause stands in for the cause of a failure sarama reported
// without one.
var errSaramaNoCause = errors.New("produce: sarama reported a failure without a cause")

// saramaPending is what a message in flight carries in its Metadata.
type saramaPending struct {
	cb   func(*sarama.ProducerMessage, error)
	meta any // the application's Metadata
}

// NewSaramaAsync returns a SaramaAsyncProducer for preset p connected to
// addrs. It applies p ([ApplySarama]) to a copy of cfg (nil means
// sarama.NewConfig()) with Producer.Return.Successes and Errors switched on,
// which the producer needs to report every outcome; cfg itself is not
// modified. A copy that still contradicts p is refused before any
// connection is made. The producer runs no transactions: ExactlyOnce and a
// Producer.Transaction.ID are refused (see [SaramaSyncProducer.Transact]).
func NewSaramaAsync(addrs []string, p Preset, cfg *sarama.Config) (*SaramaAsyncProducer, error) {
	c, err := saramaProducerConfig(p, cfg, "")
	if err != nil {
		return nil, err
	}
	ap, err := sarama.NewAsyncProducer(addrs, c)
	if err != nil {
		return nil, fmt.Errorf("produce: sarama: %w", err)
	}
	s := &SaramaAsyncProducer{ap: ap, preset: p, done: make(chan struct{})}
	go s.dispatch()
	return s, nil
}

// Preset returns the preset the producer was built with.
func (s *SaramaAsyncProducer) Preset() Preset { return s.preset }

// SendAsync hands msg to sarama and calls cb with msg and nil once the
// broker acknowledged it as the preset requires, or with a
// [*DeliveryError] matching [ErrNotWritten] or, if msg may have been
// written, [ErrOutcomeUnknown]; msg's Partition and Offset are set on
// success. cb is called exactly once: from SendAsync itself if msg is
// refused before sarama has it (a nil msg, a closed producer, ctx ended
// while sarama's input was full: not written), otherwise from the
// producer's goroutine, serially with other callbacks. cb must not block
// and must not call SendAsync, Flush or Close of the same producer. A nil
// cb logs failures.
//
// SendAsync blocks while sarama's input is full, until there is room or
// ctx ends. Once sarama has msg, ctx no longer matters: sarama's sends
// cannot be cancelled. Do not reuse msg before its callback.
func (s *SaramaAsyncProducer) SendAsync(ctx context.Context, msg *sarama.ProducerMessage, cb func(*sarama.ProducerMessage, error)) {
	if cb == nil {
		cb = logSaramaFailure
	}
	if msg == nil {
		cb(nil, &DeliveryError{Partition: -1, Err: errNilRecord})
		return
	}
	if err := s.refused(ctx); err != nil {
		cb(msg, &DeliveryError{Topic: msg.Topic, Partition: -1, Err: err})
		return
	}
	s.sending.RLock()
	if s.closed.Load() {
		s.sending.RUnlock()
		cb(msg, &DeliveryError{Topic: msg.Topic, Partition: -1, Err: ErrClosed})
		return
	}
	pd, _ := s.pending.Get().(*saramaPending)
	if pd == nil {
		pd = new(saramaPending)
	}
	pd.cb, pd.meta = cb, msg.Metadata
	msg.Metadata = pd
	s.add(1)
	select {
	case s.ap.Input() <- msg:
		s.sending.RUnlock()
	case <-ctx.Done():
		s.sending.RUnlock()
		msg.Metadata = pd.meta
		s.release(pd)
		cb(msg, &DeliveryError{Topic: msg.Topic, Partition: -1, Err: ctx.Err()})
		s.add(-1)
	}
}

// refused returns why a message would be refused before sarama gets it.
func (s *SaramaAsyncProducer) refused(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// dispatch calls the callback of every outcome sarama reports, until
// sarama closes its Successes and Errors after AsyncClose.
func (s *SaramaAsyncProducer) dispatch() {
	defer close(s.done)
	successes, errs := s.ap.Successes(), s.ap.Errors()
	for successes != nil || errs != nil {
		select {
		case msg, ok := <-successes:
			if !ok {
				successes = nil
				continue
			}
			s.finish(msg, nil)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			s.finish(pe.Msg, cmp.Or(pe.Err, errSaramaNoCause))
		}
	}
}

// finish calls msg's callback with the outcome as the sender sees it.
func (s *SaramaAsyncProducer) finish(msg *sarama.ProducerMessage, err error) {
	if msg == nil {
		return
	}
	pd, ok := msg.Metadata.(*saramaPending)
	if !ok {
		// Not sent through SendAsync: sarama reports it to no one else.
		logSaramaFailure(msg, saramaResult(msg, err))
		return
	}
	cb := pd.cb
	msg.Metadata = pd.meta
	s.release(pd)
	cb(msg, saramaResult(msg, err))
	s.add(-1)
}

func (s *SaramaAsyncProducer) release(pd *saramaPending) {
	pd.cb, pd.meta = nil, nil
	s.pending.Put(pd)
}

// add changes the count of outstanding messages by n.
func (s *SaramaAsyncProducer) add(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outstanding == 0 && n > 0 {
		s.idle = make(chan struct{})
	}
	s.outstanding += n
	if s.outstanding == 0 && n < 0 {
		close(s.idle)
	}
}

// Outstanding returns how many messages sarama has whose callback has not
// returned yet.
func (s *SaramaAsyncProducer) Outstanding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outstanding
}

// Flush waits until every message handed to sarama so far has had its
// callback, or ctx ends; then it returns ctx's error together with the
// number of messages still outstanding. Messages sent while Flush waits
// are waited for too.
func (s *SaramaAsyncProducer) Flush(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	n := s.outstanding
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("produce: flush: %d messages still outstanding: %w", s.Outstanding(), ctx.Err())
	}
}

// Close stops new sends (their callbacks get [ErrClosed]), waits for the
// sends blocked on sarama's input, and closes the sarama producer, which
// first finishes every message it has; Close returns nil once every
// callback has been called and the producer's goroutine has ended. If ctx
// ends first, Close returns ctx's error with the number of messages still
// outstanding: sarama goes on closing, and their callbacks still come,
// each exactly once, as sarama finishes them. Calling Close again waits
// in the same way. sarama sends what it buffers on its own schedule
// (Producer.Flush), which Close cannot hurry.
func (s *SaramaAsyncProducer) Close(ctx context.Context) error {
	if s.closed.CompareAndSwap(false, true) {
		go func() {
			s.sending.Lock() // wait for sends being handed to sarama
			defer s.sending.Unlock()
			s.ap.AsyncClose()
		}()
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("produce: close: %d messages still outstanding, their callbacks come as sarama finishes them: %w",
			s.Outstanding(), ctx.Err())
	}
}

func logSaramaFailure(msg *sarama.ProducerMessage, err error) {
	if err != nil {
		slog.Default().Error("produce: send failed", "err", err)
	}
}
