package produce

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func TestApplySaramaWritesPresetAndSaramaStillValidates(t *testing.T) {
	for _, tc := range []struct {
		preset     Preset
		acks       sarama.RequiredAcks
		idempotent bool
		openReqs   int
		retryMax   int
	}{
		// sarama's default backoff is 100ms: 1200 retries span DeliveryTimeout.
		{NoLoss, sarama.WaitForAll, true, 1, 1200},
		{StrictOrder, sarama.WaitForAll, true, 1, 1200},
		{LeaderAck, sarama.WaitForLocal, false, 1, 1200},
		{AtMostOnce, sarama.NoResponse, false, 5, 0},
	} {
		t.Run(tc.preset.String(), func(t *testing.T) {
			cfg := sarama.NewConfig()
			cfg.ClientID = "app"
			if err := ApplySarama(tc.preset, cfg); err != nil {
				t.Fatalf("ApplySarama: %v", err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("sarama's own Validate after ApplySarama: %v", err)
			}
			pr := cfg.Producer
			if pr.RequiredAcks != tc.acks || pr.Idempotent != tc.idempotent || cfg.Net.MaxOpenRequests != tc.openReqs || pr.Retry.Max != tc.retryMax {
				t.Errorf("got acks=%v idempotent=%v MaxOpenRequests=%d Retry.Max=%d; want %v %v %d %d",
					pr.RequiredAcks, pr.Idempotent, cfg.Net.MaxOpenRequests, pr.Retry.Max,
					tc.acks, tc.idempotent, tc.openReqs, tc.retryMax)
			}
			if cfg.ClientID != "app" {
				t.Errorf("ClientID = %q, ApplySarama touched an unrelated field", cfg.ClientID)
			}
			if err := ValidateSarama(tc.preset, cfg); err != nil {
				t.Errorf("ValidateSarama after ApplySarama: %v", err)
			}
		})
	}
}

func TestApplySaramaStrictOrderWithoutIdempotenceOnOldBrokers(t *testing.T) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V0_10_2_0
	if err := ApplySarama(StrictOrder, cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Producer.Idempotent || cfg.Net.MaxOpenRequests != 1 {
		t.Fatalf("idempotent=%v MaxOpenRequests=%d, want false and 1", cfg.Producer.Idempotent, cfg.Net.MaxOpenRequests)
	}
	// NoLoss cannot be had on such a version; the error says which field.
	cfg = sarama.NewConfig()
	cfg.Version = sarama.V0_10_2_0
	err := ApplySarama(NoLoss, cfg)
	if got := settingsOf(err); !slices.Equal(got, []string{"Version"}) {
		t.Fatalf("settings named = %v, want [Version]: %v", got, err)
	}
}

func TestApplySaramaReportsWhatItMustNotWrite(t *testing.T) {
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Errors = false
	err := ApplySarama(NoLoss, cfg)
	if got := settingsOf(err); !slices.Equal(got, []string{"Producer.Return.Errors"}) {
		t.Fatalf("settings named = %v: %v", got, err)
	}
	if cfg.Producer.Return.Errors {
		t.Fatal("ApplySarama switched Return.Errors on; an application not reading Errors() would deadlock")
	}
}

func TestApplySaramaRetriesSpanTheDeliveryTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backoff time.Duration
		fn      func(retries, max int) time.Duration
		retries int
	}{
		{name: "zero backoff is raised", backoff: 0},
		{name: "tiny backoff is raised", backoff: time.Millisecond},
		{name: "long backoff", backoff: time.Second},
		{name: "exponential backoff func", fn: func(r, _ int) time.Duration {
			return min(10*time.Millisecond<<min(r, 20), 5*time.Second)
		}},
		{name: "huge retry max is lowered", backoff: 100 * time.Millisecond, retries: 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sarama.NewConfig()
			cfg.Producer.Retry.Backoff = tc.backoff
			cfg.Producer.Retry.BackoffFunc = tc.fn
			if tc.retries != 0 {
				cfg.Producer.Retry.Max = tc.retries
			}
			if err := ApplySarama(NoLoss, cfg); err != nil {
				t.Fatal(err)
			}
			if w := saramaRetryWindow(cfg); w < DeliveryTimeout {
				t.Errorf("retry window %v < %v", w, DeliveryTimeout)
			}
			if cfg.Producer.Retry.Max > saramaMaxRetryLevels {
				t.Errorf("Retry.Max = %d allocates too many retry levels", cfg.Producer.Retry.Max)
			}
		})
	}
}

func TestValidateSaramaNamesEachContradiction(t *testing.T) {
	for _, tc := range []struct {
		name     string
		preset   Preset
		edit     func(*sarama.Config)
		want     []string
		sentinel error
	}{
		{"wait for local under NoLoss", NoLoss, func(c *sarama.Config) { c.Producer.RequiredAcks = sarama.WaitForLocal; c.Producer.Idempotent = false },
			[]string{"Producer.RequiredAcks", "Producer.Idempotent"}, ErrUnsafeConfig},
		{"idempotent without acks=all", StrictOrder, func(c *sarama.Config) { c.Producer.RequiredAcks = sarama.WaitForLocal },
			[]string{"Producer.RequiredAcks"}, ErrUnsafeConfig},
		{"idempotence off under NoLoss", NoLoss, func(c *sarama.Config) { c.Producer.Idempotent = false },
			[]string{"Producer.Idempotent"}, ErrUnsafeConfig},
		{"idempotence off under StrictOrder", StrictOrder, func(c *sarama.Config) { c.Producer.Idempotent = false }, nil, nil},
		{"idempotent with 5 open requests", NoLoss, func(c *sarama.Config) { c.Net.MaxOpenRequests = 5 },
			[]string{"Net.MaxOpenRequests"}, ErrUnsafeConfig},
		{"retries with 5 open requests and no idempotence", StrictOrder, func(c *sarama.Config) {
			c.Producer.Idempotent = false
			c.Net.MaxOpenRequests = 5
		}, []string{"Net.MaxOpenRequests"}, ErrUnsafeConfig},
		{"zero open requests", StrictOrder, func(c *sarama.Config) { c.Producer.Idempotent = false; c.Net.MaxOpenRequests = 0 },
			[]string{"Net.MaxOpenRequests"}, ErrInvalidConfig},
		{"idempotent on an old version", NoLoss, func(c *sarama.Config) { c.Version = sarama.V0_10_2_0 },
			[]string{"Version"}, ErrUnsafeConfig},
		{"three retries", NoLoss, func(c *sarama.Config) { c.Producer.Retry.Max = 3 },
			[]string{"Producer.Retry.Max"}, ErrUnsafeConfig},
		{"idempotent without retries", NoLoss, func(c *sarama.Config) { c.Producer.Retry.Max = 0 },
			[]string{"Producer.Retry.Max"}, ErrInvalidConfig},
		{"retry levels beyond memory", NoLoss, func(c *sarama.Config) { c.Producer.Retry.Max = 1 << 20 },
			[]string{"Producer.Retry.Max"}, ErrInvalidConfig},
		{"errors not returned", NoLoss, func(c *sarama.Config) { c.Producer.Return.Errors = false },
			[]string{"Producer.Return.Errors"}, ErrUnsafeConfig},
		{"bounded retry buffer", NoLoss, func(c *sarama.Config) {
			c.Producer.Retry.MaxBufferLength = 10000
			c.Producer.Retry.MaxBufferBytes = 64 << 20
		}, []string{"Producer.Retry.MaxBufferLength", "Producer.Retry.MaxBufferBytes"}, ErrUnsafeConfig},
		{"acks=all under LeaderAck", LeaderAck, func(c *sarama.Config) { c.Producer.RequiredAcks = sarama.WaitForAll },
			[]string{"Producer.RequiredAcks"}, ErrUnsafeConfig},
		{"retries under AtMostOnce", AtMostOnce, func(c *sarama.Config) { c.Producer.Retry.Max = 3; c.Net.MaxOpenRequests = 1 },
			[]string{"Producer.Retry.Max"}, ErrUnsafeConfig},
		{"retries with 5 open requests under AtMostOnce", AtMostOnce, func(c *sarama.Config) { c.Producer.Retry.Max = 3 },
			[]string{"Net.MaxOpenRequests", "Producer.Retry.Max"}, ErrUnsafeConfig},
		{"sarama rejects a zero timeout", NoLoss, func(c *sarama.Config) { c.Producer.Timeout = 0 },
			[]string{"sarama.Config.Validate"}, ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sarama.NewConfig()
			if err := ApplySarama(tc.preset, cfg); err != nil {
				t.Fatal(err)
			}
			tc.edit(cfg)
			err := ValidateSarama(tc.preset, cfg)
			if got := settingsOf(err); !slices.Equal(got, tc.want) {
				t.Fatalf("settings named = %v, want %v (error: %v)", got, tc.want, err)
			}
			if tc.want == nil {
				return
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("error does not match %v: %v", tc.sentinel, err)
			}
			for _, ce := range ConfigErrors(err) {
				if ce.Problem == "" || ce.Fix == "" || !strings.Contains(err.Error(), ce.Setting) {
					t.Errorf("incomplete ConfigError %+v", ce)
				}
			}
		})
	}
}

func TestValidateSaramaReportsEveryDefaultThatBreaksNoLoss(t *testing.T) {
	// sarama's defaults: WaitForLocal, not idempotent, 5 open requests,
	// 3 retries 100ms apart.
	err := ValidateSarama(NoLoss, sarama.NewConfig())
	want := []string{"Producer.RequiredAcks", "Producer.Idempotent", "Net.MaxOpenRequests", "Producer.Retry.Max"}
	if got := settingsOf(err); !slices.Equal(got, want) {
		t.Fatalf("settings named = %v, want %v\n%v", got, want, err)
	}
	if !strings.Contains(err.Error(), "Producer.Retry.Max = 3") {
		t.Errorf("message does not give the current value: %v", err)
	}
}

func TestValidateSaramaDoesNotModifyTheConfig(t *testing.T) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V0_10_2_0
	cfg.Producer.Idempotent = true
	cfg.Producer.Timeout = 0
	before := saramaFields(cfg)
	if err := ValidateSarama(NoLoss, cfg); err == nil {
		t.Fatal("want an error")
	}
	if after := saramaFields(cfg); after != before {
		t.Fatalf("ValidateSarama changed the config:\nbefore %+v\nafter  %+v", before, after)
	}
}

// saramaFields copies the fields the presets read or write.
func saramaFields(c *sarama.Config) any {
	type fields struct {
		Acks              sarama.RequiredAcks
		Idempotent        bool
		Version           sarama.KafkaVersion
		MaxOpen, RetryMax int
		Backoff, Timeout  time.Duration
		Errors, Successes bool
		BufLen            int
		BufBytes          int64
	}
	p := c.Producer
	return fields{p.RequiredAcks, p.Idempotent, c.Version, c.Net.MaxOpenRequests, p.Retry.Max, p.Retry.Backoff,
		p.Timeout, p.Return.Errors, p.Return.Successes, p.Retry.MaxBufferLength, p.Retry.MaxBufferBytes}
}

func TestNilSaramaConfigIsAnError(t *testing.T) {
	for name, err := range map[string]error{
		"ApplySarama":    ApplySarama(NoLoss, nil),
		"ValidateSarama": ValidateSarama(NoLoss, nil),
	} {
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s(nil) = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestNewSaramaSyncRefusesContradictionsWithoutTouchingTheCallersConfig(t *testing.T) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V0_10_2_0
	before := saramaFields(cfg)
	// No address: the refusal must come before any connection attempt.
	sp, err := NewSaramaSync(nil, NoLoss, cfg)
	if sp != nil || !errors.Is(err, ErrUnsafeConfig) {
		t.Fatalf("NewSaramaSync = %v, %v; want ErrUnsafeConfig", sp, err)
	}
	if got := settingsOf(err); !slices.Equal(got, []string{"Version"}) {
		t.Fatalf("settings named = %v", got)
	}
	if after := saramaFields(cfg); after != before {
		t.Fatal("NewSaramaSync modified the caller's config")
	}
}
