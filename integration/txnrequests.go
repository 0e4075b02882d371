package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// txnAPIVersion is the version fencedProducerRefused speaks for InitProducerId,
// AddOffsetsToTxn, EndTxn and TxnOffsetCommit: the bundled broker's highest
// (Kafka 4.4 also speaks later ones, with transaction version 2's epoch bump
// on every EndTxn), so that both targets are asked the same question.
const txnAPIVersion = 4

// offsetFetchVersion is the last OffsetFetch version that asks for one
// group, with RequireStable.
const offsetFetchVersion = 7

// fencedProducerRefused pins, with raw requests, what a transactional
// producer gets once a new instance with its transactional id has fenced it
// (a second InitProducerId, which aborts the open transaction): the
// coordinator answers its AddOffsetsToTxn and EndTxn with PRODUCER_FENCED,
// the group coordinator its TxnOffsetCommit with INVALID_PRODUCER_EPOCH (the
// append to __consumer_offsets refuses the old epoch), and the offsets it
// committed in the aborted transaction never become the group's.
func fencedProducerRefused(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic, group, txnID := uniqueName("fenced"), uniqueName("fenced-group"), uniqueName("fenced-txn")
	if _, err := newAdmin(t, c).CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	versions := kversion.Stable()
	for _, k := range []kmsg.Key{kmsg.InitProducerID, kmsg.AddOffsetsToTxn, kmsg.EndTxn, kmsg.TxnOffsetCommit} {
		versions.SetMaxKeyVersion(int16(k), txnAPIVersion)
	}
	versions.SetMaxKeyVersion(int16(kmsg.OffsetFetch), offsetFetchVersion)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MaxVersions(versions))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	ask := func(what string, req kmsg.Request, code func(kmsg.Response) int16) (kmsg.Response, int16) {
		t.Helper()
		return askSettled(ctx, t, cl.Request, what, req, code)
	}
	initPID := func() (int64, int16) {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(txnID), 60000
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, code := ask("InitProducerId", req, func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode })
		if code != 0 {
			t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(code))
		}
		r := resp.(*kmsg.InitProducerIDResponse)
		return r.ProducerID, r.ProducerEpoch
	}
	addOffsets := func(pid int64, epoch int16) int16 {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txnID, pid, epoch, group
		_, code := ask("AddOffsetsToTxn", req, func(r kmsg.Response) int16 { return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode })
		return code
	}
	commitOffset := func(pid int64, epoch int16) int16 {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txnID, group, pid, epoch
		req.Generation = -1
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = 0, 5, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		_, code := ask("TxnOffsetCommit", req, func(r kmsg.Response) int16 {
			if ts := r.(*kmsg.TxnOffsetCommitResponse).Topics; len(ts) == 1 && len(ts[0].Partitions) == 1 {
				return ts[0].Partitions[0].ErrorCode
			}
			t.Fatalf("TxnOffsetCommit answered %+v, want one partition", r)
			return 0
		})
		return code
	}
	endTxn := func(pid int64, epoch int16) int16 {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = txnID, pid, epoch, true
		_, code := ask("EndTxn", req, func(r kmsg.Response) int16 { return r.(*kmsg.EndTxnResponse).ErrorCode })
		return code
	}
	want := func(what string, got int16, want *kerr.Error) {
		t.Helper()
		var w int16
		if want != nil {
			w = want.Code
		}
		if got != w {
			t.Errorf("%s: %s, want %s", what, codeName(got), codeName(w))
		}
	}

	zombie, epoch := initPID()
	want("AddOffsetsToTxn", addOffsets(zombie, epoch), nil)
	want("TxnOffsetCommit", commitOffset(zombie, epoch), nil)
	pid, fresh := initPID()
	if pid != zombie || fresh <= epoch {
		t.Fatalf("the second InitProducerId gave producer %d epoch %d, want producer %d above epoch %d", pid, fresh, zombie, epoch)
	}
	want("the fenced producer's TxnOffsetCommit", commitOffset(zombie, epoch), kerr.InvalidProducerEpoch)
	want("the fenced producer's AddOffsetsToTxn", addOffsets(zombie, epoch), kerr.ProducerFenced)
	want("the fenced producer's EndTxn", endTxn(zombie, epoch), kerr.ProducerFenced)

	// The offset of the aborted transaction is not the group's: a stable
	// fetch (once the abort is done) finds none.
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group, req.RequireStable = group, true
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	resp, code := ask("OffsetFetch", req, func(r kmsg.Response) int16 {
		r1 := r.(*kmsg.OffsetFetchResponse)
		if r1.ErrorCode == 0 && len(r1.Topics) == 1 && len(r1.Topics[0].Partitions) == 1 {
			if c := r1.Topics[0].Partitions[0].ErrorCode; c == kerr.UnstableOffsetCommit.Code {
				return kerr.ConcurrentTransactions.Code // the abort is still being written: ask again
			}
		}
		return r1.ErrorCode
	})
	if code != 0 {
		t.Fatalf("OffsetFetch: %s", codeName(code))
	}
	if ts := resp.(*kmsg.OffsetFetchResponse).Topics; len(ts) != 1 || len(ts[0].Partitions) != 1 {
		t.Fatalf("OffsetFetch answered %+v, want one partition", ts)
	} else if p := ts[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != -1 {
		t.Errorf("the group's offset: %d (%s), want none: it was committed in the aborted transaction", p.Offset, codeName(p.ErrorCode))
	}
}

// askSettled sends req with send until its error code (code) is not a transient one (a
// coordinator loading or moving, an abort in progress, a topic not known yet) and returns the
// response and that code.
func askSettled(ctx context.Context, t *testing.T, send func(context.Context, kmsg.Request) (kmsg.Response, error),
	what string, req kmsg.Request, code func(kmsg.Response) int16) (kmsg.Response, int16) {
	t.Helper()
	for {
		resp, err := send(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		switch c := code(resp); c {
		case kerr.CoordinatorLoadInProgress.Code, kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code,
			kerr.ConcurrentTransactions.Code, kerr.UnknownTopicOrPartition.Code, kerr.NotLeaderForPartition.Code,
			kerr.NotEnoughReplicas.Code:
			time.Sleep(100 * time.Millisecond)
		default:
			return resp, c
		}
	}
}

// codeName names a Kafka error code.
func codeName(code int16) string {
	if err := kerr.ErrorForCode(code); err != nil {
		return err.Error()
	}
	return "no error"
}

// lateProduceRefused pins KIP-890 part 1 with raw requests: a producer's transactional batch
// for a partition it has not added to its transaction, and one that arrives after its
// transaction was aborted (a request the network delayed past the abort), are refused —
// INVALID_TXN_STATE for Produce v9, TRANSACTION_ABORTABLE for v11 — and written nowhere: the
// partition's last stable offset stays at its end, and read_committed readers see only what
// the producer's next transaction committed.
func lateProduceRefused(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := uniqueName("late")
	adm := newAdmin(t, c)
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	for _, tc := range []struct {
		produceVersion int16
		refusal        *kerr.Error
	}{{9, kerr.InvalidTxnState}, {11, kerr.TransactionAbortable}} {
		versions := kversion.Stable()
		for _, k := range []kmsg.Key{kmsg.InitProducerID, kmsg.EndTxn} {
			versions.SetMaxKeyVersion(int16(k), txnAPIVersion)
		}
		versions.SetMaxKeyVersion(int16(kmsg.AddPartitionsToTxn), 3) // a client's version
		versions.SetMaxKeyVersion(int16(kmsg.Produce), tc.produceVersion)
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MaxVersions(versions), kgo.MetadataMinAge(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		txnID := uniqueName("late-txn")
		ask := func(what string, req kmsg.Request, code func(kmsg.Response) int16) (kmsg.Response, int16) {
			t.Helper()
			return askSettled(ctx, t, cl.Request, what, req, code)
		}
		init := kmsg.NewPtrInitProducerIDRequest()
		init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr(txnID), 60000
		init.ProducerID, init.ProducerEpoch = -1, -1
		resp, code := ask("InitProducerId", init, func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode })
		if code != 0 {
			t.Fatalf("InitProducerId: %s", codeName(code))
		}
		pid, epoch := resp.(*kmsg.InitProducerIDResponse).ProducerID, resp.(*kmsg.InitProducerIDResponse).ProducerEpoch
		seq := int32(0)
		// toLeader sends a Produce to the partition's leader, as a client does.
		toLeader := func(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
			md, err := adm.Metadata(ctx, topic)
			if err != nil {
				return nil, err
			}
			p, ok := md.Topics[topic].Partitions[0]
			if !ok || p.Leader < 0 {
				r := req.ResponseKind().(*kmsg.ProduceResponse)
				rt := kmsg.NewProduceResponseTopic()
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
				rt.Partitions = append(rt.Partitions, rp)
				r.Topics = append(r.Topics, rt)
				return r, nil
			}
			return cl.Broker(int(p.Leader)).Request(ctx, req)
		}
		produce := func(what string) int16 {
			t.Helper()
			req := kmsg.NewPtrProduceRequest()
			req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr(txnID), -1, 10000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Records = txnBatch(pid, epoch, seq, fmt.Sprintf("v%d %s", tc.produceVersion, what))
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			_, code := askSettled(ctx, t, toLeader, "Produce", req, func(r kmsg.Response) int16 {
				return r.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
			})
			if req.Version != tc.produceVersion {
				t.Fatalf("Produce went as v%d, want v%d", req.Version, tc.produceVersion)
			}
			if code == 0 {
				seq++
			}
			return code
		}
		addPartition := func() {
			t.Helper()
			req := kmsg.NewPtrAddPartitionsToTxnRequest()
			req.TransactionalID, req.ProducerID, req.ProducerEpoch = txnID, pid, epoch
			rt := kmsg.NewAddPartitionsToTxnRequestTopic()
			rt.Topic, rt.Partitions = topic, []int32{0}
			req.Topics = append(req.Topics, rt)
			if _, code := ask("AddPartitionsToTxn", req, func(r kmsg.Response) int16 {
				return r.(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode
			}); code != 0 {
				t.Fatalf("AddPartitionsToTxn: %s", codeName(code))
			}
		}
		// endTxn ends the transaction and waits until its markers are written: a batch sent
		// before that still joins the transaction, as on Kafka.
		endTxn := func(commit bool) {
			t.Helper()
			req := kmsg.NewPtrEndTxnRequest()
			req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = txnID, pid, epoch, commit
			if _, code := ask("EndTxn", req, func(r kmsg.Response) int16 { return r.(*kmsg.EndTxnResponse).ErrorCode }); code != 0 {
				t.Fatalf("EndTxn: %s", codeName(code))
			}
			want := map[bool]string{true: "CompleteCommit", false: "CompleteAbort"}[commit]
			for state := ""; state != want; time.Sleep(50 * time.Millisecond) {
				described, err := adm.DescribeTransactions(ctx, txnID)
				if ctx.Err() != nil {
					t.Fatalf("transaction %s: %s, want %s: %v", txnID, state, want, err)
				}
				if d, ok := described[txnID]; err == nil && ok && d.Err == nil {
					state = d.State
				}
			}
		}
		// settled waits until the markers are written (the last stable offset reaches the log
		// end) and returns the end.
		settled := func(what string) int64 {
			t.Helper()
			var stable, end int64
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				so, err1 := adm.ListCommittedOffsets(ctx, topic)
				eo, err2 := adm.ListEndOffsets(ctx, topic)
				if errors.Join(err1, err2) != nil {
					continue
				}
				s, _ := so.Lookup(topic, 0)
				e, _ := eo.Lookup(topic, 0)
				if s.Err != nil || e.Err != nil {
					continue
				}
				if stable, end = s.Offset, e.Offset; stable == end {
					return end
				}
			}
			t.Fatalf("v%d %s: the last stable offset stays at %d below the log end %d: a transaction is left open",
				tc.produceVersion, what, stable, end)
			return 0
		}
		refused := func(what string) {
			t.Helper()
			if code := produce(what); code != tc.refusal.Code {
				t.Errorf("Produce v%d %s: %s, want %s", tc.produceVersion, what, codeName(code), tc.refusal.Message)
			}
			settled(what)
		}
		refused("before AddPartitionsToTxn")
		addPartition()
		if code := produce("aborted"); code != 0 {
			t.Fatalf("Produce in the transaction: %s", codeName(code))
		}
		endTxn(false)
		refused("after the abort")
		addPartition()
		if code := produce("committed"); code != 0 {
			t.Fatalf("Produce in the next transaction: %s", codeName(code))
		}
		endTxn(true)
		settled("after the commit")
	}
	// Nothing of the refused batches is in the log; only the committed records are visible.
	if got, want := readValues(ctx, t, c, topic, kgo.ReadUncommitted()), []string{"v9 aborted", "v9 committed", "v11 aborted", "v11 committed"}; !slices.Equal(got, want) {
		t.Errorf("the log holds %q, want %q", got, want)
	}
	if got, want := readValues(ctx, t, c, topic, kgo.ReadCommitted()), []string{"v9 committed", "v11 committed"}; !slices.Equal(got, want) {
		t.Errorf("read_committed reads %q, want %q", got, want)
	}
}

// txnBatch is one transactional record batch of producer pid at epoch with sequence seq.
func txnBatch(pid int64, epoch int16, seq int32, value string) []byte {
	return records.BuildTxn([]records.Record{{Value: []byte(value)}}, time.Now().UnixMilli(), records.Producer{ID: pid, Epoch: epoch, Sequence: seq})
}

// readValues reads topic's partition 0 at isolation up to its log end (whose last record is a
// transaction marker) and returns the values of its data records in order.
func readValues(ctx context.Context, t *testing.T, c Cluster, topic string, isolation kgo.IsolationLevel) []string {
	t.Helper()
	ends, err := newAdmin(t, c).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	end, _ := ends.Lookup(topic, 0)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.FetchIsolationLevel(isolation),
		kgo.KeepControlRecords(), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var values []string
	for next := int64(0); next < end.Offset; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: reached %d of %d: %v", topic, next, end.Offset, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= next {
				next = r.Offset + 1
			}
			if !r.Attrs.IsControl() {
				values = append(values, string(r.Value))
			}
		})
	}
	return values
}
