package retry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

func TestBackoffDelayGrowsExponentiallyWithinJitterAndCap(t *testing.T) {
	t.Parallel()
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.25}
	tests := []struct {
		attempt int
		base    time.Duration
	}{
		{0, 100 * time.Millisecond}, // taken as 1
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second}, // capped
		{60, time.Second},
	}
	for _, tt := range tests {
		lo, hi := b.Bounds(tt.attempt)
		if wantLo, wantHi := tt.base*3/4, tt.base*5/4; lo != wantLo || hi < wantHi || hi > wantHi+time.Microsecond {
			t.Errorf("Bounds(%d) = [%v, %v], want [%v, %v]", tt.attempt, lo, hi, wantLo, wantHi)
		}
		var minSeen, maxSeen time.Duration
		for i := 0; i < 2000; i++ {
			d := b.Delay(tt.attempt)
			if d < lo || d > hi {
				t.Fatalf("Delay(%d) = %v outside [%v, %v]", tt.attempt, d, lo, hi)
			}
			if i == 0 || d < minSeen {
				minSeen = d
			}
			if d > maxSeen {
				maxSeen = d
			}
		}
		// The jitter is real: 2000 draws spread over most of the range.
		if spread := maxSeen - minSeen; spread < (hi-lo)*8/10 {
			t.Errorf("Delay(%d) spread %v of a %v range: no jitter", tt.attempt, spread, hi-lo)
		}
	}
}

func TestBackoffWithoutJitterIsExact(t *testing.T) {
	t.Parallel()
	b := Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 3}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 3 * time.Second, 3: 9 * time.Second, 5: time.Minute} {
		if got := b.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestOptionsAreValidatedAllAtOnce(t *testing.T) {
	t.Parallel()
	c := newConfig([]option{
		MaxAttempts(0), RetryBackoff(Backoff{Initial: -1, Max: -2, Multiplier: 0.5, Jitter: 1}),
		Concurrency(0), MaxBuffered(0), CommitInterval(0), ShutdownTimeout(-1), RefreshInterval(0),
		OnAlert(Thresholds{Backlog: -1}, nil), RetryTopic("x"), DeadLetterTopic("x"),
	})
	err := c.validate(true)
	if !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("validate: %v", err)
	}
	for _, want := range []string{"MaxAttempts", "Backoff.Initial", "Backoff.Max", "Backoff.Multiplier", "Backoff.Jitter",
		"Concurrency", "MaxBuffered", "CommitInterval", "ShutdownTimeout", "RefreshInterval", "Thresholds", "must differ"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %s:\n%v", want, err)
		}
	}
	d := newConfig[option](nil)
	if err := d.validate(true); err == nil || !strings.Contains(err.Error(), "Topic or RetryTopic") {
		t.Errorf("a Job without a topic: %v", err)
	}
	if err := d.validate(false); err != nil {
		t.Errorf("defaults: %v", err)
	}
	small := newConfig([]option{Concurrency(10), MaxBuffered(5)})
	if err := small.validate(false); err == nil {
		t.Errorf("MaxBuffered below Concurrency accepted")
	}
	locks := &KeyLocks{topic: "t.retry"}
	eos := newConfig([]option{Topic("t"), ExactlyOnce(""), KeyOrder(locks)})
	err = eos.validate(true)
	for _, want := range []string{"ExactlyOnce needs an instance name", "KeyOrder cannot be combined with ExactlyOnce"} {
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("ExactlyOnce without an instance and with KeyOrder: the error does not say %q:\n%v", want, err)
		}
	}
	if ok := newConfig([]option{Topic("t"), ExactlyOnce("a")}); ok.validate(true) != nil {
		t.Errorf("ExactlyOnce with an instance: %v", ok.validate(true))
	}
}

func TestTopicNamesDeriveFromTheOriginalTopic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		opts              []option
		retry, dlq, group string
	}{
		{nil, "src.retry", "src.dlq", ""},
		{[]option{Topic("orders")}, "orders.retry", "orders.dlq", "kafkaguard-retry-orders.retry"},
		{[]option{Topic("orders"), RetryTopic("r"), DeadLetterTopic("d"), Group("g")}, "r", "d", "g"},
	}
	for _, tt := range tests {
		c := newConfig(tt.opts)
		if got := c.retryTopicFor("src"); got != tt.retry {
			t.Errorf("retry topic %q, want %q", got, tt.retry)
		}
		if got := c.dlqTopicFor("src"); got != tt.dlq {
			t.Errorf("dead-letter topic %q, want %q", got, tt.dlq)
		}
		if tt.group != "" && c.groupName() != tt.group {
			t.Errorf("group %q, want %q", c.groupName(), tt.group)
		}
	}
}

func TestPermanentIsRecognisedThroughWrapping(t *testing.T) {
	t.Parallel()
	base := errors.New("bad")
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{Permanent(base), true},
		{backoff.Permanent(base), true},
		{errors.Join(errors.New("x"), Permanent(base)), true},
		{base, false},
		{nil, false},
	} {
		if got := IsPermanent(tt.err); got != tt.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if !errors.Is(Permanent(base), base) || Permanent(nil) != nil {
		t.Error("Permanent does not wrap")
	}
}
