package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// txnAPIVersion is the version the raw transactional requests below speak for InitProducerId,
// AddOffsetsToTxn, EndTxn and TxnOffsetCommit: the bundled broker's highest (Kafka 4.4 also
// speaks later ones, with transaction version 2's epoch bump on every EndTxn), so that both
// targets are asked the same question. AddPartitionsToTxn goes as v3, a client's version (v4
// is the brokers' batched form).
const txnAPIVersion = 4

// offsetFetchVersion is the last OffsetFetch version that asks for one group, with
// RequireStable.
const offsetFetchVersion = 7

// rawTxn sends a transactional producer's requests one by one, as raw requests, for one
// transactional id, group and single-partition topic, so that a scenario can send what a
// client would not (a stale or future epoch, a request out of order).
type rawTxn struct {
	ctx                 context.Context
	t                   *testing.T
	cl                  *kgo.Client
	adm                 *kadm.Client
	txnID, group, topic string
}

// newRawTxn returns a rawTxn on c that sends Produce at produceVersion at most, for topic, or
// for a new 1-partition topic named after prefix when topic is "".
func newRawTxn(ctx context.Context, t *testing.T, c Cluster, prefix, topic string, produceVersion int16) *rawTxn {
	t.Helper()
	x := &rawTxn{ctx: ctx, t: t, adm: newAdmin(t, c),
		txnID: uniqueName(prefix + "-txn"), group: uniqueName(prefix + "-group"), topic: topic}
	if topic == "" {
		x.topic = uniqueName(prefix)
		if _, err := x.adm.CreateTopic(ctx, 1, -1, nil, x.topic); err != nil {
			t.Fatalf("create %s: %v", x.topic, err)
		}
	}
	versions := kversion.Stable()
	for _, k := range []kmsg.Key{kmsg.InitProducerID, kmsg.AddOffsetsToTxn, kmsg.EndTxn, kmsg.TxnOffsetCommit} {
		versions.SetMaxKeyVersion(int16(k), txnAPIVersion)
	}
	versions.SetMaxKeyVersion(int16(kmsg.AddPartitionsToTxn), 3)
	versions.SetMaxKeyVersion(int16(kmsg.OffsetFetch), offsetFetchVersion)
	versions.SetMaxKeyVersion(int16(kmsg.Produce), produceVersion)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MaxVersions(versions), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	x.cl = cl
	return x
}

// ask sends req (see askSettled) to the broker kgo routes it to.
func (x *rawTxn) ask(what string, req kmsg.Request, code func(kmsg.Response) int16) (kmsg.Response, int16) {
	x.t.Helper()
	return askSettled(x.ctx, x.t, x.cl.Request, what, req, code)
}

// initPID sends InitProducerId and returns the producer id and epoch.
func (x *rawTxn) initPID() (int64, int16) {
	x.t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(x.txnID), 60000
	req.ProducerID, req.ProducerEpoch = -1, -1
	resp, code := x.ask("InitProducerId", req, func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode })
	if code != 0 {
		x.t.Fatalf("InitProducerId: %s", codeName(code))
	}
	r := resp.(*kmsg.InitProducerIDResponse)
	return r.ProducerID, r.ProducerEpoch
}

// addOffsets sends AddOffsetsToTxn for the group and returns its code.
func (x *rawTxn) addOffsets(pid int64, epoch int16) int16 {
	x.t.Helper()
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = x.txnID, pid, epoch, x.group
	_, code := x.ask("AddOffsetsToTxn", req, func(r kmsg.Response) int16 { return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode })
	return code
}

// addPartition sends AddPartitionsToTxn for the topic's partition and fails the test unless it
// is accepted.
func (x *rawTxn) addPartition(pid int64, epoch int16) {
	x.t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = x.txnID, pid, epoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = x.topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	if _, code := x.ask("AddPartitionsToTxn", req, func(r kmsg.Response) int16 {
		return r.(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode
	}); code != 0 {
		x.t.Fatalf("AddPartitionsToTxn: %s", codeName(code))
	}
}

// commitOffset sends a TxnOffsetCommit of offset for the topic's partition and returns its
// code.
func (x *rawTxn) commitOffset(pid int64, epoch int16, offset int64) int16 {
	x.t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = x.txnID, x.group, pid, epoch
	req.Generation = -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = x.topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, offset, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	_, code := x.ask("TxnOffsetCommit", req, func(r kmsg.Response) int16 {
		if ts := r.(*kmsg.TxnOffsetCommitResponse).Topics; len(ts) == 1 && len(ts[0].Partitions) == 1 {
			return ts[0].Partitions[0].ErrorCode
		}
		x.t.Fatalf("TxnOffsetCommit answered %+v, want one partition", r)
		return 0
	})
	return code
}

// endTxn sends EndTxn and returns its code; when the transaction ends it waits until its
// markers are written (DescribeTransactions shows it complete): a batch sent before that still
// joins the transaction, on Kafka as here.
func (x *rawTxn) endTxn(pid int64, epoch int16, commit bool) int16 {
	x.t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = x.txnID, pid, epoch, commit
	_, code := x.ask("EndTxn", req, func(r kmsg.Response) int16 { return r.(*kmsg.EndTxnResponse).ErrorCode })
	if code != 0 {
		return code
	}
	want := map[bool]string{true: "CompleteCommit", false: "CompleteAbort"}[commit]
	for state := ""; state != want; time.Sleep(50 * time.Millisecond) {
		described, err := x.adm.DescribeTransactions(x.ctx, x.txnID)
		if x.ctx.Err() != nil {
			x.t.Fatalf("transaction %s: %s, want %s: %v", x.txnID, state, want, err)
		}
		if d, ok := described[x.txnID]; err == nil && ok && d.Err == nil {
			state = d.State
		}
	}
	return 0
}

// groupOffset returns the group's committed offset of the topic's partition read with
// RequireStable once no commit is pending, or -1.
func (x *rawTxn) groupOffset() int64 {
	x.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group, req.RequireStable = x.group, true
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = x.topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	resp, code := x.ask("OffsetFetch", req, func(r kmsg.Response) int16 {
		r1 := r.(*kmsg.OffsetFetchResponse)
		if r1.ErrorCode == 0 && len(r1.Topics) == 1 && len(r1.Topics[0].Partitions) == 1 {
			if c := r1.Topics[0].Partitions[0].ErrorCode; c == kerr.UnstableOffsetCommit.Code {
				return kerr.ConcurrentTransactions.Code // a commit is still pending: ask again
			}
		}
		return r1.ErrorCode
	})
	if code != 0 {
		x.t.Fatalf("OffsetFetch: %s", codeName(code))
	}
	ts := resp.(*kmsg.OffsetFetchResponse).Topics
	if len(ts) != 1 || len(ts[0].Partitions) != 1 {
		x.t.Fatalf("OffsetFetch answered %+v, want one partition", ts)
	}
	if p := ts[0].Partitions[0]; p.ErrorCode != 0 {
		x.t.Fatalf("OffsetFetch: %s", codeName(p.ErrorCode))
	}
	return ts[0].Partitions[0].Offset
}

// wantCode fails t unless got is want (nil: no error).
func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var w int16
	if want != nil {
		w = want.Code
	}
	if got != w {
		t.Errorf("%s: %s, want %s", what, codeName(got), codeName(w))
	}
}

// fencedProducerRefused pins what a transactional producer gets once a new instance with its
// transactional id has fenced it (a second InitProducerId, which aborts the open transaction):
// the coordinator answers its AddOffsetsToTxn and EndTxn with PRODUCER_FENCED, the group
// coordinator its TxnOffsetCommit with INVALID_PRODUCER_EPOCH, and the offsets it committed in
// the aborted transaction never become the group's.
func fencedProducerRefused(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	x := newRawTxn(ctx, t, c, "fenced", "", 9)
	zombie, epoch := x.initPID()
	wantCode(t, "AddOffsetsToTxn", x.addOffsets(zombie, epoch), nil)
	wantCode(t, "TxnOffsetCommit", x.commitOffset(zombie, epoch, 5), nil)
	pid, fresh := x.initPID()
	if pid != zombie || fresh <= epoch {
		t.Fatalf("the second InitProducerId gave producer %d epoch %d, want producer %d above epoch %d", pid, fresh, zombie, epoch)
	}
	wantCode(t, "the fenced producer's TxnOffsetCommit", x.commitOffset(zombie, epoch, 5), kerr.InvalidProducerEpoch)
	wantCode(t, "the fenced producer's AddOffsetsToTxn", x.addOffsets(zombie, epoch), kerr.ProducerFenced)
	wantCode(t, "the fenced producer's EndTxn", x.endTxn(zombie, epoch, true), kerr.ProducerFenced)
	if off := x.groupOffset(); off != -1 {
		t.Errorf("the group's offset: %d, want none: it was committed in the aborted transaction", off)
	}
}

// unverifiedOffsetsRefused pins KIP-890 part 1 for TxnOffsetCommit: the transaction coordinator
// is asked before a producer's offsets open its transaction on the group's __consumer_offsets
// partition. One sent before AddOffsetsToTxn gets TRANSACTION_ABORTABLE, one with a producer id
// the transactional id does not have INVALID_PRODUCER_ID_MAPPING, one with an epoch above the
// producer's INVALID_PRODUCER_EPOCH; none of them becomes the group's offset, and the
// transaction still commits the offset sent in it.
func unverifiedOffsetsRefused(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	x := newRawTxn(ctx, t, c, "unverified", "", 9)
	pid, epoch := x.initPID()
	wantCode(t, "TxnOffsetCommit before AddOffsetsToTxn", x.commitOffset(pid, epoch, 3), kerr.TransactionAbortable)
	wantCode(t, "TxnOffsetCommit of another producer id", x.commitOffset(pid+1_000_000, epoch, 3), kerr.InvalidProducerIDMapping)
	wantCode(t, "AddOffsetsToTxn", x.addOffsets(pid, epoch), nil)
	wantCode(t, "TxnOffsetCommit", x.commitOffset(pid, epoch, 5), nil)
	wantCode(t, "TxnOffsetCommit of a later epoch", x.commitOffset(pid, epoch+1, 9), kerr.InvalidProducerEpoch)
	wantCode(t, "EndTxn", x.endTxn(pid, epoch, true), nil)
	if off := x.groupOffset(); off != 5 {
		t.Errorf("the group's offset: %d, want 5, the one committed in the transaction", off)
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
	var topic string
	for _, tc := range []struct {
		produceVersion int16
		refusal        *kerr.Error
	}{{9, kerr.InvalidTxnState}, {11, kerr.TransactionAbortable}} {
		x := newRawTxn(ctx, t, c, "late", topic, tc.produceVersion) // both versions write one partition
		topic = x.topic
		pid, epoch := x.initPID()
		seq := int32(0)
		produce := func(what string) int16 {
			t.Helper()
			req := kmsg.NewPtrProduceRequest()
			req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr(x.txnID), -1, 10000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Records = txnBatch(pid, epoch, seq, fmt.Sprintf("v%d %s", tc.produceVersion, what))
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			_, code := askSettled(ctx, t, x.toLeader, "Produce", req, func(r kmsg.Response) int16 {
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
		refused := func(what string) {
			t.Helper()
			if code := produce(what); code != tc.refusal.Code {
				t.Errorf("Produce v%d %s: %s, want %s", tc.produceVersion, what, codeName(code), tc.refusal.Message)
			}
			x.settled(fmt.Sprintf("v%d %s", tc.produceVersion, what))
		}
		refused("before AddPartitionsToTxn")
		x.addPartition(pid, epoch)
		if code := produce("aborted"); code != 0 {
			t.Fatalf("Produce in the transaction: %s", codeName(code))
		}
		wantCode(t, "EndTxn (abort)", x.endTxn(pid, epoch, false), nil)
		refused("after the abort")
		x.addPartition(pid, epoch)
		if code := produce("committed"); code != 0 {
			t.Fatalf("Produce in the next transaction: %s", codeName(code))
		}
		wantCode(t, "EndTxn (commit)", x.endTxn(pid, epoch, true), nil)
		x.settled(fmt.Sprintf("v%d after the commit", tc.produceVersion))
	}
	// Nothing of the refused batches is in the log; only the committed records are visible.
	if got, want := readValues(ctx, t, c, topic, kgo.ReadUncommitted()), []string{"v9 aborted", "v9 committed", "v11 aborted", "v11 committed"}; !slices.Equal(got, want) {
		t.Errorf("the log holds %q, want %q", got, want)
	}
	if got, want := readValues(ctx, t, c, topic, kgo.ReadCommitted()), []string{"v9 committed", "v11 committed"}; !slices.Equal(got, want) {
		t.Errorf("read_committed reads %q, want %q", got, want)
	}
}

// toLeader sends a Produce to the leader of the topic's partition, as a client does; with no
// leader known it answers NOT_LEADER_FOR_PARTITION itself, for askSettled to ask again.
func (x *rawTxn) toLeader(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	md, err := x.adm.Metadata(ctx, x.topic)
	if err != nil {
		return nil, err
	}
	if p, ok := md.Topics[x.topic].Partitions[0]; ok && p.Leader >= 0 {
		return x.cl.Broker(int(p.Leader)).Request(ctx, req)
	}
	r := req.ResponseKind().(*kmsg.ProduceResponse)
	rt := kmsg.NewProduceResponseTopic()
	rp := kmsg.NewProduceResponseTopicPartition()
	rp.ErrorCode = kerr.NotLeaderForPartition.Code
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	return r, nil
}

// settled waits until the topic's partition has no transaction open: its last stable offset
// at its log end.
func (x *rawTxn) settled(what string) {
	x.t.Helper()
	var stable, end int64
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		so, err1 := x.adm.ListCommittedOffsets(x.ctx, x.topic)
		eo, err2 := x.adm.ListEndOffsets(x.ctx, x.topic)
		if errors.Join(err1, err2) != nil {
			continue
		}
		s, _ := so.Lookup(x.topic, 0)
		e, _ := eo.Lookup(x.topic, 0)
		if s.Err != nil || e.Err != nil {
			continue
		}
		if stable, end = s.Offset, e.Offset; stable == end {
			return
		}
	}
	x.t.Fatalf("%s: the last stable offset stays at %d below the log end %d: a transaction is left open", what, stable, end)
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
