package brokertest_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
	"github.com/kafkaguard/kafkaguard/internal/broker/txn"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// rawTxnProducer drives one transactional producer with raw requests, so that the test chooses
// the broker of each: the coordinator it names, the partition's leader for its batches.
type rawTxnProducer struct {
	t      *testing.T
	cl     *kgo.Client
	id     string
	pid    int64
	epoch  int16
	seq    int32
	topic  string
	part   int32
	leader int32
}

// do sends a request to broker until it succeeds, again while its error code is retriable (the
// coordinator loading, moving or busy with markers); another error code fails the test.
func (p *rawTxnProducer) do(ctx context.Context, broker int32, what string, send func(context.Context, *kgo.Broker) (int16, error)) {
	p.t.Helper()
	for {
		code, err := send(ctx, p.cl.Broker(int(broker)))
		if err == nil && code == 0 {
			return
		}
		if err == nil && !kerr.IsRetriable(kerr.ErrorForCode(code)) {
			p.t.Fatalf("%s on broker %d: %v", what, broker, kerr.ErrorForCode(code))
		}
		if ctx.Err() != nil {
			p.t.Fatalf("%s on broker %d: code %v, err %v, before the deadline", what, broker, kerr.ErrorForCode(code), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// init gets the producer id and epoch of the transactional id from coordinator.
func (p *rawTxnProducer) init(ctx context.Context, coordinator int32) {
	p.t.Helper()
	p.do(ctx, coordinator, "InitProducerID", func(ctx context.Context, b *kgo.Broker) (int16, error) {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = &p.id, 60000
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, err := req.RequestWith(ctx, b)
		if err != nil {
			return 0, err
		}
		p.pid, p.epoch = resp.ProducerID, resp.ProducerEpoch
		return resp.ErrorCode, nil
	})
}

// begin adds the partition to a new transaction at coordinator and writes values to it.
func (p *rawTxnProducer) begin(ctx context.Context, coordinator int32, values ...string) {
	p.t.Helper()
	p.do(ctx, coordinator, "AddPartitionsToTxn", func(ctx context.Context, b *kgo.Broker) (int16, error) {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = p.id, p.pid, p.epoch
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = p.topic, []int32{p.part}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, b)
		if err != nil {
			return 0, err
		}
		return resp.Topics[0].Partitions[0].ErrorCode, nil
	})
	recs := make([]records.Record, len(values))
	for i, v := range values {
		recs[i] = records.Record{Value: []byte(v)}
	}
	p.produce(ctx, records.BuildTxn(recs, time.Now().UnixMilli(), records.Producer{ID: p.pid, Epoch: p.epoch, Sequence: p.seq}), true)
	p.seq += int32(len(values))
}

// produce writes batch, transactional or not, to the partition's leader with acks=all.
func (p *rawTxnProducer) produce(ctx context.Context, batch []byte, transactional bool) {
	p.t.Helper()
	p.do(ctx, p.leader, "Produce", func(ctx context.Context, b *kgo.Broker) (int16, error) {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10000
		if transactional {
			req.TransactionID = &p.id
		}
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = p.topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = p.part, batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, b)
		if err != nil {
			return 0, err
		}
		return resp.Topics[0].Partitions[0].ErrorCode, nil
	})
}

// end sends EndTxn to coordinator.
func (p *rawTxnProducer) end(ctx context.Context, coordinator int32, commit bool) {
	p.t.Helper()
	p.do(ctx, coordinator, "EndTxn", func(ctx context.Context, b *kgo.Broker) (int16, error) {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = p.id, p.pid, p.epoch, commit
		resp, err := req.RequestWith(ctx, b)
		if err != nil {
			return 0, err
		}
		return resp.ErrorCode, nil
	})
}

// txnCoordinator asks broker for the coordinator of transactional id.
func txnCoordinator(ctx context.Context, cl *kgo.Client, broker int32, id string) (int32, error) {
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKey, req.CoordinatorKeys = 1, id, []string{id}
	resp, err := req.RequestWith(ctx, cl.Broker(int(broker)))
	switch {
	case err != nil:
		return -1, err
	case len(resp.Coordinators) == 1:
		return resp.Coordinators[0].NodeID, kerr.ErrorForCode(resp.Coordinators[0].ErrorCode)
	}
	return resp.NodeID, kerr.ErrorForCode(resp.ErrorCode)
}

// txnState is the state DescribeTransactions on broker gives transactional id ("" on error).
func txnState(ctx context.Context, cl *kgo.Client, broker int32, id string) string {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	resp, err := req.RequestWith(ctx, cl.Broker(int(broker)))
	if err != nil || len(resp.TransactionStates) != 1 || resp.TransactionStates[0].ErrorCode != 0 {
		return ""
	}
	return resp.TransactionStates[0].State
}

// producerOn is what the leader of topic-partition reports of producer pid (DescribeProducers).
func producerOn(ctx context.Context, cl *kgo.Client, leader int32, topic string, partition int32, pid int64) (kmsg.DescribeProducersResponseTopicPartitionActiveProducer, bool) {
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{partition}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
	if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return kmsg.DescribeProducersResponseTopicPartitionActiveProducer{}, false
	}
	for _, ap := range resp.Topics[0].Partitions[0].ActiveProducers {
		if ap.ProducerID == pid {
			return ap, true
		}
	}
	return kmsg.DescribeProducersResponseTopicPartitionActiveProducer{}, false
}

// TestADeposedTransactionCoordinatorsLateMarkerIsFenced re-creates the case Kafka's coordinator
// epochs exist for. A transaction is in PrepareCommit on coordinator C1, whose markers cannot
// reach the partition's leader L; C1 is then cut from the controller and deposed, and the new
// coordinator C2 (the next leader of the __transaction_state partition, a newer leader epoch)
// completes the commit. The producer, with the same producer epoch (the classic flow keeps it
// between transactions), writes a second transaction to the partition through C2. Then C1's link
// to L heals and its retried COMMIT marker of the first transaction arrives late: L fences it
// with TRANSACTION_COORDINATOR_FENCED (else it would commit the second transaction's records) and
// C1 stops. The second transaction is aborted; read_committed sees the first transaction's
// records exactly once and none of the second's, and DescribeProducers reports C2's epoch.
func TestADeposedTransactionCoordinatorsLateMarkerIsFenced(t *testing.T) {
	t.Parallel()
	logs := &testkit.LockedBuffer{}
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.SessionTimeout(time.Second),
		kafkatest.BrokerConfig("min.insync.replicas", "2"),
		kafkatest.Logger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic, id = "late-marker", "late-marker-txn"
	if err := c.CreateTopic(ctx, topic, 3, 3, nil); err != nil {
		t.Fatal(err)
	}
	// Produce v13 names topics by id; these raw requests name them. AddPartitionsToTxn v4 is
	// the brokers' batched form; a client speaks v3 at most.
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(0, 12)
	versions.SetMaxKeyVersion(24, 3)
	cl := testkit.Client(t, c.Bootstrap(), kgo.MaxVersions(versions))

	// C1 is the coordinator of id: the leader of its __transaction_state partition, which the
	// first FindCoordinator creates.
	adm := kadm.NewClient(cl)
	var (
		c1, stateP int32 = -1, -1
		stateInfo  kafkatest.PartitionInfo
	)
	testkit.WaitFor(t, 30*time.Second, "a transaction coordinator", func() bool {
		var err error
		if c1, err = txnCoordinator(ctx, cl, 0, id); err != nil || c1 < 0 {
			return false
		}
		tds, err := adm.ListTopicsWithInternal(ctx, meta.TransactionStateTopic)
		if err != nil || len(tds[meta.TransactionStateTopic].Partitions) == 0 {
			return false
		}
		stateP = txn.PartitionFor(id, int32(len(tds[meta.TransactionStateTopic].Partitions)))
		stateInfo, err = c.Partition(meta.TransactionStateTopic, stateP)
		return err == nil && stateInfo.Leader == c1
	}, func() string {
		return fmt.Sprintf("coordinator %d, %s-%d %+v", c1, meta.TransactionStateTopic, stateP, stateInfo)
	})
	p := &rawTxnProducer{t: t, cl: cl, id: id, topic: topic, part: -1}
	for i := range int32(3) {
		info, err := c.Partition(topic, i)
		if err != nil {
			t.Fatal(err)
		}
		if info.Leader != c1 {
			p.part, p.leader = i, info.Leader
			break
		}
	}
	if p.part < 0 {
		t.Fatalf("broker %d leads every partition of %s", c1, topic)
	}
	epoch1 := stateInfo.LeaderEpoch

	p.init(ctx, c1)
	p.begin(ctx, c1, "first-0", "first-1")
	// C1's markers cannot reach L: the commit stays prepared.
	if err := c.CutLink(c1, p.leader); err != nil {
		t.Fatal(err)
	}
	p.end(ctx, c1, true)
	if st := txnState(ctx, cl, c1, id); st != "PrepareCommit" {
		t.Fatalf("on C1 (broker %d), the transaction is %q, want PrepareCommit", c1, st)
	}

	// C1 loses the controller; it is fenced and the state partition moves to C2, which completes
	// the commit with a newer coordinator epoch. C1, unaware, keeps retrying its markers.
	if err := c.CutController(c1); err != nil {
		t.Fatal(err)
	}
	var c2 int32 = -1
	testkit.WaitFor(t, 30*time.Second, "a new transaction coordinator", func() bool {
		var err error
		c2, err = txnCoordinator(ctx, cl, p.leader, id)
		return err == nil && c2 >= 0 && c2 != c1
	})
	testkit.WaitFor(t, 30*time.Second, "the new coordinator to complete the commit", func() bool {
		return txnState(ctx, cl, c2, id) == "CompleteCommit"
	})
	stateInfo, err := c.Partition(meta.TransactionStateTopic, stateP)
	if err != nil || stateInfo.Leader != c2 || stateInfo.LeaderEpoch <= epoch1 {
		t.Fatalf("%s-%d: %+v, %v; want led by %d in an epoch above %d", meta.TransactionStateTopic, stateP, stateInfo, err, c2, epoch1)
	}
	epoch2 := stateInfo.LeaderEpoch
	if ap, ok := producerOn(ctx, cl, p.leader, topic, p.part, p.pid); !ok || ap.CoordinatorEpoch != epoch2 || ap.CurrentTxnStartOffset != -1 {
		t.Fatalf("DescribeProducers on %d after the commit: %+v (found %v), want coordinator epoch %d and no open transaction", p.leader, ap, ok, epoch2)
	}

	// The next transaction, same producer epoch, through C2.
	p.begin(ctx, c2, "second-0", "second-1")
	// C1's late marker reaches L.
	if err := c.HealLink(c1, p.leader); err != nil {
		t.Fatal(err)
	}
	stopped := func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "no longer writing its markers") && strings.Contains(line, fmt.Sprintf(" broker=%d ", c1)) {
				return true
			}
		}
		return false
	}
	lateWritten := func() bool {
		ap, ok := producerOn(ctx, cl, p.leader, topic, p.part, p.pid)
		return ok && ap.CoordinatorEpoch == epoch1
	}
	testkit.WaitFor(t, 30*time.Second, "C1's late marker to reach L", func() bool { return stopped() || lateWritten() })

	p.end(ctx, c2, false)
	testkit.WaitFor(t, 30*time.Second, "the new coordinator to complete the abort", func() bool {
		return txnState(ctx, cl, c2, id) == "CompleteAbort"
	})
	p.produce(ctx, records.Build([]records.Record{{Value: []byte("end")}}, time.Now().UnixMilli(), records.NoProducer), false)

	reader := testkit.Client(t, c.Bootstrap(), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p.part: kgo.NewOffset().AtStart()}}))
	var got []string
	for !slices.Contains(got, "end") {
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_committed read %v before the deadline, without the final record", got)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if want := []string{"first-0", "first-1", "end"}; !slices.Equal(got, want) {
		t.Errorf("read_committed read %v, want %v: the deposed coordinator's late marker committed the aborted transaction", got, want)
	}
	if !stopped() {
		t.Errorf("the late marker of coordinator %d (epoch %d) was written, not fenced by the marker of epoch %d", c1, epoch1, epoch2)
	}
	if ap, ok := producerOn(ctx, cl, p.leader, topic, p.part, p.pid); !ok || ap.CoordinatorEpoch != epoch2 {
		t.Errorf("DescribeProducers on %d at the end: %+v (found %v), want coordinator epoch %d", p.leader, ap, ok, epoch2)
	}
}
