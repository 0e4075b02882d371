package brokertest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// txnProduce runs one transaction of values on cl and ends it with commit.
func txnProduce(ctx context.Context, t *testing.T, cl *kgo.Client, commit kgo.TransactionEndTry, values ...string) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	if err := cl.EndTransaction(ctx, commit); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}

// readIsolated consumes topic from the start with the isolation level until want records arrived,
// and returns their values sorted.
func readIsolated(ctx context.Context, t *testing.T, c *kafkatest.Cluster, topic string, level kgo.IsolationLevel, want int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records before the deadline: %v", len(got), want, got)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	slices.Sort(got)
	return got
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return out
}

// TestFranzGoTransactionsCommitAndAbortAsReadCommittedSees runs franz-go's transactional producer
// against the bundled cluster: a committed, an aborted and another committed transaction over two
// partitions. A read_committed consumer sees exactly the committed records, a read_uncommitted one
// sees all of them.
func TestFranzGoTransactionsCommitAndAbortAsReadCommittedSees(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "txn-out"
	if err := c.CreateTopic(ctx, topic, 2, 3, nil); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.TransactionalID("copier-1"),
		kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	txnProduce(ctx, t, prod, kgo.TryCommit, values("committed", 10)...)
	txnProduce(ctx, t, prod, kgo.TryAbort, values("aborted", 10)...)
	txnProduce(ctx, t, prod, kgo.TryCommit, values("later", 6)...)

	want := append(values("committed", 10), values("later", 6)...)
	slices.Sort(want)
	if got := readIsolated(ctx, t, c, topic, kgo.ReadCommitted(), len(want)); !slices.Equal(got, want) {
		t.Fatalf("read_committed read\n  %v\nwant\n  %v", got, want)
	}
	all := append(slices.Clone(want), values("aborted", 10)...)
	slices.Sort(all)
	if got := readIsolated(ctx, t, c, topic, kgo.ReadUncommitted(), len(all)); !slices.Equal(got, all) {
		t.Fatalf("read_uncommitted read\n  %v\nwant\n  %v", got, all)
	}
}

// TestFranzGoZombieTransactionalProducerIsFenced starts a second producer with the same
// transactional id while the first has a transaction open: the open transaction is aborted, the
// first producer's commit fails with PRODUCER_FENCED, and read_committed never shows its record.
func TestFranzGoZombieTransactionalProducerIsFenced(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "txn-zombie"
	if err := c.CreateTopic(ctx, topic, 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	newProducer := func() *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.TransactionalID("copier-z"), kgo.DefaultProduceTopic(topic))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	zombie := newProducer()
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fresh := newProducer()
	txnProduce(ctx, t, fresh, kgo.TryCommit, "fresh")
	err := zombie.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("the zombie's commit: %v, want PRODUCER_FENCED", err)
	}
	if got := readIsolated(ctx, t, c, topic, kgo.ReadCommitted(), 1); !slices.Equal(got, []string{"fresh"}) || strings.Contains(strings.Join(got, ","), "zombie") {
		t.Fatalf("read_committed read %v, want only the fresh producer's record", got)
	}
}

// saramaTxnProducer is a sarama transactional SyncProducer (Kafka 3.6 protocol) with the given
// transactional id, closed when the test ends.
func saramaTxnProducer(t *testing.T, c *kafkatest.Cluster, id string) sarama.SyncProducer {
	t.Helper()
	cfg := saramaConfig(sarama.V3_6_0_0)
	cfg.Producer.Transaction.ID = id
	cfg.Producer.Transaction.Retry.Backoff = 50 * time.Millisecond
	cfg.Producer.Transaction.Retry.Max = 100
	prod, err := sarama.NewSyncProducer(c.Bootstrap(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close() })
	return prod
}

// TestSaramaTransactionalProducerCommitsAndAborts runs sarama's transactional producer: a
// committed and an aborted transaction; a read_committed franz-go consumer sees the committed
// records only.
func TestSaramaTransactionalProducerCommitsAndAborts(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "txn-sarama"
	if err := c.CreateTopic(ctx, topic, 2, 1, nil); err != nil {
		t.Fatal(err)
	}
	prod := saramaTxnProducer(t, c, "sarama-copier")
	run := func(prefix string, commit bool) {
		if err := prod.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values(prefix, 5) {
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatalf("send %s: %v", v, err)
			}
		}
		end := prod.CommitTxn
		if !commit {
			end = prod.AbortTxn
		}
		if err := end(); err != nil {
			t.Fatalf("end %s (commit %v): %v", prefix, commit, err)
		}
	}
	run("committed", true)
	run("aborted", false)
	run("later", true)
	want := append(values("committed", 5), values("later", 5)...)
	if got := readIsolated(ctx, t, c, topic, kgo.ReadCommitted(), len(want)); !slices.Equal(got, want) {
		t.Fatalf("read_committed read %v, want %v", got, want)
	}
}

// TestKadmDescribesAndListsTransactions inspects a transaction with franz-go's admin client (as
// kafka-transactions.sh does): Ongoing with its partition while open, then CompleteCommit.
func TestKadmDescribesAndListsTransactions(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "txn-admin"
	if err := c.CreateTopic(ctx, topic, 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.TransactionalID("admin-txn"), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := newAdmin(t, c)
	ds, err := adm.DescribeTransactions(ctx, "admin-txn")
	if err != nil {
		t.Fatal(err)
	}
	d := ds["admin-txn"]
	if d.Err != nil || d.State != "Ongoing" || d.ProducerEpoch != 0 || len(d.Topics[topic]) != 1 {
		t.Fatalf("describe the open transaction: %+v", d)
	}
	ls, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := ls["admin-txn"]; !ok || l.ProducerID != d.ProducerID || len(ls) != 1 {
		t.Fatalf("list Ongoing: %+v", ls)
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The commit completes once its markers are written, after EndTxn has been answered.
	for {
		ds, err := adm.DescribeTransactions(ctx, "admin-txn")
		if err != nil {
			t.Fatal(err)
		}
		if s := ds["admin-txn"].State; s == "CompleteCommit" {
			break
		} else if s != "PrepareCommit" || ctx.Err() != nil {
			t.Fatalf("after the commit: state %q, want PrepareCommit then CompleteCommit", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
