package brokertest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// TestDescribeProducersShowsSequencesAndOpenTransactions asks a partition's leader, through
// kadm's DescribeProducers, for the producers it keeps state for: an idempotent producer with its
// last sequence and no transaction, and a transactional one whose open transaction starts at its
// first record until the commit closes it. A follower answers NOT_LEADER_OR_FOLLOWER, as Kafka's.
func TestDescribeProducersShowsSequencesAndOpenTransactions(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "described-producers"
	if err := c.CreateTopic(ctx, topic, 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	idem := testkit.Client(t, c.Bootstrap(), kgo.DefaultProduceTopic(topic))
	for _, v := range []string{"a", "b", "c"} {
		if err := idem.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	txn := testkit.Client(t, c.Bootstrap(), kgo.DefaultProduceTopic(topic), kgo.TransactionalID("described"))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := testkit.Admin(t, c.Bootstrap())
	describe := func() map[int64]kadm.DescribedProducer {
		t.Helper()
		ds, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}}})
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]kadm.DescribedProducer{}
		for _, p := range ds.SortedPartitions() {
			if p.Err != nil {
				t.Fatalf("partition %d: %v", p.Partition, p.Err)
			}
			for _, ap := range p.ActiveProducers {
				out[ap.ProducerID] = ap
			}
		}
		return out
	}
	idemID, _, _ := idem.ProducerID(ctx)
	txnID, _, _ := txn.ProducerID(ctx)
	got := describe()
	if len(got) != 2 {
		t.Fatalf("described %d producers (%+v), want the idempotent and the transactional one", len(got), got)
	}
	if p := got[idemID]; p.LastSequence != 2 || p.CurrentTxnStartOffset != -1 || p.LastTimestamp <= 0 {
		t.Errorf("idempotent producer %d: %+v, want last sequence 2, no transaction, a timestamp", idemID, p)
	}
	if p := got[txnID]; p.LastSequence != 0 || p.CurrentTxnStartOffset != 3 {
		t.Errorf("transactional producer %d: %+v, want last sequence 0 and its transaction open from offset 3", txnID, p)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// EndTxn answers once the commit is prepared; the coordinator writes the marker after it.
	var p kadm.DescribedProducer
	testkit.WaitFor(t, 10*time.Second, "the commit marker", func() bool {
		p = describe()[txnID]
		return p.CurrentTxnStartOffset == -1
	}, func() string { return fmt.Sprintf("transactional producer %d: %+v", txnID, p) })
	if p.CoordinatorEpoch < 0 {
		t.Errorf("after the commit, transactional producer %d: %+v, want the coordinator epoch of its marker", txnID, p)
	}

	info, err := c.Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	var follower int32 = -1
	for _, id := range info.Replicas {
		if id != info.Leader {
			follower = id
		}
	}
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, idem.Broker(int(follower)))
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; !errors.Is(kerr.ErrorForCode(code), kerr.NotLeaderForPartition) {
		t.Fatalf("follower %d answered %v, want NOT_LEADER_OR_FOLLOWER", follower, kerr.ErrorForCode(code))
	}
}
