package group

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestPartitionForMatchesKafka(t *testing.T) {
	t.Parallel()
	// Expected values are Utils.abs(s.hashCode()) % n, computed in Java
	// terms (UTF-16 code units, int overflow, abs(MIN_VALUE) = 0).
	tests := []struct {
		group string
		n     int32
		want  int32
	}{
		{"", 50, 0},
		{"a", 50, 47},
		{"group", 50, 47},
		{"group", 4, 3},
		{"my-group", 50, 12},              // negative hash code
		{"polygenelubricants", 50, 0},     // hash code is Integer.MIN_VALUE
		{"console-consumer-12345", 50, 6}, // overflowing hash
		{"grüße", 50, 23},                 // non-ASCII
		{"\U0001F600x", 50, 39},           // surrogate pair
		{"group", 0, 0},                   // no partitions
	}
	for _, tt := range tests {
		if got := PartitionFor(tt.group, tt.n); got != tt.want {
			t.Errorf("PartitionFor(%q, %d) = %d, want %d", tt.group, tt.n, got, tt.want)
		}
	}
}

func TestVersionsAreWithinWhatKmsgDefines(t *testing.T) {
	t.Parallel()
	reqs := map[int16]kmsg.Request{
		keyOffsetCommit: new(kmsg.OffsetCommitRequest), keyOffsetFetch: new(kmsg.OffsetFetchRequest),
		keyJoinGroup: new(kmsg.JoinGroupRequest), keyHeartbeat: new(kmsg.HeartbeatRequest),
		keyLeaveGroup: new(kmsg.LeaveGroupRequest), keySyncGroup: new(kmsg.SyncGroupRequest),
		keyDescribeGroups: new(kmsg.DescribeGroupsRequest), keyListGroups: new(kmsg.ListGroupsRequest),
		keyDeleteGroups: new(kmsg.DeleteGroupsRequest), keyOffsetDelete: new(kmsg.OffsetDeleteRequest),
		keyTxnOffsetCommit: new(kmsg.TxnOffsetCommitRequest),
	}
	vs := Versions()
	if len(vs) != len(reqs) {
		t.Fatalf("Versions covers %d keys, want %d", len(vs), len(reqs))
	}
	for key, r := range reqs {
		v, ok := vs[key]
		if !ok || r.Key() != key {
			t.Fatalf("key %d (%s) missing", key, kmsg.NameForKey(key))
		}
		if v[0] < 0 || v[0] > v[1] || v[1] > r.MaxVersion() {
			t.Errorf("%s: versions %v outside [0, %d]", kmsg.NameForKey(key), v, r.MaxVersion())
		}
	}
}

func TestErrorCodesMatchKerr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code int16
		err  *kerr.Error
	}{
		{codeUnknownServerError, kerr.UnknownServerError},
		{codeNotCoordinator, kerr.NotCoordinator},
		{codeCoordinatorNotAvailable, kerr.CoordinatorNotAvailable},
		{codeOffsetMetadataTooLarge, kerr.OffsetMetadataTooLarge},
		{codeIllegalGeneration, kerr.IllegalGeneration},
		{codeInconsistentGroupProtocol, kerr.InconsistentGroupProtocol},
		{codeInvalidGroupID, kerr.InvalidGroupID},
		{codeUnknownMemberID, kerr.UnknownMemberID},
		{codeInvalidSessionTimeout, kerr.InvalidSessionTimeout},
		{codeRebalanceInProgress, kerr.RebalanceInProgress},
		{codeNonEmptyGroup, kerr.NonEmptyGroup},
		{codeGroupIDNotFound, kerr.GroupIDNotFound},
		{codeMemberIDRequired, kerr.MemberIDRequired},
		{codeGroupMaxSizeReached, kerr.GroupMaxSizeReached},
		{codeFencedInstanceID, kerr.FencedInstanceID},
		{codeGroupSubscribedToTopic, kerr.GroupSubscribedToTopic},
		{codeUnstableOffsetCommit, kerr.UnstableOffsetCommit},
		{codeInvalidRequest, kerr.InvalidRequest},
	}
	for _, tt := range tests {
		if tt.code != tt.err.Code {
			t.Errorf("%s: code %d, kerr says %d", tt.err.Message, tt.code, tt.err.Code)
		}
	}
}

// TestHandlersNeverPanicOnGarbage feeds every handler, at every version kmsg
// defines, zero-value and garbage-ish requests, including nil. Each must
// answer with a response of the request's version.
func TestHandlersNeverPanicOnGarbage(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxGroupSize = 2
	c, _ := newLoaded(t, cfg)
	garbageJoins := func(v int16) []*kmsg.JoinGroupRequest {
		return []*kmsg.JoinGroupRequest{
			{Version: v},
			{Version: v, Group: "g", SessionTimeoutMillis: 20, RebalanceTimeoutMillis: -5, ProtocolType: "x",
				Protocols: []kmsg.JoinGroupRequestProtocol{{Name: "p"}, {Name: "p"}}},
			{Version: v, Group: "g", SessionTimeoutMillis: 20, MemberID: "bogus", InstanceID: kmsg.StringPtr(""),
				ProtocolType: "x", Protocols: []kmsg.JoinGroupRequestProtocol{{Name: ""}}},
			{Version: v, Group: "g", SessionTimeoutMillis: -1},
		}
	}
	for v := int16(0); v <= 12; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			for _, r := range garbageJoins(v) {
				if resp := c.JoinGroup(ctx, r); resp == nil || resp.Version != v {
					t.Fatalf("JoinGroup: %+v", resp)
				}
			}
			syncs := []*kmsg.SyncGroupRequest{
				{Version: v},
				{Version: v, Group: "g", MemberID: "bogus", Generation: -1, InstanceID: kmsg.StringPtr("i"),
					ProtocolType: kmsg.StringPtr(""), GroupAssignment: []kmsg.SyncGroupRequestGroupAssignment{{}, {}}},
			}
			for _, r := range syncs {
				if resp := c.SyncGroup(ctx, r); resp == nil || resp.Version != v {
					t.Fatalf("SyncGroup: %+v", resp)
				}
			}
			for _, r := range []*kmsg.HeartbeatRequest{{Version: v}, {Version: v, Group: "g", Generation: 1 << 30, InstanceID: kmsg.StringPtr("")}} {
				if resp := c.Heartbeat(ctx, r); resp == nil || resp.Version != v {
					t.Fatalf("Heartbeat: %+v", resp)
				}
			}
			leaves := []*kmsg.LeaveGroupRequest{
				{Version: v},
				{Version: v, Group: "g", MemberID: "x", Members: []kmsg.LeaveGroupRequestMember{{}, {InstanceID: kmsg.StringPtr("i")}, {MemberID: "m"}}},
			}
			for _, r := range leaves {
				if resp := c.LeaveGroup(ctx, r); resp == nil || resp.Version != v {
					t.Fatalf("LeaveGroup: %+v", resp)
				}
			}
			commits := []*kmsg.OffsetCommitRequest{
				{Version: v},
				{Version: v, Group: "c", Generation: -7, RetentionTimeMillis: 1 << 62,
					Topics: []kmsg.OffsetCommitRequestTopic{{Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: -1, Offset: -9}, {Partition: 1 << 30}}}, {}}},
				{Version: v, Group: "g", Generation: 5, MemberID: "m", InstanceID: kmsg.StringPtr("i"),
					Topics: []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{}}}}},
			}
			for _, r := range commits {
				if resp := c.OffsetCommit(ctx, r); resp == nil || resp.Version != v {
					t.Fatalf("OffsetCommit: %+v", resp)
				}
			}
			fetches := []*kmsg.OffsetFetchRequest{
				{Version: v},
				{Version: v, Group: "c", Topics: []kmsg.OffsetFetchRequestTopic{{}}, Groups: []kmsg.OffsetFetchRequestGroup{{}, {Group: "c", MemberEpoch: 99}}},
			}
			for _, r := range fetches {
				if resp := c.OffsetFetch(ctx, r); resp == nil || resp.Version != v {
					t.Fatalf("OffsetFetch: %+v", resp)
				}
			}
			for _, r := range []*kmsg.DescribeGroupsRequest{{Version: v}, {Version: v, Groups: []string{"", "g", "c", "g"}, IncludeAuthorizedOperations: true}} {
				if resp := c.DescribeGroups(ctx, r); resp == nil || resp.Version != v {
					t.Fatalf("DescribeGroups: %+v", resp)
				}
			}
			for _, r := range []*kmsg.ListGroupsRequest{{Version: v}, {Version: v, StatesFilter: []string{""}, TypesFilter: []string{"", "classic"}}} {
				if resp := c.ListGroups(ctx, r); resp == nil || resp.Version != v {
					t.Fatalf("ListGroups: %+v", resp)
				}
			}
			offsetDeletes := []*kmsg.OffsetDeleteRequest{
				{Version: v},
				{Version: v, Group: "c", Topics: []kmsg.OffsetDeleteRequestTopic{{}, {Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: -1}}}}},
			}
			for _, r := range offsetDeletes {
				if resp := c.OffsetDelete(ctx, r); resp == nil || resp.Version != v {
					t.Fatalf("OffsetDelete: %+v", resp)
				}
			}
			for _, r := range []*kmsg.DeleteGroupsRequest{{Version: v}, {Version: v, Groups: []string{"", "c", "g", "nope", "c"}}} {
				if resp := c.DeleteGroups(ctx, r); resp == nil || resp.Version != v || len(resp.Groups) != len(r.Groups) {
					t.Fatalf("DeleteGroups: %+v", resp)
				}
			}
		})
	}

	ctx := context.Background()
	nils := []func(){
		func() { c.JoinGroup(ctx, nil) },
		func() { c.SyncGroup(ctx, nil) },
		func() { c.Heartbeat(ctx, nil) },
		func() { c.LeaveGroup(ctx, nil) },
		func() { c.OffsetCommit(ctx, nil) },
		func() { c.OffsetFetch(ctx, nil) },
		func() { c.DescribeGroups(ctx, nil) },
		func() { c.ListGroups(ctx, nil) },
		func() { c.DeleteGroups(ctx, nil) },
		func() { c.OffsetDelete(ctx, nil) },
	}
	for _, f := range nils {
		f()
	}

	// The coordinator still works after all that.
	tctx := testCtx(t)
	req, ch := joinNew(t, tctx, c, "after")
	if j := recv(t, ch); j.ErrorCode != 0 || j.MemberID != req.MemberID {
		t.Fatalf("join after garbage: %+v", j)
	}
}

// TestParkedJoinReturnsWhenContextEnds checks that a JoinGroup parked in a
// rebalance returns when its context ends.
func TestParkedJoinReturnsWhenContextEnds(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	reqA, chA := joinNew(t, ctx, c, "g")
	recv(t, chA)
	recv(t, goSync(ctx, c, syncReq("g", reqA.MemberID, 1, nil)))
	short, cancel := context.WithCancel(ctx)
	_, chB := joinNew(t, short, c, "g")
	notYet(t, chB, "join waiting for the rebalance")
	cancel()
	if code := recv(t, chB).ErrorCode; code != codeRebalanceInProgress {
		t.Fatalf("join whose context ended: %d, want REBALANCE_IN_PROGRESS", code)
	}
}
