package group

import (
	"context"
	"testing"
)

func BenchmarkOffsetCommit(b *testing.B) {
	c := NewCoordinator(testConfig(), nil)
	defer c.Close()
	if err := c.Load(context.Background(), 0, &memStore{}, nil); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	offsets := map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for p := range offsets {
			offsets[p] = int64(i)
		}
		if codes := commitCodes(c.OffsetCommit(ctx, commitReq("g", "", -1, "t", offsets))); codes[0] != 0 {
			b.Fatalf("commit: %v", codes)
		}
	}
}

func BenchmarkHeartbeat(b *testing.B) {
	c := NewCoordinator(testConfig(), nil)
	defer c.Close()
	if err := c.Load(context.Background(), 0, &memStore{}, nil); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	req := joinReq("g", "", withVersion(3))
	j := c.JoinGroup(ctx, req)
	if s := c.SyncGroup(ctx, syncReq("g", j.MemberID, j.Generation, nil)); s.ErrorCode != 0 {
		b.Fatalf("sync: %d", s.ErrorCode)
	}
	b.ReportAllocs()
	for b.Loop() {
		if code := heartbeat(ctx, c, "g", j.MemberID, j.Generation); code != 0 {
			b.Fatalf("heartbeat: %d", code)
		}
	}
}
