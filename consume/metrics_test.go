package consume_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	kgproduce "github.com/kafkaguard/kafkaguard/produce"
)

// countingParker parks by counting.
type countingParker struct{ n atomic.Int64 }

func (p *countingParker) Park(context.Context, *kgo.Record, error) error {
	p.n.Add(1)
	return nil
}

// TestMetricsOfAProducerAndAConsumerUnderLoad produces records through a
// Producer and consumes them with a Consumer on the bundled cluster, both
// counting into one registry served over HTTP, and finds every documented
// metric on /metrics with the value the run implies: one record the broker
// refused, every other one acknowledged and handled, two parked, one key
// held while in flight and queued are read, and lag 0 once all is
// committed.
func TestMetricsOfAProducerAndAConsumerUnderLoad(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic = "metered"
	newTopic(t, c, topic, 2)
	reg := prometheus.NewRegistry()
	pm, err := kgproduce.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := consume.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := testkit.ServeMetrics(t, reg)
	scrape := func() map[string]string { return testkit.Scrape(t, metricsURL, "kafkaguard_") }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	p, err := kgproduce.New(ctx, kgproduce.NoLoss, kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic(topic),
		kgo.WithHooks(pm))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	// One record the broker refuses for good: failed, and certainly not written.
	for part := int32(0); part < 2; part++ {
		if err := c.FailProduces(topic, part, 1, kerr.InvalidRecord, 0); err != nil {
			t.Fatal(err)
		}
	}
	err = p.Send(ctx, &kgo.Record{Key: []byte("refused"), Value: []byte("refused")})
	if !errors.Is(err, kgproduce.ErrNotWritten) {
		t.Fatalf("send during the fault: %v, want ErrNotWritten", err)
	}
	for part := int32(0); part < 2; part++ {
		if err := c.FailProduces(topic, part, 0, kerr.InvalidRecord, 0); err != nil {
			t.Fatal(err)
		}
	}

	const keys, perKey = 20, 20
	records := keyed(keys, perKey)
	records[7].Value = []byte("park:" + string(records[7].Value))
	records[77].Value = []byte("park:" + string(records[77].Value))
	var sendErrs atomic.Int64
	for _, r := range records {
		p.SendAsync(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				sendErrs.Add(1)
			}
		})
	}
	if err := p.Flush(ctx); err != nil || sendErrs.Load() != 0 {
		t.Fatalf("flush: %v, %d sends failed", err, sendErrs.Load())
	}
	ends := testkit.EndOffsets(ctx, t, c.Bootstrap(), topic)

	// k000's first record holds until the gauges have been read with it in
	// flight and its other records queued behind it.
	gate := make(chan struct{})
	var gateOnce sync.Once
	parker := &countingParker{}
	run := start(t, func(ctx context.Context, r *kgo.Record) error {
		if string(r.Value) == "k000:0" {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if strings.HasPrefix(string(r.Value), "park:") {
			return errors.New("handler failed")
		}
		return nil
	}, groupOpts(c, "metered-group", topic), consume.ReportMetrics(cm), consume.RetryPath(parker),
		consume.CommitInterval(20*time.Millisecond), consume.Concurrency(8))
	sum := func(s map[string]string, prefix string) (total float64) {
		for name, v := range s {
			if strings.HasPrefix(name, prefix) {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
		return total
	}
	testkit.WaitFor(t, 30*time.Second, "k000:0 in flight with records queued behind it", func() bool {
		s := scrape()
		return sum(s, "kafkaguard_ordering_in_flight{") >= 1 && sum(s, "kafkaguard_ordering_queued{") >= perKey-1
	})
	gateOnce.Do(func() { close(gate) })
	testkit.WaitFor(t, 30*time.Second, "every record handled and committed", func() bool {
		s := scrape()
		for part, end := range ends {
			l := fmt.Sprintf(`{group="metered-group",partition="%d",topic="%s"}`, part, topic)
			if s["kafkaguard_consume_committed_offset"+l] != strconv.FormatInt(end, 10) || s["kafkaguard_consume_lag"+l] != "0" {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprint("end offsets ", ends, "\n", scrape()) })
	s := scrape()
	n := strconv.Itoa(keys * perKey)
	want := map[string]string{
		`kafkaguard_produce_acked_total{topic="metered"}`:                             n,
		`kafkaguard_produce_ack_latency_seconds_count{topic="metered"}`:               n,
		`kafkaguard_produce_failed_total{class="INVALID_RECORD",topic="metered"}`:     "1",
		`kafkaguard_produce_outcome_unknown_total{topic="metered"}`:                   "0",
		`kafkaguard_ordering_handled_total{topic="metered"}`:                          n,
		`kafkaguard_ordering_handler_failures_total{topic="metered"}`:                 "0",
		`kafkaguard_ordering_handler_seconds_count{topic="metered"}`:                  n,
		`kafkaguard_consume_parked_total{topic="metered"}`:                            "2",
		`kafkaguard_consume_rebalances_total{event="assigned",group="metered-group"}`: "1",
	}
	for part := range ends {
		l := fmt.Sprintf(`{partition="%d",topic="%s"}`, part, topic)
		for _, g := range []string{"in_flight", "queued", "keys_blocked", "blocked"} {
			want["kafkaguard_ordering_"+g+l] = "0"
		}
	}
	for name, v := range want {
		if s[name] != v {
			t.Errorf("%s = %q, want %s", name, s[name], v)
		}
	}
	if sum(s, "kafkaguard_ordering_handler_seconds_sum{") < 0 || sum(s, "kafkaguard_produce_ack_latency_seconds_sum{") <= 0 {
		t.Errorf("latency sums: handler %v, ack %v", sum(s, "kafkaguard_ordering_handler_seconds_sum{"), sum(s, "kafkaguard_produce_ack_latency_seconds_sum{"))
	}
	if parker.n.Load() != 2 {
		t.Errorf("%d records parked, want 2", parker.n.Load())
	}
	run.stop()
	if err := <-run.wait(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestKpromClientMetricsBesideOurs: franz-go's own client metrics (its kprom
// plugin), given to the Consumer's client as a kgo hook, land on the same
// registry as the consumer's, without clashing.
func TestKpromClientMetricsBesideOurs(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	const topic = "kprom"
	newTopic(t, c, topic, 1)
	produce(t, c, topic, keyed(5, 4))
	reg := prometheus.NewRegistry()
	cm, err := consume.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := testkit.ServeMetrics(t, reg)
	kp := kprom.NewMetrics("kafkaguard", kprom.Subsystem("kgo"), kprom.Registerer(reg), kprom.Gatherer(reg))
	start(t, func(context.Context, *kgo.Record) error { return nil },
		groupOpts(c, "kprom-group", topic), consume.KgoOpts(kgo.WithHooks(kp)), consume.ReportMetrics(cm))
	// franz-go counts a fetch's bytes in its hook, which may run after the records were handed
	// out: the test waits for both rather than reading the counter once the records are handled.
	var s map[string]string
	fetched := func() (sum float64) {
		for name, v := range s {
			if strings.HasPrefix(name, "kafkaguard_kgo_fetch_bytes_total{") {
				f, _ := strconv.ParseFloat(v, 64)
				sum += f
			}
		}
		return sum
	}
	testkit.WaitFor(t, 30*time.Second, "20 records handled and kafkaguard_kgo_fetch_bytes_total above 0", func() bool {
		s = testkit.Scrape(t, metricsURL, "kafkaguard_")
		return s[`kafkaguard_ordering_handled_total{topic="kprom"}`] == "20" && fetched() > 0
	}, func() string { return fmt.Sprintf("scraped %v", s) })
}
