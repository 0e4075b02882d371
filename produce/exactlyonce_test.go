package produce

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestExactlyOnceKgoOptsWithATransactionalIDPassValidationAndKgo(t *testing.T) {
	all, err := ApplyKgo(ExactlyOnce, []kgo.Opt{kgo.TransactionalID("tx"), kgo.ConsumeTopics("in"), kgo.ConsumerGroup("g")})
	if err != nil {
		t.Fatalf("ApplyKgo: %v", err)
	}
	cl := newClient(t, all...)
	if got := cl.OptValue(kgo.RequiredAcks); got != kgo.AllISRAcks() {
		t.Errorf("RequiredAcks = %v", got)
	}
	if got := cl.OptValue(kgo.DisableIdempotentWrite); got != false {
		t.Errorf("DisableIdempotentWrite = %v", got)
	}
	if got := cl.OptValue(kgo.FetchIsolationLevel); got != int8(1) {
		t.Errorf("FetchIsolationLevel = %v, want read_committed (1)", got)
	}
	if got := cl.OptValue(kgo.TransactionalID); got != "tx" {
		t.Errorf("TransactionalID = %v", got)
	}
	// The paired consumer's options.
	cons := newClient(t, KgoConsumerOpts(ExactlyOnce)...)
	if got := cons.OptValue(kgo.FetchIsolationLevel); got != int8(1) {
		t.Errorf("KgoConsumerOpts: FetchIsolationLevel = %v, want read_committed (1)", got)
	}
	if KgoConsumerOpts(NoLoss) != nil {
		t.Error("KgoConsumerOpts(NoLoss) is not nil")
	}
	// A transactional NoLoss client is still a valid NoLoss client.
	if _, err := ApplyKgo(NoLoss, []kgo.Opt{kgo.TransactionalID("tx")}); err != nil {
		t.Errorf("ApplyKgo(NoLoss, TransactionalID): %v", err)
	}
}

// checkNamed fails t unless err names exactly the settings want, in order,
// matches sentinel, and each ConfigError is complete.
func checkNamed(t *testing.T, err error, p Preset, want []string, sentinel error) {
	t.Helper()
	if got := settingsOf(err); !slices.Equal(got, want) {
		t.Fatalf("settings named = %v, want %v (error: %v)", got, want, err)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("error does not match %v: %v", sentinel, err)
	}
	for _, ce := range ConfigErrors(err) {
		if ce.Preset != p || ce.Problem == "" || ce.Fix == "" || !strings.Contains(err.Error(), ce.Setting) {
			t.Errorf("incomplete ConfigError %+v", ce)
		}
	}
}

func TestApplyKgoNamesEachTransactionalContradiction(t *testing.T) {
	txn := kgo.TransactionalID("tx")
	for _, tc := range []struct {
		name     string
		preset   Preset
		opts     []kgo.Opt
		want     []string // settings named, in order
		sentinel error
	}{
		{"no transactional id", ExactlyOnce, nil, []string{"TransactionalID"}, ErrUnsafeConfig},
		{"empty transactional id (kgo refuses it)", ExactlyOnce, []kgo.Opt{kgo.TransactionalID("")}, []string{"TransactionalID"}, ErrInvalidConfig},
		{"transactional id with leader acks", ExactlyOnce, []kgo.Opt{txn, kgo.RequiredAcks(kgo.LeaderAck())},
			[]string{"RequiredAcks"}, ErrUnsafeConfig},
		{"transactional id with no acks", ExactlyOnce, []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), txn},
			[]string{"RequiredAcks"}, ErrUnsafeConfig},
		{"transactional id with idempotence off (kgo refuses it)", ExactlyOnce, []kgo.Opt{txn, kgo.DisableIdempotentWrite()},
			[]string{"DisableIdempotentWrite"}, ErrUnsafeConfig},
		{"transactional id with produce cancellation (kgo refuses it)", ExactlyOnce, []kgo.Opt{txn, kgo.AllowIdempotentProduceCancellation()},
			[]string{"AllowIdempotentProduceCancellation"}, ErrUnsafeConfig},
		{"transactional id with 5 in flight (kgo refuses it)", ExactlyOnce, []kgo.Opt{txn, kgo.MaxProduceRequestsInflightPerBroker(5)},
			[]string{"MaxProduceRequestsInflightPerBroker"}, ErrUnsafeConfig},
		{"bounded retries", ExactlyOnce, []kgo.Opt{txn, kgo.RecordRetries(3)}, []string{"RecordRetries"}, ErrUnsafeConfig},
		{"short delivery timeout", ExactlyOnce, []kgo.Opt{txn, kgo.RecordDeliveryTimeout(time.Second)}, []string{"RecordDeliveryTimeout"}, ErrUnsafeConfig},
		{"manual flushing", ExactlyOnce, []kgo.Opt{txn, kgo.ManualFlushing()}, []string{"ManualFlushing"}, ErrUnsafeConfig},
		{"zero transaction timeout", ExactlyOnce, []kgo.Opt{txn, kgo.TransactionTimeout(0)}, []string{"TransactionTimeout"}, ErrInvalidConfig},
		{"consuming read_uncommitted", ExactlyOnce, []kgo.Opt{txn, kgo.ConsumeTopics("in"), kgo.FetchIsolationLevel(kgo.ReadUncommitted())},
			[]string{"FetchIsolationLevel"}, ErrUnsafeConfig},
		{"every contradiction at once", ExactlyOnce, []kgo.Opt{
			kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5),
			kgo.RecordRetries(3), kgo.ManualFlushing(), kgo.ConsumeTopics("in"), kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		}, []string{"RequiredAcks", "DisableIdempotentWrite", "TransactionalID", "MaxProduceRequestsInflightPerBroker",
			"RecordRetries", "FetchIsolationLevel", "ManualFlushing"}, ErrUnsafeConfig},
		{"transactional id under LeaderAck (kgo refuses it)", LeaderAck, []kgo.Opt{txn}, []string{"TransactionalID"}, ErrUnsafeConfig},
		{"transactional id under AtMostOnce (kgo refuses it)", AtMostOnce, []kgo.Opt{txn}, []string{"TransactionalID"}, ErrUnsafeConfig},
		{"transactional id without idempotence under StrictOrder (kgo refuses it)", StrictOrder, []kgo.Opt{kgo.DisableIdempotentWrite(), txn},
			[]string{"DisableIdempotentWrite"}, ErrUnsafeConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all, err := ApplyKgo(tc.preset, tc.opts)
			if all != nil {
				t.Error("refused options but returned a slice")
			}
			checkNamed(t, err, tc.preset, tc.want, tc.sentinel)
		})
	}
}

func TestNewRefusesAnExactlyOnceProducerWithoutATransactionalID(t *testing.T) {
	// No seed broker listens here; the refusal must not need one.
	_, err := New(t.Context(), ExactlyOnce, kgo.SeedBrokers("127.0.0.1:1"))
	if got := settingsOf(err); !slices.Equal(got, []string{"TransactionalID"}) || !errors.Is(err, ErrUnsafeConfig) {
		t.Fatalf("New(ExactlyOnce) without a transactional id: %v", err)
	}
}

func TestTransactOnAProducerWithoutATransactionalIDIsRefused(t *testing.T) {
	called := false
	err := (&Producer{preset: NoLoss}).Transact(t.Context(), func(ctx context.Context) error { called = true; return nil })
	if !errors.Is(err, ErrInvalidConfig) || called {
		t.Fatalf("Transact on a NoLoss Producer = %v (fn called: %v), want ErrInvalidConfig without calling fn", err, called)
	}
}

// exactlyOnceSarama returns a config ApplySarama(ExactlyOnce) wrote, with
// a transactional id.
func exactlyOnceSarama(t *testing.T) *sarama.Config {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Producer.Transaction.ID = "tx"
	if err := ApplySarama(ExactlyOnce, cfg); err != nil {
		t.Fatalf("ApplySarama(ExactlyOnce): %v", err)
	}
	return cfg
}

func TestApplySaramaExactlyOnceWritesTheTransactionalProducerAndReadCommitted(t *testing.T) {
	cfg := exactlyOnceSarama(t)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("sarama's own Validate after ApplySarama: %v", err)
	}
	pr := cfg.Producer
	if pr.RequiredAcks != sarama.WaitForAll || !pr.Idempotent || cfg.Net.MaxOpenRequests != 1 || pr.Retry.Max != 1200 {
		t.Errorf("acks=%v idempotent=%v MaxOpenRequests=%d Retry.Max=%d", pr.RequiredAcks, pr.Idempotent, cfg.Net.MaxOpenRequests, pr.Retry.Max)
	}
	if cfg.Consumer.IsolationLevel != sarama.ReadCommitted {
		t.Errorf("Consumer.IsolationLevel = %v, want ReadCommitted", cfg.Consumer.IsolationLevel)
	}

	cons := sarama.NewConfig()
	if err := ApplySaramaConsumer(ExactlyOnce, cons); err != nil || cons.Consumer.IsolationLevel != sarama.ReadCommitted {
		t.Errorf("ApplySaramaConsumer = %v, IsolationLevel %v", err, cons.Consumer.IsolationLevel)
	}
	cons = sarama.NewConfig()
	if err := ApplySaramaConsumer(NoLoss, cons); err != nil || cons.Consumer.IsolationLevel != sarama.ReadUncommitted {
		t.Errorf("ApplySaramaConsumer(NoLoss) = %v, IsolationLevel %v", err, cons.Consumer.IsolationLevel)
	}
	cons.Version = sarama.V0_10_2_0
	if got := settingsOf(ApplySaramaConsumer(ExactlyOnce, cons)); !slices.Equal(got, []string{"Version"}) {
		t.Errorf("ApplySaramaConsumer on 0.10.2: settings named %v, want [Version]", got)
	}
}

func TestValidateSaramaNamesEachTransactionalContradiction(t *testing.T) {
	for _, tc := range []struct {
		name     string
		preset   Preset
		edit     func(*sarama.Config)
		want     []string
		sentinel error
	}{
		{"no transactional id", ExactlyOnce, func(c *sarama.Config) { c.Producer.Transaction.ID = "" },
			[]string{"Producer.Transaction.ID"}, ErrUnsafeConfig},
		{"transactional id with WaitForLocal (sarama refuses it)", ExactlyOnce, func(c *sarama.Config) { c.Producer.RequiredAcks = sarama.WaitForLocal },
			[]string{"Producer.RequiredAcks"}, ErrUnsafeConfig},
		{"transactional id with idempotence off (sarama refuses it)", ExactlyOnce, func(c *sarama.Config) { c.Producer.Idempotent = false },
			[]string{"Producer.Idempotent"}, ErrUnsafeConfig},
		{"transactional id with 5 open requests (sarama refuses it)", ExactlyOnce, func(c *sarama.Config) { c.Net.MaxOpenRequests = 5 },
			[]string{"Net.MaxOpenRequests"}, ErrUnsafeConfig},
		{"transactional id on 0.10.2 (sarama refuses it)", ExactlyOnce, func(c *sarama.Config) { c.Version = sarama.V0_10_2_0 },
			[]string{"Version"}, ErrUnsafeConfig},
		{"no transactional id on 0.10.2 (sarama refuses read_committed there)", ExactlyOnce, func(c *sarama.Config) {
			c.Producer.Transaction.ID = ""
			c.Version = sarama.V0_10_2_0
		}, []string{"Producer.Transaction.ID", "Version"}, ErrUnsafeConfig},
		{"transactional id without retries (sarama refuses it)", ExactlyOnce, func(c *sarama.Config) { c.Producer.Retry.Max = 0 },
			[]string{"Producer.Retry.Max"}, ErrInvalidConfig},
		{"zero transaction timeout", ExactlyOnce, func(c *sarama.Config) { c.Producer.Transaction.Timeout = 0 },
			[]string{"Producer.Transaction.Timeout"}, ErrInvalidConfig},
		{"errors not returned", ExactlyOnce, func(c *sarama.Config) { c.Producer.Return.Errors = false },
			[]string{"Producer.Return.Errors"}, ErrUnsafeConfig},
		{"every contradiction at once", ExactlyOnce, func(c *sarama.Config) {
			c.Producer.Transaction.ID = ""
			c.Producer.RequiredAcks = sarama.WaitForLocal
			c.Producer.Idempotent = false
			c.Net.MaxOpenRequests = 5
			c.Producer.Retry.Max = 3
		}, []string{"Producer.RequiredAcks", "Producer.Idempotent", "Producer.Transaction.ID", "Net.MaxOpenRequests", "Producer.Retry.Max"}, ErrUnsafeConfig},
		{"transactional id under LeaderAck (sarama refuses it)", LeaderAck, func(c *sarama.Config) {
			c.Producer.RequiredAcks = sarama.WaitForLocal
			c.Producer.Idempotent = false
		}, []string{"Producer.Transaction.ID"}, ErrUnsafeConfig},
		{"transactional id under AtMostOnce (sarama refuses it)", AtMostOnce, func(c *sarama.Config) {
			c.Producer.RequiredAcks = sarama.NoResponse
			c.Producer.Idempotent = false
			c.Producer.Retry.Max = 0
		}, []string{"Producer.Transaction.ID"}, ErrUnsafeConfig},
		{"transactional id without idempotence under StrictOrder (sarama refuses it)", StrictOrder, func(c *sarama.Config) { c.Producer.Idempotent = false },
			[]string{"Producer.Idempotent"}, ErrUnsafeConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := exactlyOnceSarama(t)
			tc.edit(cfg)
			checkNamed(t, ValidateSarama(tc.preset, cfg), tc.preset, tc.want, tc.sentinel)
		})
	}
}

func TestNewSaramaSyncTakesATransactionalIDOnlyUnderExactlyOnce(t *testing.T) {
	cfg := sarama.NewConfig()
	cfg.Producer.Transaction.ID = "tx"
	// No address: the refusal must come before any connection attempt.
	_, err := NewSaramaSync(nil, NoLoss, cfg)
	if got := settingsOf(err); !slices.Equal(got, []string{"Producer.Transaction.ID"}) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewSaramaSync(NoLoss) with a transactional id: %v", err)
	}
	_, err = NewSaramaSync(nil, ExactlyOnce, sarama.NewConfig())
	if got := settingsOf(err); !slices.Equal(got, []string{"Producer.Transaction.ID"}) || !errors.Is(err, ErrUnsafeConfig) {
		t.Fatalf("NewSaramaSync(ExactlyOnce) without a transactional id: %v", err)
	}
}

func TestTxnErrorMatchesItsOutcome(t *testing.T) {
	cause := errors.New("handler failed")
	aborted := &TxnError{TransactionalID: "tx", Err: cause}
	if !errors.Is(aborted, ErrTxnAborted) || errors.Is(aborted, ErrOutcomeUnknown) || errors.Is(aborted, ErrFenced) || !errors.Is(aborted, cause) {
		t.Errorf("aborted: %v", aborted)
	}
	unknown := &TxnError{TransactionalID: "tx", MaybeCommitted: true, Err: cause}
	if errors.Is(unknown, ErrTxnAborted) || !errors.Is(unknown, ErrOutcomeUnknown) {
		t.Errorf("maybe committed: %v", unknown)
	}
	fenced := &TxnError{TransactionalID: "tx", Fenced: true, Err: cause}
	if !errors.Is(fenced, ErrFenced) || !errors.Is(fenced, ErrTxnAborted) || !strings.Contains(fenced.Error(), "fenced") {
		t.Errorf("fenced: %v", fenced)
	}
}
