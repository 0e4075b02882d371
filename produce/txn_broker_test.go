package produce_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// endMarker is the value of the plain (non-transactional) record each
// test writes after its transactions: a reader that reaches it has read
// everything before it, at read_committed once no transaction is open.
const endMarker = "end"

// txnCluster starts a 3-broker cluster with a one-partition topic
// replicated 3 times.
func txnCluster(t *testing.T, topic string) *kafkatest.Cluster {
	t.Helper()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	if err := c.CreateTopic(t.Context(), topic, 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// writeEnd writes endMarker to topic with a plain NoLoss producer.
func writeEnd(t *testing.T, c *kafkatest.Cluster, topic string) {
	t.Helper()
	p := newProducer(t, c, produce.NoLoss)
	if err := p.Send(t.Context(), &kgo.Record{Topic: topic, Value: []byte(endMarker)}); err != nil {
		t.Fatalf("writing the end marker: %v", err)
	}
}

// readUntilEnd reads topic's partition 0 from the start with opts (its
// isolation level) and returns the values before endMarker.
func readUntilEnd(t *testing.T, c *kafkatest.Cluster, topic string, opts ...kgo.Opt) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %v and no end marker before the deadline", got)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("fetch %s-%d: %v (retried)", topic, p, err) })
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if done = done || string(r.Value) == endMarker; !done {
				got = append(got, string(r.Value))
			}
		})
		if done {
			return got
		}
	}
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// withPrefix returns the values of got that start with prefix.
func withPrefix(got []string, prefix string) []string {
	var out []string
	for _, v := range got {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

var errHandler = errors.New("the handler failed")

// TestExactlyOnceKgoAbortedRecordsAreNeverReadCommitted runs three
// transactions through an ExactlyOnce Producer: one committed, one whose
// fn fails, one whose fn returns nil although a send in it failed, then
// another committed one. read_committed reads exactly the committed
// records; read_uncommitted reads the aborted ones too. Next to it, a
// NoLoss producer playing the same "transaction" without one: its records
// are read_committed although the application gave up on them, which is
// what the same check finds if the preset is not used.
func TestExactlyOnceKgoAbortedRecordsAreNeverReadCommitted(t *testing.T) {
	t.Parallel()
	const topic = "eos-kgo"
	c := txnCluster(t, topic)
	ctx := t.Context()
	p := newProducer(t, c, produce.ExactlyOnce, kgo.TransactionalID("eos-kgo-1"), kgo.DefaultProduceTopic(topic))

	send := func(values []string) func(context.Context) error {
		return func(ctx context.Context) error {
			for _, v := range values {
				if err := p.Send(ctx, &kgo.Record{Value: []byte(v)}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if err := p.Transact(ctx, send(seq("committed", 5))); err != nil {
		t.Fatalf("committed transaction: %v", err)
	}
	err := p.Transact(ctx, func(ctx context.Context) error {
		if err := send(seq("aborted", 5))(ctx); err != nil {
			return err
		}
		return errHandler
	})
	if !errors.Is(err, produce.ErrTxnAborted) || !errors.Is(err, errHandler) || errors.Is(err, produce.ErrOutcomeUnknown) {
		t.Fatalf("transaction whose fn failed: %v, want ErrTxnAborted and the handler's error", err)
	}
	var te *produce.TxnError
	if !errors.As(err, &te) || te.TransactionalID != "eos-kgo-1" || te.Fenced {
		t.Fatalf("TxnError = %+v", te)
	}
	err = p.Transact(ctx, func(ctx context.Context) error {
		if err := send(seq("failed-send", 2))(ctx); err != nil {
			return err
		}
		p.SendAsync(ctx, nil, func(*kgo.Record, error) {}) // fails; fn ignores it
		return nil
	})
	if !errors.Is(err, produce.ErrTxnAborted) {
		t.Fatalf("transaction with an ignored failed send: %v, want ErrTxnAborted", err)
	}
	if err := p.Transact(ctx, send(seq("later", 3))); err != nil {
		t.Fatalf("transaction after the aborts: %v", err)
	}

	// The unsafe configuration: NoLoss has no transaction to abort.
	plain := newProducer(t, c, produce.NoLoss, kgo.DefaultProduceTopic(topic))
	for _, v := range seq("plain-aborted", 3) {
		if err := plain.Send(ctx, &kgo.Record{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	// ... the handler fails here, and there is nothing to abort.
	writeEnd(t, c, topic)

	committed := readUntilEnd(t, c, topic, produce.KgoConsumerOpts(produce.ExactlyOnce)...)
	if got, want := withPrefix(committed, "committed"), seq("committed", 5); !slices.Equal(got, want) {
		t.Errorf("read_committed read %v of the committed transaction, want %v", got, want)
	}
	if got, want := withPrefix(committed, "later"), seq("later", 3); !slices.Equal(got, want) {
		t.Errorf("read_committed read %v of the last transaction, want %v", got, want)
	}
	if got := append(withPrefix(committed, "aborted"), withPrefix(committed, "failed-send")...); len(got) != 0 {
		t.Errorf("read_committed read records of aborted transactions: %v", got)
	}
	if got := withPrefix(committed, "plain-aborted"); !slices.Equal(got, seq("plain-aborted", 3)) {
		t.Errorf("read_committed read %v of the NoLoss producer's given-up records, want all 3 (NoLoss cannot take them back)", got)
	}

	uncommitted := readUntilEnd(t, c, topic, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if got := withPrefix(uncommitted, "aborted"); !slices.Equal(got, seq("aborted", 5)) {
		t.Errorf("read_uncommitted read %v of the aborted transaction, want all 5", got)
	}
	if got := withPrefix(uncommitted, "failed-send"); !slices.Equal(got, seq("failed-send", 2)) {
		t.Errorf("read_uncommitted read %v of the transaction with a failed send, want both", got)
	}
}

// TestExactlyOnceKgoSecondProducerWithTheSameIDFencesTheFirst opens a
// transaction, and while it is open a second ExactlyOnce producer with
// the same transactional id commits one: the first's commit fails with a
// TxnError matching ErrFenced, its record is never read_committed, and its
// next transaction is refused as fenced too.
func TestExactlyOnceKgoSecondProducerWithTheSameIDFencesTheFirst(t *testing.T) {
	t.Parallel()
	const topic = "eos-kgo-fence"
	c := txnCluster(t, topic)
	ctx := t.Context()
	opts := []kgo.Opt{kgo.TransactionalID("eos-kgo-fence"), kgo.DefaultProduceTopic(topic)}
	first := newProducer(t, c, produce.ExactlyOnce, opts...)
	second := newProducer(t, c, produce.ExactlyOnce, opts...)

	err := first.Transact(ctx, func(ctx context.Context) error {
		if err := first.Send(ctx, &kgo.Record{Value: []byte("zombie")}); err != nil {
			return err
		}
		return second.Transact(ctx, func(ctx context.Context) error {
			return second.Send(ctx, &kgo.Record{Value: []byte("fresh")})
		})
	})
	if !errors.Is(err, produce.ErrFenced) || !errors.Is(err, produce.ErrTxnAborted) {
		t.Fatalf("the first producer's commit: %v, want ErrFenced and ErrTxnAborted", err)
	}
	err = first.Transact(ctx, func(ctx context.Context) error {
		return first.Send(ctx, &kgo.Record{Value: []byte("zombie-again")})
	})
	if !errors.Is(err, produce.ErrFenced) {
		t.Fatalf("the fenced producer's next transaction: %v, want ErrFenced", err)
	}
	writeEnd(t, c, topic)
	if got := readUntilEnd(t, c, topic, produce.KgoConsumerOpts(produce.ExactlyOnce)...); !slices.Equal(got, []string{"fresh"}) {
		t.Fatalf("read_committed read %v, want only the second producer's [fresh]", got)
	}
}

// newSaramaTxn returns an ExactlyOnce SaramaSyncProducer with the given
// transactional id.
func newSaramaTxn(t *testing.T, c *kafkatest.Cluster, id string) *produce.SaramaSyncProducer {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Transaction.ID = id
	cfg.Producer.Transaction.Retry.Backoff = 50 * time.Millisecond
	sp, err := produce.NewSaramaSync(c.Bootstrap(), produce.ExactlyOnce, cfg)
	if err != nil {
		t.Fatalf("NewSaramaSync(ExactlyOnce): %v", err)
	}
	t.Cleanup(func() { sp.Close(context.Background()) })
	return sp
}

// readSaramaUntilEnd reads topic's partition 0 with a sarama consumer
// configured by ApplySaramaConsumer(ExactlyOnce) and returns the values
// before endMarker.
func readSaramaUntilEnd(t *testing.T, c *kafkatest.Cluster, topic string) []string {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	if err := produce.ApplySaramaConsumer(produce.ExactlyOnce, cfg); err != nil {
		t.Fatal(err)
	}
	cons, err := sarama.NewConsumer(c.Bootstrap(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	deadline := time.After(20 * time.Second)
	var got []string
	for {
		select {
		case m := <-pc.Messages():
			if string(m.Value) == endMarker {
				return got
			}
			got = append(got, string(m.Value))
		case err := <-pc.Errors():
			t.Logf("sarama consumer: %v", err)
		case <-deadline:
			t.Fatalf("read %v and no end marker before the deadline", got)
		}
	}
}

// TestExactlyOnceSaramaAbortedRecordsAreNeverReadCommitted is the sarama
// twin of the kgo test: committed, aborted, committed; a sarama consumer
// configured with ApplySaramaConsumer reads the committed records only,
// a read_uncommitted one all of them.
func TestExactlyOnceSaramaAbortedRecordsAreNeverReadCommitted(t *testing.T) {
	t.Parallel()
	const topic = "eos-sarama"
	c := txnCluster(t, topic)
	ctx := t.Context()
	sp := newSaramaTxn(t, c, "eos-sarama-1")
	send := func(values []string) error {
		for _, v := range values {
			if err := sp.Send(ctx, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := sp.Transact(ctx, func(context.Context) error { return send(seq("committed", 5)) }); err != nil {
		t.Fatalf("committed transaction: %v", err)
	}
	err := sp.Transact(ctx, func(context.Context) error {
		if err := send(seq("aborted", 5)); err != nil {
			return err
		}
		return errHandler
	})
	if !errors.Is(err, produce.ErrTxnAborted) || !errors.Is(err, errHandler) || errors.Is(err, produce.ErrFenced) {
		t.Fatalf("transaction whose fn failed: %v, want ErrTxnAborted and the handler's error", err)
	}
	if err := sp.Transact(ctx, func(context.Context) error { return send(seq("later", 3)) }); err != nil {
		t.Fatalf("transaction after the abort: %v", err)
	}
	writeEnd(t, c, topic)

	committed := readSaramaUntilEnd(t, c, topic)
	if want := append(seq("committed", 5), seq("later", 3)...); !slices.Equal(committed, want) {
		t.Errorf("read_committed read %v, want %v", committed, want)
	}
	uncommitted := readUntilEnd(t, c, topic, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if got := withPrefix(uncommitted, "aborted"); !slices.Equal(got, seq("aborted", 5)) {
		t.Errorf("read_uncommitted read %v of the aborted transaction, want all 5", got)
	}
}

// TestExactlyOnceSaramaSecondProducerWithTheSameIDFencesTheFirst: sarama
// initializes the producer id when the producer is created, so a second
// producer created while the first has a transaction open fences it; the
// first's commit fails with a TxnError matching ErrFenced.
func TestExactlyOnceSaramaSecondProducerWithTheSameIDFencesTheFirst(t *testing.T) {
	t.Parallel()
	const topic = "eos-sarama-fence"
	c := txnCluster(t, topic)
	ctx := t.Context()
	first := newSaramaTxn(t, c, "eos-sarama-fence")
	err := first.Transact(ctx, func(ctx context.Context) error {
		if err := first.Send(ctx, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("zombie")}); err != nil {
			return err
		}
		second := newSaramaTxn(t, c, "eos-sarama-fence")
		return second.Transact(ctx, func(ctx context.Context) error {
			return second.Send(ctx, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("fresh")})
		})
	})
	if !errors.Is(err, produce.ErrFenced) || !errors.Is(err, produce.ErrTxnAborted) {
		t.Fatalf("the first producer's commit: %v, want ErrFenced and ErrTxnAborted", err)
	}
	writeEnd(t, c, topic)
	if got := readSaramaUntilEnd(t, c, topic); !slices.Equal(got, []string{"fresh"}) {
		t.Fatalf("read_committed read %v, want only the second producer's [fresh]", got)
	}
}
