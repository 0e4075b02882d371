package group

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// memStore is an in-memory Store: the interface boundary the broker
// implements with a replicated partition.
type memStore struct {
	mu      sync.Mutex
	records []Record
	appends int
	fail    error
}

func (s *memStore) Append(ctx context.Context, records []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appends++
	if s.fail != nil {
		return s.fail
	}
	for _, r := range records {
		s.records = append(s.records, Record{Key: slices.Clone(r.Key), Value: slices.Clone(r.Value), Txn: r.Txn})
	}
	return nil
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

func (s *memStore) snapshot() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

func (s *memStore) replay() Replay { return replayOf(s.snapshot()) }

// replayOf replays recs, then runs each of after.
func replayOf(recs []Record, after ...func()) Replay {
	return func(yield func(Record) bool) error {
		for _, r := range recs {
			if !yield(r) {
				return nil
			}
		}
		for _, f := range after {
			f()
		}
		return nil
	}
}

// testConfig has one offsets partition and short timeouts.
func testConfig() Config {
	return Config{
		MinSessionTimeout: 10 * time.Millisecond,
		MaxSessionTimeout: time.Minute,
		OffsetsPartitions: 1,
		CommitTimeout:     2 * time.Second,
	}
}

// newLoaded returns a coordinator owning partition 0, backed by a fresh
// memStore. It is closed when the test ends.
func newLoaded(t *testing.T, cfg Config) (*Coordinator, *memStore) {
	t.Helper()
	st := &memStore{}
	return loadedWith(t, cfg, st), st
}

// loadedWith returns a coordinator owning partition 0, backed by st, with
// nothing to replay. It is closed when the test ends.
func loadedWith(t *testing.T, cfg Config, st Store) *Coordinator {
	t.Helper()
	c := NewCoordinator(cfg, nil)
	if err := c.Load(context.Background(), 0, st, nil); err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// commitAsync sends a simple commit (no member, generation -1) of offset
// for group g, partition t-0, and returns where its response will arrive.
func commitAsync(ctx context.Context, c *Coordinator, g string, offset int64) <-chan *kmsg.OffsetCommitResponse {
	ch := make(chan *kmsg.OffsetCommitResponse, 1)
	go func() { ch <- c.OffsetCommit(ctx, commitReq(g, "", -1, "t", map[int32]int64{0: offset})) }()
	return ch
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return WithClient(ctx, "test-client", "/127.0.0.1")
}

// consumerMeta is a consumer-protocol subscription to topics.
func consumerMeta(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Version = 1
	m.Topics = topics
	return m.AppendTo(nil)
}

// joinRequestOpt adjusts a JoinGroup request.
type joinRequestOpt func(*kmsg.JoinGroupRequest)

func withSession(d time.Duration) joinRequestOpt {
	return func(r *kmsg.JoinGroupRequest) { r.SessionTimeoutMillis = int32(d / time.Millisecond) }
}

func withRebalance(d time.Duration) joinRequestOpt {
	return func(r *kmsg.JoinGroupRequest) { r.RebalanceTimeoutMillis = int32(d / time.Millisecond) }
}

func withVersion(v int16) joinRequestOpt { return func(r *kmsg.JoinGroupRequest) { r.Version = v } }

func withInstance(id string) joinRequestOpt {
	return func(r *kmsg.JoinGroupRequest) { r.InstanceID = kmsg.StringPtr(id) }
}

func withProtocols(names ...string) joinRequestOpt {
	return func(r *kmsg.JoinGroupRequest) {
		r.Protocols = nil
		for _, n := range names {
			r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: n, Metadata: consumerMeta("t")})
		}
	}
}

func withTopics(topics ...string) joinRequestOpt {
	return func(r *kmsg.JoinGroupRequest) {
		for i := range r.Protocols {
			r.Protocols[i].Metadata = consumerMeta(topics...)
		}
	}
}

func joinReq(group, memberID string, opts ...joinRequestOpt) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = 9
	r.Group = group
	r.MemberID = memberID
	r.SessionTimeoutMillis = 10_000
	r.RebalanceTimeoutMillis = 5_000
	r.ProtocolType = "consumer"
	r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: consumerMeta("t")}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// goJoin runs a JoinGroup in the background.
func goJoin(ctx context.Context, c *Coordinator, req *kmsg.JoinGroupRequest) <-chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { ch <- c.JoinGroup(ctx, req) }()
	return ch
}

func goSync(ctx context.Context, c *Coordinator, req *kmsg.SyncGroupRequest) <-chan *kmsg.SyncGroupResponse {
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { ch <- c.SyncGroup(ctx, req) }()
	return ch
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no response within 10s")
		var zero T
		return zero
	}
}

// notYet asserts that ch has no value now: the request is parked.
func notYet[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: answered while it should be parked: %+v", what, v)
	case <-time.After(20 * time.Millisecond):
	}
}

// joinNew joins with an empty member id, following MEMBER_ID_REQUIRED, and
// returns the request to use and the (parked) response channel.
func joinNew(t *testing.T, ctx context.Context, c *Coordinator, group string, opts ...joinRequestOpt) (*kmsg.JoinGroupRequest, <-chan *kmsg.JoinGroupResponse) {
	t.Helper()
	req := joinReq(group, "", opts...)
	if req.Version >= 4 && req.InstanceID == nil {
		resp := c.JoinGroup(ctx, req)
		if resp.ErrorCode != codeMemberIDRequired {
			t.Fatalf("first join: error %d, want MEMBER_ID_REQUIRED", resp.ErrorCode)
		}
		req.MemberID = resp.MemberID
	}
	return req, goJoin(ctx, c, req)
}

func syncReq(group, memberID string, gen int32, assignments map[string][]byte) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = 5
	r.Group = group
	r.MemberID = memberID
	r.Generation = gen
	for id, a := range assignments {
		r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return r
}

func heartbeat(ctx context.Context, c *Coordinator, group, memberID string, gen int32) int16 {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version = 4
	r.Group = group
	r.MemberID = memberID
	r.Generation = gen
	return c.Heartbeat(ctx, r).ErrorCode
}

func commitReq(group, memberID string, gen int32, topic string, offsets map[int32]int64) *kmsg.OffsetCommitRequest {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 9
	r.Group = group
	r.MemberID = memberID
	r.Generation = gen
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = topic
	parts := make([]int32, 0, len(offsets))
	for p := range offsets {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition = p
		rp.Offset = offsets[p]
		rp.LeaderEpoch = 3
		rp.Metadata = kmsg.StringPtr("m")
		t.Partitions = append(t.Partitions, rp)
	}
	r.Topics = []kmsg.OffsetCommitRequestTopic{t}
	return r
}

// commitCodes returns the error code of every partition in resp.
func commitCodes(resp *kmsg.OffsetCommitResponse) []int16 {
	var out []int16
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out = append(out, p.ErrorCode)
		}
	}
	return out
}

// fetchOffset returns the committed offset of one partition (v9 request).
func fetchOffset(t *testing.T, ctx context.Context, c *Coordinator, group, topic string, partition int32) int64 {
	t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 9
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = group
	g.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{partition}}}
	r.Groups = []kmsg.OffsetFetchRequestGroup{g}
	resp := c.OffsetFetch(ctx, r)
	if len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 || len(resp.Groups[0].Topics) != 1 ||
		len(resp.Groups[0].Topics[0].Partitions) != 1 {
		t.Fatalf("OffsetFetch: unexpected response %+v", resp)
	}
	return resp.Groups[0].Topics[0].Partitions[0].Offset
}

func describe(ctx context.Context, c *Coordinator, group string) kmsg.DescribeGroupsResponseGroup {
	r := kmsg.NewPtrDescribeGroupsRequest()
	r.Version = 5
	r.Groups = []string{group}
	return c.DescribeGroups(ctx, r).Groups[0]
}
