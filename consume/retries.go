package consume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kafkaguard/kafkaguard/ordering"
	"github.com/kafkaguard/kafkaguard/retry"
)

// RetryPolicy is the delayed in-process retry of a failed handler (see
// Retries): a record whose handler fails is run again, after a backoff, up
// to Attempts runs in all, before it goes to the retry path (RetryPath) or,
// without one, blocks its key or partition.
type RetryPolicy struct {
	// Attempts is the number of handler runs per record, the first
	// included: 3 means the first run and at most two retries. It must be
	// at least 1; 1 retries nothing.
	Attempts int
	// Backoff is the delay before each retry: Backoff.Delay(n) after the
	// n-th failed run (retry.Backoff: exponential, capped, with jitter).
	Backoff retry.Backoff
	// Retryable says whether an error is worth running the record again
	// for; an error it refuses goes to the retry path at once. nil: every
	// error (a panic included) is retried.
	Retryable func(error) bool
}

// Retries sets the in-process retry policy for transient handler failures.
// While a record waits for its next attempt it stays in flight: it holds
// one of the Concurrency slots, its key (KeyOrder) or partition
// (PartitionOrder) stays blocked behind it, and no commit passes it, so a
// crash meanwhile runs it again on the next start. The handler reads which
// attempt it runs with Attempt. The wait ends early, and the record is left
// not done for the partition's next owner, when the partition is revoked
// or the consumer stops; the ErrRetryAbandoned failure it then leaves is
// not reported to OnError. After the last attempt the record goes to the
// retry path (RetryPath) if there is one, else it blocks as any failure
// does, and Consumer.Retry runs the policy again from the first attempt
// (Failure.Attempts counts such runs, not the attempts inside each).
// Each retry is counted in kafkaguard_consume_retries_total (Metrics) and
// logged; a handle span (Tracing) covers every attempt of its record.
// NewExactlyOnce refuses Retries: a waiting record would hold its
// transaction window open. The default is no in-process retry.
func Retries(p RetryPolicy) Opt { return bothOpt(func(c *config) { c.retries = &p }) }

// ErrRetryAbandoned is wrapped by the failure of a record whose wait for its
// next in-process attempt (Retries) was ended by the consumer stopping: the
// record is not done and runs again on the next start. It wraps the last
// handler error too.
var ErrRetryAbandoned = errors.New("consume: in-process retry abandoned as the consumer stopped")

// attemptKey is the context key of the attempt number (Attempt).
type attemptKey struct{}

// Attempt returns which in-process attempt (Retries) the handler whose
// context is ctx runs: 1 for the first run of a record, 2 for its first
// retry, and so on. Outside a handler it returns 1.
func Attempt(ctx context.Context) int {
	if n, ok := ctx.Value(attemptKey{}).(int); ok {
		return n
	}
	return 1
}

func (p *RetryPolicy) validate() []error {
	if p == nil {
		return nil
	}
	var errs []error
	if p.Attempts < 1 {
		errs = append(errs, fmt.Errorf("%w: Retries: Attempts must be >= 1, got %d", ErrInvalidOption, p.Attempts))
	}
	if p.Attempts > 1 {
		if err := p.Backoff.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%w: Retries: %w", ErrInvalidOption, err))
		}
	}
	return errs
}

// handleRetrying runs the handler for m, and again after a backoff while
// the retry policy allows. It returns the last run's error.
func (e *engine[T]) handleRetrying(ctx context.Context, m ordering.Message[T]) error {
	err := ordering.Guard(func() error { return e.handle(ctx, m.Value) })
	p := e.cfg.retries
	if err == nil || p == nil {
		return err
	}
	for n := 1; n < p.Attempts && ctx.Err() == nil && (p.Retryable == nil || p.Retryable(err)); n++ {
		d := p.Backoff.Delay(n)
		e.cfg.metrics.incRetries(m.Topic)
		e.log.Info("consume: handler failed; retrying in-process", "topic", m.Topic, "partition", m.Partition,
			"offset", m.Offset, "attempt", n, "of", p.Attempts, "backoff", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		case <-ordering.Dropped(ctx):
			t.Stop()
			return err // the partition's next owner runs the record
		case <-e.stopping:
			t.Stop()
			return fmt.Errorf("%w: %w", ErrRetryAbandoned, err)
		}
		if ctx.Err() != nil {
			return err
		}
		actx := context.WithValue(ctx, attemptKey{}, n+1)
		err = ordering.Guard(func() error { return e.handle(actx, m.Value) })
		if err == nil {
			return nil
		}
	}
	return err
}

// stopRetries ends every wait for an in-process retry: the consumer stops.
func (e *engine[T]) stopRetries() {
	e.stopOnce.Do(func() { close(e.stopping) })
}
