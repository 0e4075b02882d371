package retry

import (
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Default backoff values.
const (
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultMultiplier     = 2.0
	DefaultJitter         = 0.2
)

// Backoff is the delay before each attempt after a failure: exponential,
// capped, with jitter. The delay after the n-th failed attempt is drawn
// uniformly from [d·(1−Jitter), d·(1+Jitter)] where
// d = min(Initial·Multiplierⁿ⁻¹, Max); the draw is made by
// github.com/cenkalti/backoff/v4's ExponentialBackOff.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64 // randomization factor in [0, 1)
}

// DefaultBackoff returns the default Backoff: 1s, doubling, at most 5m, ±20%.
func DefaultBackoff() Backoff {
	return Backoff{Initial: DefaultInitialBackoff, Max: DefaultMaxBackoff, Multiplier: DefaultMultiplier, Jitter: DefaultJitter}
}

// Validate reports every field out of range, each wrapping ErrInvalidOption.
func (b Backoff) Validate() error { return errors.Join(b.validate()...) }

func (b Backoff) validate() []error {
	var errs []error
	if b.Initial <= 0 {
		errs = append(errs, fmt.Errorf("%w: Backoff.Initial must be > 0, got %v", ErrInvalidOption, b.Initial))
	}
	if b.Max < b.Initial {
		errs = append(errs, fmt.Errorf("%w: Backoff.Max must be >= Backoff.Initial, got %v < %v", ErrInvalidOption, b.Max, b.Initial))
	}
	if b.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("%w: Backoff.Multiplier must be >= 1, got %v", ErrInvalidOption, b.Multiplier))
	}
	if b.Jitter < 0 || b.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("%w: Backoff.Jitter must be in [0, 1), got %v", ErrInvalidOption, b.Jitter))
	}
	return errs
}

// base returns the delay after failed attempt n before jitter.
func (b Backoff) base(n int) time.Duration {
	d := float64(b.Initial)
	for i := 1; i < n && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	return time.Duration(d)
}

// Bounds returns the shortest and longest delay Delay(n) can return.
func (b Backoff) Bounds(n int) (lo, hi time.Duration) {
	d := float64(b.base(n))
	return time.Duration(d * (1 - b.Jitter)), time.Duration(d*(1+b.Jitter)) + 1
}

// Delay returns the delay before the attempt that follows the n-th failed
// attempt (n >= 1; smaller n is taken as 1).
func (b Backoff) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	e := &backoff.ExponentialBackOff{
		InitialInterval:     b.base(n),
		RandomizationFactor: b.Jitter,
		Multiplier:          b.Multiplier,
		MaxInterval:         b.Max,
		MaxElapsedTime:      0,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	e.Reset()
	return e.NextBackOff()
}
