package integration

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
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

	// ask sends req until its error code is not a transient one (a
	// coordinator loading or moving, an abort in progress) and returns it.
	ask := func(what string, req kmsg.Request, code func(kmsg.Response) int16) (kmsg.Response, int16) {
		t.Helper()
		for {
			resp, err := cl.Request(ctx, req)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			switch c := code(resp); c {
			case kerr.CoordinatorLoadInProgress.Code, kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code,
				kerr.ConcurrentTransactions.Code, kerr.UnknownTopicOrPartition.Code:
				time.Sleep(100 * time.Millisecond)
			default:
				return resp, c
			}
		}
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

// codeName names a Kafka error code.
func codeName(code int16) string {
	if err := kerr.ErrorForCode(code); err != nil {
		return err.Error()
	}
	return "no error"
}
