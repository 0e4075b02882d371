package group

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnCommitReq is a TxnOffsetCommit (v3) of offset for topic t partition 0.
func txnCommitReq(group, memberID string, gen int32, producerID int64, offset int64) *kmsg.TxnOffsetCommitRequest {
	r := kmsg.NewPtrTxnOffsetCommitRequest()
	r.Version = 3
	r.TransactionalID = "tx"
	r.Group = group
	r.ProducerID = producerID
	r.MemberID = memberID
	r.Generation = gen
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic = "t"
	p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	p.Offset = offset
	p.Metadata = kmsg.StringPtr("m")
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	return r
}

func txnCommitCode(t *testing.T, ctx context.Context, c *Coordinator, r *kmsg.TxnOffsetCommitRequest) int16 {
	t.Helper()
	resp := c.TxnOffsetCommit(ctx, r)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("TxnOffsetCommit: unexpected response %+v", resp)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// fetchStable returns the offset and code of group's t-0 with RequireStable
// (v7, the last single-group version, and v9).
func fetchStable(t *testing.T, ctx context.Context, c *Coordinator, group string) (int64, int16) {
	t.Helper()
	r7 := kmsg.NewPtrOffsetFetchRequest()
	r7.Version = 7
	r7.Group = group
	r7.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	r7.RequireStable = true
	p7 := c.OffsetFetch(ctx, r7).Topics[0].Partitions[0]

	r9 := kmsg.NewPtrOffsetFetchRequest()
	r9.Version = 9
	r9.RequireStable = true
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = group
	g.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}
	r9.Groups = []kmsg.OffsetFetchRequestGroup{g}
	p9 := c.OffsetFetch(ctx, r9).Groups[0].Topics[0].Partitions[0]
	if p7.Offset != p9.Offset || p7.ErrorCode != p9.ErrorCode {
		t.Fatalf("OffsetFetch v7 says (%d, %d), v9 (%d, %d)", p7.Offset, p7.ErrorCode, p9.Offset, p9.ErrorCode)
	}
	return p9.Offset, p9.ErrorCode
}

func TestTxnOffsetCommitIsPendingUntilItsMarker(t *testing.T) {
	c, st := newLoaded(t, testConfig())
	ctx := testCtx(t)

	if code := txnCommitCode(t, ctx, c, txnCommitReq("g", "", -1, 7, 5)); code != 0 {
		t.Fatalf("TxnOffsetCommit: code %d", code)
	}
	if off, code := fetchStable(t, ctx, c, "g"); off != -1 || code != codeUnstableOffsetCommit {
		t.Fatalf("stable fetch while the transaction is open: (%d, %d), want (-1, UNSTABLE_OFFSET_COMMIT)", off, code)
	}
	if off := fetchOffset(t, ctx, c, "g", "t", 0); off != -1 {
		t.Fatalf("fetch while the transaction is open: %d, want -1 (not committed yet)", off)
	}
	if err := c.CompleteTxn(ctx, 0, 7, 0, true, 0); err != nil {
		t.Fatalf("CompleteTxn commit: %v", err)
	}
	if off, code := fetchStable(t, ctx, c, "g"); off != 5 || code != 0 {
		t.Fatalf("stable fetch after COMMIT: (%d, %d), want (5, 0)", off, code)
	}

	// An aborted transaction leaves the committed offset as it was.
	if code := txnCommitCode(t, ctx, c, txnCommitReq("g", "", -1, 7, 9)); code != 0 {
		t.Fatalf("TxnOffsetCommit: code %d", code)
	}
	if err := c.CompleteTxn(ctx, 0, 7, 0, false, 0); err != nil {
		t.Fatalf("CompleteTxn abort: %v", err)
	}
	if off, code := fetchStable(t, ctx, c, "g"); off != 5 || code != 0 {
		t.Fatalf("stable fetch after ABORT: (%d, %d), want (5, 0)", off, code)
	}

	// A regular commit after a transactional one wins over it, whenever the
	// transaction commits (Kafka compares record offsets).
	if code := txnCommitCode(t, ctx, c, txnCommitReq("g", "", -1, 8, 20)); code != 0 {
		t.Fatalf("TxnOffsetCommit: code %d", code)
	}
	if got := commitCodes(c.OffsetCommit(ctx, commitReq("g", "", -1, "t", map[int32]int64{0: 30}))); got[0] != 0 {
		t.Fatalf("OffsetCommit: %v", got)
	}
	if err := c.CompleteTxn(ctx, 0, 8, 0, true, 0); err != nil {
		t.Fatalf("CompleteTxn commit: %v", err)
	}
	if off, _ := fetchStable(t, ctx, c, "g"); off != 30 {
		t.Fatalf("after a later regular commit and the COMMIT: %d, want 30", off)
	}

	// A transaction left open, then a reload: still pending; its ABORT on
	// the new coordinator drops it.
	if code := txnCommitCode(t, ctx, c, txnCommitReq("g", "", -1, 9, 40)); code != 0 {
		t.Fatalf("TxnOffsetCommit: code %d", code)
	}
	c2 := NewCoordinator(testConfig(), nil)
	t.Cleanup(c2.Close)
	if err := c2.Load(ctx, 0, st, st.replay()); err != nil {
		t.Fatal(err)
	}
	if off, code := fetchStable(t, ctx, c2, "g"); off != -1 || code != codeUnstableOffsetCommit {
		t.Fatalf("stable fetch after reload with an open transaction: (%d, %d), want (-1, UNSTABLE_OFFSET_COMMIT)", off, code)
	}
	if off := fetchOffset(t, ctx, c2, "g", "t", 0); off != 30 {
		t.Fatalf("fetch after reload: %d, want 30", off)
	}
	if err := c2.CompleteTxn(ctx, 0, 9, 0, false, 0); err != nil {
		t.Fatalf("CompleteTxn abort: %v", err)
	}
	if off, code := fetchStable(t, ctx, c2, "g"); off != 30 || code != 0 {
		t.Fatalf("stable fetch after ABORT on the reloaded coordinator: (%d, %d), want (30, 0)", off, code)
	}

	// Replaying the whole log, markers included, gives the same state.
	c3 := NewCoordinator(testConfig(), nil)
	t.Cleanup(c3.Close)
	if err := c3.Load(ctx, 0, st, st.replay()); err != nil {
		t.Fatal(err)
	}
	if off, code := fetchStable(t, ctx, c3, "g"); off != 30 || code != 0 {
		t.Fatalf("stable fetch after replaying everything: (%d, %d), want (30, 0)", off, code)
	}
}

func TestTxnOffsetCommitReplayOfACommittedTransaction(t *testing.T) {
	c, st := newLoaded(t, testConfig())
	ctx := testCtx(t)
	if code := txnCommitCode(t, ctx, c, txnCommitReq("g", "", -1, 7, 5)); code != 0 {
		t.Fatalf("TxnOffsetCommit: code %d", code)
	}
	if err := c.CompleteTxn(ctx, 0, 7, 0, true, 0); err != nil {
		t.Fatal(err)
	}
	c2 := NewCoordinator(testConfig(), nil)
	t.Cleanup(c2.Close)
	if err := c2.Load(ctx, 0, st, st.replay()); err != nil {
		t.Fatal(err)
	}
	if off, code := fetchStable(t, ctx, c2, "g"); off != 5 || code != 0 {
		t.Fatalf("after replaying a committed transaction: (%d, %d), want (5, 0)", off, code)
	}
}

func TestTxnOffsetCommitMemberChecks(t *testing.T) {
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	req, ch := joinNew(t, ctx, c, "g")
	j := recv(t, ch)
	recv(t, goSync(ctx, c, syncReq("g", req.MemberID, j.Generation, nil)))

	v2 := txnCommitReq("g", "", -1, 7, 5)
	v2.Version = 2
	tests := []struct {
		name string
		req  *kmsg.TxnOffsetCommitRequest
		want int16
	}{
		{"wrong generation", txnCommitReq("g", req.MemberID, j.Generation+1, 7, 5), codeIllegalGeneration},
		{"unknown member", txnCommitReq("g", "nobody", j.Generation, 7, 5), codeUnknownMemberID},
		{"member commit to an unknown group", txnCommitReq("nogroup", "m", 1, 7, 5), codeIllegalGeneration},
		{"no group id", txnCommitReq("", "", -1, 7, 5), codeInvalidGroupID},
		{"no producer id", txnCommitReq("g", req.MemberID, j.Generation, -1, 5), codeInvalidRequest},
		{"without member id in a group with members (v3)", txnCommitReq("g", "", -1, 7, 5), 0},
		{"v2, which carries no member fields", v2, 0},
		{"member of the current generation", txnCommitReq("g", req.MemberID, j.Generation, 7, 5), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := txnCommitCode(t, ctx, c, tt.req); got != tt.want {
				t.Fatalf("TxnOffsetCommit: %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCompleteTxnOfAPartitionNotLoaded(t *testing.T) {
	c, _ := newLoaded(t, testConfig())
	if err := c.CompleteTxn(testCtx(t), 3, 7, 0, true, 0); err == nil {
		t.Fatal("CompleteTxn on a partition not loaded: no error")
	}
}
