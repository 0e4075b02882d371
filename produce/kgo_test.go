package produce

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// settingsOf returns the Setting of every ConfigError in err, in order.
func settingsOf(err error) []string {
	var out []string
	for _, ce := range ConfigErrors(err) {
		out = append(out, ce.Setting)
	}
	return out
}

func newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestKgoOptsWritePresetValues(t *testing.T) {
	for _, tc := range []struct {
		preset          Preset
		acks            kgo.Acks
		disableIdem     bool
		inflight        int
		retries         int64
		deliveryTimeout time.Duration
	}{
		{NoLoss, kgo.AllISRAcks(), false, 1, math.MaxInt, DeliveryTimeout},
		{StrictOrder, kgo.AllISRAcks(), false, 1, math.MaxInt, DeliveryTimeout},
		{LeaderAck, kgo.LeaderAck(), true, 1, math.MaxInt, DeliveryTimeout},
		{AtMostOnce, kgo.NoAck(), true, 1, 0, 0},
	} {
		t.Run(tc.preset.String(), func(t *testing.T) {
			cl := newClient(t, KgoOpts(tc.preset)...)
			if got := cl.OptValue(kgo.RequiredAcks); got != tc.acks {
				t.Errorf("RequiredAcks = %v, want %v", got, tc.acks)
			}
			if got := cl.OptValue(kgo.DisableIdempotentWrite); got != tc.disableIdem {
				t.Errorf("DisableIdempotentWrite = %v, want %v", got, tc.disableIdem)
			}
			if got := cl.OptValue(kgo.MaxProduceRequestsInflightPerBroker); got != tc.inflight {
				t.Errorf("MaxProduceRequestsInflightPerBroker = %v, want %v", got, tc.inflight)
			}
			if got := cl.OptValue(kgo.RecordRetries); got != tc.retries {
				t.Errorf("RecordRetries = %v, want %v", got, tc.retries)
			}
			if got := cl.OptValue(kgo.RecordDeliveryTimeout); got != tc.deliveryTimeout {
				t.Errorf("RecordDeliveryTimeout = %v, want %v", got, tc.deliveryTimeout)
			}
			if got := cl.OptValue(kgo.ManualFlushing); got != false {
				t.Errorf("ManualFlushing = %v, want false (a full buffer blocks)", got)
			}
		})
	}
}

func TestEveryPresetPassesItsOwnValidation(t *testing.T) {
	for p := NoLoss; p <= AtMostOnce; p++ {
		if err := ValidateKgo(p, KgoOpts(p)); err != nil {
			t.Errorf("ValidateKgo(%v, KgoOpts(%v)) = %v", p, p, err)
		}
		all, err := ApplyKgo(p, nil)
		if err != nil {
			t.Errorf("ApplyKgo(%v, nil) = %v", p, err)
			continue
		}
		newClient(t, all...) // kgo accepts the result
	}
}

func TestKgoDefaultsSatisfyNoLossButNotTheDemoPresets(t *testing.T) {
	if err := ValidateKgo(NoLoss, nil); err != nil {
		t.Errorf("kgo defaults under NoLoss: %v", err)
	}
	if err := ValidateKgo(StrictOrder, nil); err != nil {
		t.Errorf("kgo defaults under StrictOrder: %v", err)
	}
	// kgo's defaults are acks=all with idempotence: not what LeaderAck is.
	if got := settingsOf(ValidateKgo(LeaderAck, nil)); !slices.Equal(got, []string{"RequiredAcks"}) {
		t.Errorf("kgo defaults under LeaderAck: settings %v, want [RequiredAcks]", got)
	}
}

func TestApplyKgoNamesEachContradiction(t *testing.T) {
	for _, tc := range []struct {
		name   string
		preset Preset
		opts   []kgo.Opt
		want   []string // settings named, in order; nil means accepted
		value  string   // the first error's Value, if checked
	}{
		{name: "leader acks under NoLoss", preset: NoLoss,
			opts: []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck())}, want: []string{"RequiredAcks"}, value: "LeaderAck"},
		{name: "no acks under StrictOrder", preset: StrictOrder,
			opts: []kgo.Opt{kgo.RequiredAcks(kgo.NoAck())}, want: []string{"RequiredAcks"}, value: "NoAck"},
		{name: "idempotence with 5 in flight", preset: NoLoss,
			opts: []kgo.Opt{kgo.MaxProduceRequestsInflightPerBroker(5)}, want: []string{"MaxProduceRequestsInflightPerBroker"}, value: "5"},
		{name: "idempotence with 6 in flight", preset: StrictOrder,
			opts: []kgo.Opt{kgo.MaxProduceRequestsInflightPerBroker(6)}, want: []string{"MaxProduceRequestsInflightPerBroker"}, value: "6"},
		{name: "idempotence off under NoLoss", preset: NoLoss,
			opts: []kgo.Opt{kgo.DisableIdempotentWrite()}, want: []string{"DisableIdempotentWrite"}},
		{name: "idempotence off with retries and 5 in flight under NoLoss", preset: NoLoss,
			opts: []kgo.Opt{kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5)},
			want: []string{"DisableIdempotentWrite", "MaxProduceRequestsInflightPerBroker"}},
		{name: "idempotence off with one in flight under StrictOrder", preset: StrictOrder,
			opts: []kgo.Opt{kgo.DisableIdempotentWrite()}},
		{name: "idempotence off with retries and 3 in flight under StrictOrder", preset: StrictOrder,
			opts: []kgo.Opt{kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(3)},
			want: []string{"MaxProduceRequestsInflightPerBroker"}, value: "3"},
		{name: "idempotent cancellation", preset: NoLoss,
			opts: []kgo.Opt{kgo.AllowIdempotentProduceCancellation()}, want: []string{"AllowIdempotentProduceCancellation"}},
		{name: "bounded retries", preset: NoLoss,
			opts: []kgo.Opt{kgo.RecordRetries(10)}, want: []string{"RecordRetries"}, value: "10"},
		{name: "short delivery timeout", preset: StrictOrder,
			opts: []kgo.Opt{kgo.RecordDeliveryTimeout(5 * time.Second)}, want: []string{"RecordDeliveryTimeout"}, value: "5s"},
		{name: "delivery timeout below request timeout", preset: NoLoss,
			opts: []kgo.Opt{kgo.RecordDeliveryTimeout(40 * time.Second), kgo.ProduceRequestTimeout(45 * time.Second)},
			want: []string{"RecordDeliveryTimeout"}, value: "40s"},
		{name: "unbounded delivery time", preset: NoLoss,
			opts: []kgo.Opt{kgo.RecordDeliveryTimeout(0)}},
		{name: "manual flushing", preset: NoLoss,
			opts: []kgo.Opt{kgo.ManualFlushing()}, want: []string{"ManualFlushing"}},
		{name: "bounded buffer still blocks", preset: NoLoss,
			opts: []kgo.Opt{kgo.MaxBufferedRecords(10), kgo.MaxBufferedBytes(1 << 20)}},
		{name: "acks=all under LeaderAck", preset: LeaderAck,
			opts: []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}, want: []string{"RequiredAcks"}, value: "AllISRAcks"},
		{name: "retries with 3 in flight under LeaderAck", preset: LeaderAck,
			opts: []kgo.Opt{kgo.MaxProduceRequestsInflightPerBroker(3)}, want: []string{"MaxProduceRequestsInflightPerBroker"}},
		{name: "retries under AtMostOnce", preset: AtMostOnce,
			opts: []kgo.Opt{kgo.RecordRetries(3)}, want: []string{"RecordRetries"}, value: "3"},
		{name: "retries and 2 in flight under AtMostOnce", preset: AtMostOnce,
			opts: []kgo.Opt{kgo.RecordRetries(3), kgo.MaxProduceRequestsInflightPerBroker(2)},
			want: []string{"MaxProduceRequestsInflightPerBroker", "RecordRetries"}},
		{name: "transactional id alone", preset: NoLoss,
			opts: []kgo.Opt{kgo.TransactionalID("tx")}},
		{name: "transactional id with leader acks", preset: NoLoss,
			opts: []kgo.Opt{kgo.TransactionalID("tx"), kgo.RequiredAcks(kgo.LeaderAck())},
			want: []string{"RequiredAcks"}, value: "LeaderAck"},
		{name: "transactional id with 3 in flight", preset: NoLoss,
			opts: []kgo.Opt{kgo.TransactionalID("tx"), kgo.MaxProduceRequestsInflightPerBroker(3)},
			want: []string{"MaxProduceRequestsInflightPerBroker"}, value: "3"},
		{name: "later option wins", preset: NoLoss,
			opts: []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.RequiredAcks(kgo.AllISRAcks())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all, err := ApplyKgo(tc.preset, tc.opts)
			got := settingsOf(err)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("settings named = %v, want %v (error: %v)", got, tc.want, err)
			}
			if tc.want == nil {
				if all == nil {
					t.Fatal("accepted options but returned nil")
				}
				newClient(t, all...)
				return
			}
			if all != nil {
				t.Error("refused options but returned a slice")
			}
			if !errors.Is(err, ErrUnsafeConfig) {
				t.Errorf("error does not match ErrUnsafeConfig: %v", err)
			}
			first := ConfigErrors(err)[0]
			if tc.value != "" && first.Value != tc.value {
				t.Errorf("Value = %q, want %q", first.Value, tc.value)
			}
			for _, ce := range ConfigErrors(err) {
				if ce.Preset != tc.preset || ce.Problem == "" || ce.Fix == "" {
					t.Errorf("incomplete ConfigError %+v", ce)
				}
				if !strings.Contains(err.Error(), ce.Setting) {
					t.Errorf("message %q does not name %s", err, ce.Setting)
				}
			}
		})
	}
}

func TestApplyKgoReportsEveryContradictionAtOnce(t *testing.T) {
	_, err := ApplyKgo(NoLoss, []kgo.Opt{
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.MaxProduceRequestsInflightPerBroker(5),
		kgo.RecordRetries(3),
		kgo.RecordDeliveryTimeout(time.Second),
		kgo.ManualFlushing(),
		kgo.AllowIdempotentProduceCancellation(),
	})
	want := []string{"RequiredAcks", "MaxProduceRequestsInflightPerBroker", "AllowIdempotentProduceCancellation",
		"RecordRetries", "RecordDeliveryTimeout", "ManualFlushing"}
	if got := settingsOf(err); !slices.Equal(got, want) {
		t.Fatalf("settings named = %v, want %v", got, want)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Setting != "RequiredAcks" {
		t.Fatalf("errors.As found %v", ce)
	}
	if n := strings.Count(err.Error(), "produce: NoLoss: "); n != len(want) {
		t.Errorf("message has %d lines for %d errors:\n%v", n, len(want), err)
	}
}

func TestApplyKgoReportsWhatKgoItselfRejects(t *testing.T) {
	_, err := ApplyKgo(NoLoss, []kgo.Opt{kgo.ProducerLinger(2 * time.Minute)})
	ces := ConfigErrors(err)
	if len(ces) != 1 || ces[0].Setting != "kgo.NewClient" || !strings.Contains(ces[0].Problem, "linger") {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, ErrInvalidConfig) || errors.Is(err, ErrUnsafeConfig) {
		t.Fatalf("want ErrInvalidConfig and not ErrUnsafeConfig: %v", err)
	}

	_, err = ApplyKgo(StrictOrder, []kgo.Opt{kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(0)})
	if got := settingsOf(err); !slices.Equal(got, []string{"MaxProduceRequestsInflightPerBroker"}) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("zero in flight without idempotence: %v", err)
	}
}

func TestApplyKgoLetsApplicationOptionsOverridePreset(t *testing.T) {
	all, err := ApplyKgo(NoLoss, []kgo.Opt{kgo.RecordDeliveryTimeout(5 * time.Minute), kgo.ClientID("app")})
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, all...)
	if got := cl.OptValue(kgo.RecordDeliveryTimeout); got != 5*time.Minute {
		t.Errorf("RecordDeliveryTimeout = %v, want the application's 5m", got)
	}
	if got := cl.OptValue(kgo.RequiredAcks); got != kgo.AllISRAcks() {
		t.Errorf("RequiredAcks = %v, want the preset's AllISRAcks", got)
	}
}

func TestApplyKgoDoesNotModifyTheApplicationsSlice(t *testing.T) {
	mine := kgo.ClientID("app")
	backing := make([]kgo.Opt, 4)
	opts := backing[:1]
	opts[0] = mine
	all, err := ApplyKgo(NoLoss, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) != 1 || backing[1] != nil || backing[2] != nil || backing[3] != nil {
		t.Fatal("ApplyKgo wrote into the application's slice")
	}
	if len(all) != len(KgoOpts(NoLoss))+1 {
		t.Fatalf("len(all) = %d", len(all))
	}
	all[0] = nil
	if opts[0] == nil {
		t.Fatal("the returned slice shares the application's backing array")
	}
}
