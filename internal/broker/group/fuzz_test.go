package group

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzLoad replays arbitrary records: Load must skip what it cannot decode
// and never panic, and the coordinator must serve afterwards.
func FuzzLoad(f *testing.F) {
	g := newGroupValue("g", time.Now())
	g.add(&member{id: "m", protocolType: "consumer", protocols: []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: consumerMeta("t")}}})
	g.protocol, g.generation = "range", 3
	gm := groupMetadataRecord(g, nil)
	oc := offsetCommitRecord("g", "t", 0, committed{offset: 1, leaderEpoch: -1, expireTimestamp: -1})
	f.Add(gm.Key, gm.Value, oc.Key, oc.Value, byte(0))
	f.Add(gm.Key, []byte(nil), oc.Key, []byte{0, 1, 2}, byte(0))
	f.Add([]byte{0, 2, 0, 1, 'g'}, []byte{0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, []byte{0, 1}, []byte{}, byte(0))
	f.Add(oc.Key, oc.Value, []byte(nil), []byte(nil), byte(1|2|4)) // a transactional commit, then its COMMIT marker
	f.Add(oc.Key, oc.Value, oc.Key, []byte(nil), byte(1))          // a pending commit, then a tombstone
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 []byte, txnBits byte) {
		c := NewCoordinator(testConfig(), nil)
		defer c.Close()
		// txnBits: 1, the first record is producer 7's transactional commit; 2, the second is
		// producer 7's marker, 4 a COMMIT (else an ABORT).
		r1, r2 := Record{Key: k1, Value: v1}, Record{Key: k2, Value: v2}
		if txnBits&1 != 0 {
			r1.Txn = &Txn{ProducerID: 7}
		}
		if txnBits&2 != 0 {
			r2.Txn = &Txn{ProducerID: 7, Marker: true, Commit: txnBits&4 != 0}
		}
		err := c.Load(context.Background(), 0, &memStore{}, func(yield func(Record) bool) error {
			_ = yield(r1) && yield(r2)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		for _, id := range []string{"g", ""} {
			c.DescribeGroups(ctx, &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{id}})
			c.Heartbeat(ctx, &kmsg.HeartbeatRequest{Version: 4, Group: id, MemberID: "m", Generation: 3})
		}
		c.ListGroups(ctx, &kmsg.ListGroupsRequest{Version: 5})
		c.OffsetFetch(ctx, &kmsg.OffsetFetchRequest{Version: 8, Groups: []kmsg.OffsetFetchRequestGroup{{Group: "g"}}, RequireStable: true})
		if err := c.CompleteTxn(ctx, 0, 7, 0, txnBits&8 != 0, 0); err != nil {
			t.Fatalf("CompleteTxn after the load: %v", err)
		}
	})
}

// FuzzHandlers decodes arbitrary bytes as a request of one of the served
// APIs, at an arbitrary version, and hands what decodes to its handler.
func FuzzHandlers(f *testing.F) {
	for _, r := range []kmsg.Request{
		&kmsg.JoinGroupRequest{Version: 9, Group: "g", SessionTimeoutMillis: 20, ProtocolType: "consumer",
			Protocols: []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: consumerMeta("t")}}},
		&kmsg.SyncGroupRequest{Version: 5, Group: "g", MemberID: "m", GroupAssignment: []kmsg.SyncGroupRequestGroupAssignment{{MemberID: "m"}}},
		&kmsg.OffsetCommitRequest{Version: 9, Group: "g", Generation: -1, Topics: []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Offset: 3}}}}},
		&kmsg.OffsetFetchRequest{Version: 9, Groups: []kmsg.OffsetFetchRequestGroup{{Group: "g"}}},
		&kmsg.LeaveGroupRequest{Version: 5, Group: "g", Members: []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}},
		&kmsg.HeartbeatRequest{Version: 4, Group: "g", MemberID: "m", Generation: 1},
		&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"g"}},
		&kmsg.ListGroupsRequest{Version: 4},
		&kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"none"}},
		&kmsg.OffsetDeleteRequest{Group: "g", Topics: []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}},
		&kmsg.TxnOffsetCommitRequest{Version: 4, TransactionalID: "tx", Group: "g", ProducerID: 7, Generation: -1,
			Topics: []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Offset: 3, LeaderEpoch: -1}}}}},
	} {
		f.Add(byte(r.Key()), byte(r.GetVersion()), r.AppendTo(nil))
	}
	c := NewCoordinator(testConfig(), nil)
	f.Cleanup(c.Close)
	if err := c.Load(context.Background(), 0, &memStore{}, nil); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key, version byte, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
		defer cancel()
		keys := []int16{keyOffsetCommit, keyOffsetFetch, keyJoinGroup, keyHeartbeat, keyLeaveGroup,
			keySyncGroup, keyDescribeGroups, keyListGroups, keyDeleteGroups, keyOffsetDelete, keyTxnOffsetCommit}
		k := keys[int(key)%len(keys)]
		if slices.Contains(keys, int16(key)) {
			k = int16(key) // the seeds name their API by its key
		}
		req := kmsg.RequestForKey(k)
		req.SetVersion(int16(version % 16))
		if req.ReadFrom(body) != nil {
			return
		}
		var resp kmsg.Response
		switch r := req.(type) {
		case *kmsg.JoinGroupRequest:
			resp = c.JoinGroup(ctx, r)
		case *kmsg.SyncGroupRequest:
			resp = c.SyncGroup(ctx, r)
		case *kmsg.HeartbeatRequest:
			resp = c.Heartbeat(ctx, r)
		case *kmsg.LeaveGroupRequest:
			resp = c.LeaveGroup(ctx, r)
		case *kmsg.OffsetCommitRequest:
			resp = c.OffsetCommit(ctx, r)
		case *kmsg.OffsetFetchRequest:
			resp = c.OffsetFetch(ctx, r)
		case *kmsg.DescribeGroupsRequest:
			resp = c.DescribeGroups(ctx, r)
		case *kmsg.ListGroupsRequest:
			resp = c.ListGroups(ctx, r)
		case *kmsg.DeleteGroupsRequest:
			resp = c.DeleteGroups(ctx, r)
		case *kmsg.OffsetDeleteRequest:
			resp = c.OffsetDelete(ctx, r)
		case *kmsg.TxnOffsetCommitRequest:
			resp = c.TxnOffsetCommit(ctx, r)
		}
		if resp.GetVersion() != req.GetVersion() {
			t.Fatalf("%s: response version %d for request version %d", kmsg.NameForKey(k), resp.GetVersion(), req.GetVersion())
		}
		// The response must be served whole: it encodes, decodes back to the same bytes at its
		// version, and every error code in it is one Kafka defines.
		enc := resp.AppendTo(nil)
		again := req.ResponseKind()
		again.SetVersion(resp.GetVersion())
		if err := again.ReadFrom(enc); err != nil {
			t.Fatalf("%s v%d: the response does not decode: %v", kmsg.NameForKey(k), resp.GetVersion(), err)
		}
		if !bytes.Equal(again.AppendTo(nil), enc) {
			t.Fatalf("%s v%d: the response does not survive a decode and re-encode", kmsg.NameForKey(k), resp.GetVersion())
		}
		for _, code := range errorCodes(reflect.ValueOf(resp)) {
			if code != 0 && !isKafkaCode(code) {
				t.Fatalf("%s v%d: error code %d is not a Kafka error code", kmsg.NameForKey(k), resp.GetVersion(), code)
			}
		}
	})
}

// errorCodes collects every int16 field named ErrorCode in v, however deep.
func errorCodes(v reflect.Value) []int16 {
	var out []int16
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			out = append(out, errorCodes(v.Elem())...)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
				out = append(out, int16(v.Field(i).Int()))
			} else if f.IsExported() {
				out = append(out, errorCodes(v.Field(i))...)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			out = append(out, errorCodes(v.Index(i))...)
		}
	}
	return out
}

// isKafkaCode reports whether code is an error code Kafka defines.
func isKafkaCode(code int16) bool {
	var ke *kerr.Error
	return errors.As(kerr.ErrorForCode(code), &ke) && ke.Code == code
}
