package group

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

func TestSimpleCommitThenFetchAcrossVersions(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	codes := commitCodes(c.OffsetCommit(ctx, commitReq("simple", "", -1, "orders", map[int32]int64{0: 42, 2: 7})))
	if fmt.Sprint(codes) != "[0 0]" {
		t.Fatalf("simple commit to a new group: %v", codes)
	}

	for v := int16(0); v <= 9; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			r := kmsg.NewPtrOffsetFetchRequest()
			r.Version = v
			if v < 8 {
				r.Group = "simple"
				r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "orders", Partitions: []int32{0, 1, 2}}}
			} else {
				g := kmsg.NewOffsetFetchRequestGroup()
				g.Group = "simple"
				g.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "orders", Partitions: []int32{0, 1, 2}}}
				r.Groups = []kmsg.OffsetFetchRequestGroup{g}
			}
			resp := c.OffsetFetch(ctx, r)
			type part struct {
				offset int64
				epoch  int32
				meta   string
			}
			var got []part
			if v < 8 {
				for _, p := range resp.Topics[0].Partitions {
					got = append(got, part{p.Offset, p.LeaderEpoch, *p.Metadata})
				}
			} else {
				for _, p := range resp.Groups[0].Topics[0].Partitions {
					got = append(got, part{p.Offset, p.LeaderEpoch, *p.Metadata})
				}
			}
			want := []part{{42, 3, "m"}, {-1, -1, ""}, {7, 3, "m"}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("fetched %v, want %v", got, want)
			}
		})
	}

	all := kmsg.NewPtrOffsetFetchRequest()
	all.Version = 8
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = "simple" // nil Topics: every committed partition
	missing := kmsg.NewOffsetFetchRequestGroup()
	missing.Group = "missing"
	missing.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "orders", Partitions: []int32{0}}}
	all.Groups = []kmsg.OffsetFetchRequestGroup{g, missing}
	resp := c.OffsetFetch(ctx, all)
	if len(resp.Groups[0].Topics) != 1 || len(resp.Groups[0].Topics[0].Partitions) != 2 {
		t.Fatalf("fetch all: %+v", resp.Groups[0])
	}
	if p := resp.Groups[1].Topics[0].Partitions[0]; resp.Groups[1].ErrorCode != 0 || p.Offset != -1 {
		t.Fatalf("fetch of a missing group: error %d offset %d, want 0 and -1", resp.Groups[1].ErrorCode, p.Offset)
	}
}

func TestCommitMetadataLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.OffsetMetadataMaxBytes = 8
	c, _ := newLoaded(t, cfg)
	ctx := testCtx(t)
	r := commitReq("g", "", -1, "t", map[int32]int64{0: 1, 1: 2})
	r.Topics[0].Partitions[1].Metadata = kmsg.StringPtr(strings.Repeat("x", 9))
	if codes := commitCodes(c.OffsetCommit(ctx, r)); fmt.Sprint(codes) != fmt.Sprint([]int16{0, codeOffsetMetadataTooLarge}) {
		t.Fatalf("commit codes %v, want [0 OFFSET_METADATA_TOO_LARGE]", codes)
	}
	if got := fetchOffset(t, ctx, c, "g", "t", 1); got != -1 {
		t.Fatalf("partition with too much metadata was committed: %d", got)
	}
	if got := fetchOffset(t, ctx, c, "g", "t", 0); got != 1 {
		t.Fatalf("other partition: %d, want 1", got)
	}
}

func TestCommitIsPersistedAndRebuiltByLoad(t *testing.T) {
	t.Parallel()
	c, st := newLoaded(t, testConfig())
	ctx := testCtx(t)
	req, ch := joinNew(t, ctx, c, "g", withTopics("orders"))
	j := recv(t, ch)
	assignment := []byte("orders-0")
	recv(t, goSync(ctx, c, syncReq("g", req.MemberID, j.Generation, map[string][]byte{req.MemberID: assignment})))
	if codes := commitCodes(c.OffsetCommit(ctx, commitReq("g", req.MemberID, j.Generation, "orders", map[int32]int64{0: 100}))); codes[0] != 0 {
		t.Fatalf("member commit: %v", codes)
	}
	commitCodes(c.OffsetCommit(ctx, commitReq("simple", "", -1, "orders", map[int32]int64{3: 33})))

	// The records use Kafka's formats.
	var sawOffset, sawGroup bool
	for _, rec := range st.snapshot() {
		var ok kmsg.OffsetCommitKey
		if ok.ReadFrom(rec.Key) == nil && ok.Version == 1 && ok.Group == "g" && ok.Topic == "orders" {
			var v kmsg.OffsetCommitValue
			if err := v.ReadFrom(rec.Value); err != nil || v.Offset != 100 || v.LeaderEpoch != 3 || v.Metadata != "m" {
				t.Fatalf("offset value %+v, %v", v, err)
			}
			sawOffset = true
		}
		var gk kmsg.GroupMetadataKey
		if gk.ReadFrom(rec.Key) == nil && gk.Version == 2 && rec.Value != nil {
			var v kmsg.GroupMetadataValue
			if err := v.ReadFrom(rec.Value); err != nil {
				t.Fatal(err)
			}
			if v.Generation == j.Generation && len(v.Members) == 1 && string(v.Members[0].Assignment) == "orders-0" {
				sawGroup = true
			}
		}
	}
	if !sawOffset || !sawGroup {
		t.Fatalf("persisted offset record: %v, group metadata with the assignment: %v", sawOffset, sawGroup)
	}

	// A new coordinator (after failover) rebuilds everything from the log.
	c2 := NewCoordinator(testConfig(), nil)
	defer c2.Close()
	if err := c2.Load(ctx, 0, &memStore{}, st.replay()); err != nil {
		t.Fatal(err)
	}
	if got := fetchOffset(t, ctx, c2, "g", "orders", 0); got != 100 {
		t.Fatalf("rebuilt offset %d, want 100", got)
	}
	if got := fetchOffset(t, ctx, c2, "simple", "orders", 3); got != 33 {
		t.Fatalf("rebuilt simple offset %d, want 33", got)
	}
	d := describe(ctx, c2, "g")
	if d.State != "Stable" || len(d.Members) != 1 || d.Members[0].MemberID != req.MemberID ||
		string(d.Members[0].MemberAssignment) != "orders-0" {
		t.Fatalf("rebuilt group: %+v", d)
	}
	// The member carries on with the new coordinator in the same generation.
	if code := heartbeat(ctx, c2, "g", req.MemberID, j.Generation); code != 0 {
		t.Fatalf("heartbeat to the new coordinator: %d", code)
	}
	if code := heartbeat(ctx, c2, "g", req.MemberID, j.Generation+1); code != codeIllegalGeneration {
		t.Fatalf("rebuilt generation is not %d: heartbeat with %d got %d", j.Generation, j.Generation+1, code)
	}
	if codes := commitCodes(c2.OffsetCommit(ctx, commitReq("g", req.MemberID, j.Generation, "orders", map[int32]int64{0: 101}))); codes[0] != 0 {
		t.Fatalf("commit to the new coordinator: %v", codes)
	}
	s := recv(t, goSync(ctx, c2, syncReq("g", req.MemberID, j.Generation, nil)))
	if s.ErrorCode != 0 || string(s.MemberAssignment) != "orders-0" {
		t.Fatalf("sync with the new coordinator: %+v", s)
	}
}

func TestLoadedMemberThatNeverHeartbeatsIsEvicted(t *testing.T) {
	t.Parallel()
	c, st := newLoaded(t, testConfig())
	ctx := testCtx(t)
	req, ch := joinNew(t, ctx, c, "g", withSession(100*time.Millisecond))
	j := recv(t, ch)
	recv(t, goSync(ctx, c, syncReq("g", req.MemberID, j.Generation, nil)))
	c.Close()

	c2 := NewCoordinator(testConfig(), nil)
	defer c2.Close()
	if err := c2.Load(ctx, 0, &memStore{}, st.replay()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the loaded member's session to expire", func() bool {
		return describe(ctx, c2, "g").State == "Empty"
	})
}

func TestStoreFailureReturnsCodeAndChangesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want int16
	}{
		{"not leader", ErrNotLeader, codeNotCoordinator},
		{"wrapped not leader", fmt.Errorf("partition moved: %w", ErrNotLeader), codeNotCoordinator},
		{"unavailable", ErrUnavailable, codeCoordinatorNotAvailable},
		{"kerr not enough replicas", kerr.NotEnoughReplicas, codeCoordinatorNotAvailable},
		{"kerr request timed out, wrapped", fmt.Errorf("waiting for hw: %w", kerr.RequestTimedOut), codeCoordinatorNotAvailable},
		{"kerr not leader", kerr.NotLeaderForPartition, codeNotCoordinator},
		{"deadline", context.DeadlineExceeded, codeCoordinatorNotAvailable},
		{"message too large", kerr.MessageTooLarge, codeUnknownServerError},
		{"anything else", errors.New("disk on fire"), codeUnknownServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, st := newLoaded(t, testConfig())
			ctx := testCtx(t)
			if codes := commitCodes(c.OffsetCommit(ctx, commitReq("g", "", -1, "t", map[int32]int64{0: 10}))); codes[0] != 0 {
				t.Fatalf("first commit: %v", codes)
			}
			st.setFail(tt.err)
			codes := commitCodes(c.OffsetCommit(ctx, commitReq("g", "", -1, "t", map[int32]int64{0: 20, 1: 5})))
			if fmt.Sprint(codes) != fmt.Sprint([]int16{tt.want, tt.want}) {
				t.Fatalf("commit with a failing store: %v, want %d on both", codes, tt.want)
			}
			if got := fetchOffset(t, ctx, c, "g", "t", 0); got != 10 {
				t.Fatalf("offset after failed commit: %d, want 10", got)
			}
			if got := fetchOffset(t, ctx, c, "g", "t", 1); got != -1 {
				t.Fatalf("offset of a partition whose commit failed: %d, want -1", got)
			}
			if codes := commitCodes(c.OffsetCommit(ctx, commitReq("new", "", -1, "t", map[int32]int64{0: 1}))); codes[0] != tt.want {
				t.Fatalf("commit creating a group: %v", codes)
			}
			if d := describe(ctx, c, "new"); d.State != "Dead" {
				t.Fatalf("a failed first commit left group %q behind in state %s", "new", d.State)
			}
		})
	}
}

func TestStoreFailureAtSyncMakesTheGroupRebalance(t *testing.T) {
	t.Parallel()
	c, st := newLoaded(t, testConfig())
	ctx := testCtx(t)
	req, ch := joinNew(t, ctx, c, "g")
	j := recv(t, ch)
	st.setFail(ErrUnavailable)
	s := recv(t, goSync(ctx, c, syncReq("g", req.MemberID, j.Generation, map[string][]byte{req.MemberID: []byte("a")})))
	if s.ErrorCode != codeCoordinatorNotAvailable {
		t.Fatalf("sync with a failing store: %d, want COORDINATOR_NOT_AVAILABLE", s.ErrorCode)
	}
	if d := describe(ctx, c, "g"); d.State == "Stable" {
		t.Fatal("the group became Stable although its assignment was not persisted")
	}
	st.setFail(nil)
	j2 := recv(t, goJoin(ctx, c, req))
	if j2.ErrorCode != 0 || j2.Generation <= j.Generation {
		t.Fatalf("rejoin after the failed sync: %+v", j2)
	}
	s2 := recv(t, goSync(ctx, c, syncReq("g", req.MemberID, j2.Generation, map[string][]byte{req.MemberID: []byte("a")})))
	if s2.ErrorCode != 0 || string(s2.MemberAssignment) != "a" {
		t.Fatalf("sync after recovery: %+v", s2)
	}
}

func TestNotCoordinatorAfterUnload(t *testing.T) {
	t.Parallel()
	c, _ := newLoaded(t, testConfig())
	ctx := testCtx(t)
	reqA, chA := joinNew(t, ctx, c, "g")
	recv(t, chA)
	recv(t, goSync(ctx, c, syncReq("g", reqA.MemberID, 1, nil)))
	_, chB := joinNew(t, ctx, c, "g") // parks: A has not rejoined
	notYet(t, chB, "join waiting for the rebalance")
	if !c.Owns("g") {
		t.Fatal("Owns before Unload = false")
	}

	c.Unload(0)
	if code := recv(t, chB).ErrorCode; code != codeNotCoordinator {
		t.Fatalf("parked join after Unload: %d, want NOT_COORDINATOR", code)
	}
	if c.Owns("g") {
		t.Fatal("Owns after Unload = true")
	}
	if code := heartbeat(ctx, c, "g", reqA.MemberID, 1); code != codeNotCoordinator {
		t.Fatalf("heartbeat after Unload: %d", code)
	}
	if codes := commitCodes(c.OffsetCommit(ctx, commitReq("g", "", -1, "t", map[int32]int64{0: 1}))); codes[0] != codeNotCoordinator {
		t.Fatalf("commit after Unload: %v", codes)
	}
	if code := describe(ctx, c, "g").ErrorCode; code != codeNotCoordinator {
		t.Fatalf("describe after Unload: %d", code)
	}

	c.Close()
	if code := c.JoinGroup(ctx, joinReq("g", "")).ErrorCode; code != codeCoordinatorNotAvailable {
		t.Fatalf("join after Close: %d, want COORDINATOR_NOT_AVAILABLE", code)
	}
	if err := c.Load(ctx, 0, &memStore{}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Load after Close: %v, want ErrClosed", err)
	}
}

func TestCloseAnswersParkedRequestsCoordinatorNotAvailable(t *testing.T) {
	t.Parallel()
	c := NewCoordinator(testConfig(), nil)
	if err := c.Load(context.Background(), 0, &memStore{}, nil); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	reqA, chA := joinNew(t, ctx, c, "g")
	recv(t, chA)
	recv(t, goSync(ctx, c, syncReq("g", reqA.MemberID, 1, nil)))
	_, chB := joinNew(t, ctx, c, "g")
	notYet(t, chB, "join waiting for the rebalance")
	c.Close()
	if code := recv(t, chB).ErrorCode; code != codeCoordinatorNotAvailable {
		t.Fatalf("parked join after Close: %d, want COORDINATOR_NOT_AVAILABLE", code)
	}
}

func TestGroupsOfPartitionsNotLoadedGetNotCoordinator(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.OffsetsPartitions = 50
	c := NewCoordinator(cfg, nil)
	defer c.Close()
	p := PartitionFor("my-group", 50) // 12
	if err := c.Load(context.Background(), p, &memStore{}, nil); err != nil {
		t.Fatal(err)
	}
	if !c.Owns("my-group") || c.Owns("group") {
		t.Fatalf("Owns(my-group)=%v Owns(group)=%v, want true and false", c.Owns("my-group"), c.Owns("group"))
	}
	ctx := testCtx(t)
	if code := c.JoinGroup(ctx, joinReq("group", "")).ErrorCode; code != codeNotCoordinator {
		t.Fatalf("join of a group on another partition: %d, want NOT_COORDINATOR", code)
	}
	if err := c.Load(context.Background(), 50, &memStore{}, nil); !errors.Is(err, ErrBadPartition) {
		t.Fatalf("Load(50) of 50 partitions: %v, want ErrBadPartition", err)
	}
}

func TestLoadSkipsUndecodableRecords(t *testing.T) {
	t.Parallel()
	good := offsetCommitRecord("g", "t", 0, committed{offset: 5, leaderEpoch: -1, expireTimestamp: -1})
	recs := []Record{
		{Key: []byte{0}},                     // too short
		{Key: []byte{0, 1, 0xff}},            // truncated offset key
		{Key: []byte{0, 9, 1, 2}},            // a record type we do not serve
		{Key: good.Key, Value: []byte{0, 3}}, // truncated value
		good,
	}
	c := NewCoordinator(testConfig(), nil)
	defer c.Close()
	if err := c.Load(context.Background(), 0, &memStore{}, replayOf(recs)); err != nil {
		t.Fatal(err)
	}
	if got := fetchOffset(t, testCtx(t), c, "g", "t", 0); got != 5 {
		t.Fatalf("offset after loading around bad records: %d, want 5", got)
	}
}

func TestLoadThatCannotReadThePartitionServesNothing(t *testing.T) {
	t.Parallel()
	good := offsetCommitRecord("g", "t", 0, committed{offset: 5, leaderEpoch: -1, expireTimestamp: -1})
	c := NewCoordinator(testConfig(), nil)
	defer c.Close()
	readFailed := errors.New("disk read failed")
	err := c.Load(context.Background(), 0, &memStore{}, func(yield func(Record) bool) error {
		yield(good)
		return readFailed // the rest of the partition, with newer commits, was not read
	})
	if !errors.Is(err, readFailed) {
		t.Fatalf("Load = %v, want the read error", err)
	}
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 9
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = "g"
	r.Groups = []kmsg.OffsetFetchRequestGroup{g}
	if code := c.OffsetFetch(testCtx(t), r).Groups[0].ErrorCode; code != codeNotCoordinator {
		t.Fatalf("OffsetFetch after a failed load: code %d, want NOT_COORDINATOR rather than a partial answer", code)
	}
}

// slowStore makes every append take a while, so that commits queue up.
type slowStore struct {
	memStore
	delay time.Duration
}

func (s *slowStore) Append(ctx context.Context, records []Record) error {
	time.Sleep(s.delay)
	return s.memStore.Append(ctx, records)
}

func TestConcurrentCommitsShareAppendsAndApplyInLogOrder(t *testing.T) {
	t.Parallel()
	c := NewCoordinator(testConfig(), nil)
	defer c.Close()
	st := &slowStore{delay: 10 * time.Millisecond}
	if err := c.Load(context.Background(), 0, st, nil); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	const writers, commits = 16, 5
	var wg sync.WaitGroup
	errs := make(chan string, writers*commits)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			group := fmt.Sprintf("g%d", w%4) // four groups, four writers each
			for i := range commits {
				codes := commitCodes(c.OffsetCommit(ctx, commitReq(group, "", -1, "t", map[int32]int64{int32(w): int64(i + 1)})))
				if codes[0] != 0 {
					errs <- fmt.Sprintf("writer %d commit %d: %v", w, i, codes)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	st.mu.Lock()
	appends := st.appends
	st.mu.Unlock()
	if appends >= writers*commits {
		t.Errorf("%d appends for %d concurrent commits: none were batched", appends, writers*commits)
	}
	c2 := NewCoordinator(testConfig(), nil)
	defer c2.Close()
	if err := c2.Load(ctx, 0, &memStore{}, st.replay()); err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		group := fmt.Sprintf("g%d", w%4)
		if got := fetchOffset(t, ctx, c, group, "t", int32(w)); got != commits {
			t.Errorf("writer %d: offset %d, want %d", w, got, commits)
		}
		if got := fetchOffset(t, ctx, c2, group, "t", int32(w)); got != commits {
			t.Errorf("writer %d after replay: offset %d, want %d", w, got, commits)
		}
	}
}
