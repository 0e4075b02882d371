package group_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// This file runs a real franz-go group consumer against the coordinator,
// through a minimal one-broker Kafka server that answers only what a group
// consumer needs (topic "t" with two empty partitions). The real broker lives
// in the server package; this checks that the coordinator's answers satisfy
// a real client.

type sliceStore struct {
	mu      sync.Mutex
	records []group.Record
}

func (s *sliceStore) Append(_ context.Context, records []group.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, records...)
	return nil
}

var topicID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

type miniBroker struct {
	cur  atomic.Pointer[group.Coordinator]
	ln   net.Listener
	host string
	port int32
	wg   sync.WaitGroup
	ctx  context.Context
	stop context.CancelFunc
}

func startMiniBroker(t *testing.T, c *group.Coordinator) *miniBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	ctx, stop := context.WithCancel(context.Background())
	b := &miniBroker{ln: ln, host: host, port: int32(p), ctx: ctx, stop: stop}
	b.cur.Store(c)
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(func() {
		stop()
		ln.Close()
		b.wg.Wait()
	})
	return b
}

func (b *miniBroker) accept() {
	defer b.wg.Done()
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go b.serve(conn)
	}
}

func (b *miniBroker) serve(conn net.Conn) {
	defer b.wg.Done()
	defer conn.Close()
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	go func() { <-ctx.Done(); conn.Close() }()
	r := bufio.NewReader(conn)
	for {
		var size int32
		if err := binary.Read(r, binary.BigEndian, &size); err != nil || size < 8 {
			return
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		key := int16(binary.BigEndian.Uint16(buf))
		version := int16(binary.BigEndian.Uint16(buf[2:]))
		corr := buf[4:8]
		rest := buf[8:]
		idLen := int16(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		clientID := ""
		if idLen > 0 {
			clientID, rest = string(rest[:idLen]), rest[idLen:]
		}
		req := kmsg.RequestForKey(key)
		if req == nil {
			return
		}
		req.SetVersion(version)
		if req.IsFlexible() {
			rest = skipTags(rest)
		}
		if err := req.ReadFrom(rest); err != nil {
			return
		}
		rctx := group.WithClient(ctx, clientID, "/"+conn.RemoteAddr().String())
		resp := b.handle(rctx, req)
		out := append([]byte{0, 0, 0, 0}, corr...)
		if resp.IsFlexible() && key != 18 {
			out = append(out, 0)
		}
		out = resp.AppendTo(out)
		binary.BigEndian.PutUint32(out, uint32(len(out)-4))
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

func skipTags(b []byte) []byte {
	n, l := binary.Uvarint(b)
	b = b[l:]
	for ; n > 0; n-- {
		_, l = binary.Uvarint(b)
		b = b[l:]
		size, l := binary.Uvarint(b)
		b = b[l+int(size):]
	}
	return b
}

func (b *miniBroker) handle(ctx context.Context, req kmsg.Request) kmsg.Response {
	c := b.cur.Load()
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		resp := r.ResponseKind().(*kmsg.ApiVersionsResponse)
		add := func(key, lo, hi int16) {
			resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: key, MinVersion: lo, MaxVersion: hi})
		}
		add(18, 0, 4)
		add(3, 0, 12)
		add(10, 0, 6)
		add(2, 0, 8)
		add(1, 4, 16)
		for k, v := range group.Versions() {
			add(k, v[0], v[1])
		}
		return resp
	case *kmsg.MetadataRequest:
		resp := r.ResponseKind().(*kmsg.MetadataResponse)
		resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 0, Host: b.host, Port: b.port}}
		resp.ControllerID = 0
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = kmsg.StringPtr("t")
		mt.TopicID = topicID
		for p := int32(0); p < 2; p++ {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition, mp.Leader, mp.LeaderEpoch = p, 0, 0
			mp.Replicas, mp.ISR = []int32{0}, []int32{0}
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = []kmsg.MetadataResponseTopic{mt}
		return resp
	case *kmsg.FindCoordinatorRequest:
		resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.NodeID, resp.Host, resp.Port = 0, b.host, b.port
		keys := r.CoordinatorKeys
		if r.Version < 4 {
			keys = []string{r.CoordinatorKey}
		}
		for _, k := range keys {
			resp.Coordinators = append(resp.Coordinators, kmsg.FindCoordinatorResponseCoordinator{Key: k, NodeID: 0, Host: b.host, Port: b.port})
		}
		return resp
	case *kmsg.ListOffsetsRequest:
		resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = p.Partition, 0, 0
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	case *kmsg.FetchRequest:
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(min(r.MaxWaitMillis, 100)) * time.Millisecond):
		}
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition = p.Partition
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	case *kmsg.JoinGroupRequest:
		return c.JoinGroup(ctx, r)
	case *kmsg.SyncGroupRequest:
		return c.SyncGroup(ctx, r)
	case *kmsg.HeartbeatRequest:
		return c.Heartbeat(ctx, r)
	case *kmsg.LeaveGroupRequest:
		return c.LeaveGroup(ctx, r)
	case *kmsg.OffsetCommitRequest:
		return c.OffsetCommit(ctx, r)
	case *kmsg.OffsetFetchRequest:
		return c.OffsetFetch(ctx, r)
	case *kmsg.DescribeGroupsRequest:
		return c.DescribeGroups(ctx, r)
	case *kmsg.ListGroupsRequest:
		return c.ListGroups(ctx, r)
	}
	return req.ResponseKind() // unreachable for the APIs advertised
}

// assignments tracks what a client was assigned.
type assignments struct {
	mu    sync.Mutex
	parts []int32
}

func (a *assignments) onAssigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.parts = append(a.parts, m["t"]...)
	slices.Sort(a.parts)
}

func (a *assignments) onRevoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.parts = slices.DeleteFunc(a.parts, func(p int32) bool { return slices.Contains(m["t"], p) })
}

func (a *assignments) get() []int32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.parts)
}

func newGroupClient(t *testing.T, addr string, a *assignments, balancer kgo.GroupBalancer) *kgo.Client {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ClientID("franz"),
		kgo.ConsumerGroup("g"),
		kgo.ConsumeTopics("t"),
		kgo.Balancers(balancer),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(time.Second),
		kgo.HeartbeatInterval(50*time.Millisecond),
		kgo.RebalanceTimeout(2*time.Second),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.OnPartitionsAssigned(a.onAssigned),
		kgo.OnPartitionsRevoked(a.onRevoked),
		kgo.OnPartitionsLost(a.onRevoked),
	)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
		}
	}()
	t.Cleanup(func() { cl.Close(); <-done })
	return cl
}

func TestFranzGoConsumerGroupAgainstCoordinator(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		balancer kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := group.NewCoordinator(group.Config{MinSessionTimeout: 100 * time.Millisecond, OffsetsPartitions: 1}, nil)
			t.Cleanup(c.Close) // after the clients and the broker: cleanups run last-in first-out
			store := &sliceStore{}
			if err := c.Load(context.Background(), 0, store, nil); err != nil {
				t.Fatal(err)
			}
			b := startMiniBroker(t, c)
			addr := net.JoinHostPort(b.host, strconv.Itoa(int(b.port)))

			var a1, a2 assignments
			cl1 := newGroupClient(t, addr, &a1, tt.balancer)
			testkit.WaitFor(t, 20*time.Second, "the first client to own both partitions", func() bool {
				return slices.Equal(a1.get(), []int32{0, 1})
			})
			cl2 := newGroupClient(t, addr, &a2, tt.balancer)
			testkit.WaitFor(t, 20*time.Second, "the two clients to split the partitions", func() bool {
				p1, p2 := a1.get(), a2.get()
				return len(p1) == 1 && len(p2) == 1 && p1[0] != p2[0]
			})

			// Commit through the client, read back through the coordinator.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p := a1.get()[0]
			var commitErr error
			cl1.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{"t": {p: {Epoch: -1, Offset: 42}}},
				func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
					commitErr = err
					if err == nil {
						for _, t := range resp.Topics {
							for _, p := range t.Partitions {
								if p.ErrorCode != 0 {
									commitErr = errors.New("commit error code " + strconv.Itoa(int(p.ErrorCode)))
								}
							}
						}
					}
				})
			if commitErr != nil {
				t.Fatalf("commit: %v", commitErr)
			}
			fr := kmsg.NewPtrOffsetFetchRequest()
			fr.Version = 9
			fr.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{p}}}}}
			if got := c.OffsetFetch(ctx, fr).Groups[0].Topics[0].Partitions[0].Offset; got != 42 {
				t.Fatalf("committed offset read back %d, want 42", got)
			}

			d := c.DescribeGroups(ctx, &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"g"}}).Groups[0]
			if d.State != "Stable" || len(d.Members) != 2 || d.Members[0].ClientID != "franz" {
				t.Fatalf("described group: state %s, %d members", d.State, len(d.Members))
			}

			// The second client leaves: the first takes both partitions.
			cl2.Close()
			testkit.WaitFor(t, 20*time.Second, "the first client to own both partitions again", func() bool {
				return slices.Equal(a1.get(), []int32{0, 1})
			})
		})
	}
}

// TestFranzGoCarriesOnAfterCoordinatorFailover moves the coordinator: the old
// one is unloaded, a new one loads the records the old one persisted. The
// member keeps its id, generation and assignment, and its commits land.
func TestFranzGoCarriesOnAfterCoordinatorFailover(t *testing.T) {
	t.Parallel()
	cfg := group.Config{MinSessionTimeout: 100 * time.Millisecond, OffsetsPartitions: 1}
	old := group.NewCoordinator(cfg, nil)
	t.Cleanup(old.Close)
	store := &sliceStore{}
	if err := old.Load(context.Background(), 0, store, nil); err != nil {
		t.Fatal(err)
	}
	b := startMiniBroker(t, old)
	addr := net.JoinHostPort(b.host, strconv.Itoa(int(b.port)))
	var a assignments
	cl := newGroupClient(t, addr, &a, kgo.CooperativeStickyBalancer())
	testkit.WaitFor(t, 20*time.Second, "the client to own both partitions", func() bool { return slices.Equal(a.get(), []int32{0, 1}) })

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	commit := func(offset int64) error {
		var out error
		cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{"t": {0: {Epoch: -1, Offset: offset}}},
			func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
				out = err
				if err == nil && resp.Topics[0].Partitions[0].ErrorCode != 0 {
					out = errors.New("commit error code " + strconv.Itoa(int(resp.Topics[0].Partitions[0].ErrorCode)))
				}
			})
		return out
	}
	if err := commit(42); err != nil {
		t.Fatalf("commit before failover: %v", err)
	}
	before := old.DescribeGroups(ctx, &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"g"}}).Groups[0]

	// Failover: the old coordinator stops (its clients get NOT_COORDINATOR
	// for a while), then a new one replays what the old one persisted.
	old.Unload(0)
	time.Sleep(200 * time.Millisecond)
	store.mu.Lock()
	records := slices.Clone(store.records)
	store.mu.Unlock()
	next := group.NewCoordinator(cfg, nil)
	if err := next.Load(ctx, 0, &sliceStore{}, func(yield func(group.Record) bool) error {
		for _, r := range records {
			if !yield(r) {
				return nil
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	b.cur.Store(next)

	if err := commit(43); err != nil {
		t.Fatalf("commit after failover: %v", err)
	}
	fr := kmsg.NewPtrOffsetFetchRequest()
	fr.Version = 9
	fr.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}}}
	if got := next.OffsetFetch(ctx, fr).Groups[0].Topics[0].Partitions[0].Offset; got != 43 {
		t.Fatalf("offset on the new coordinator %d, want 43", got)
	}
	time.Sleep(300 * time.Millisecond) // several heartbeat intervals
	after := next.DescribeGroups(ctx, &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"g"}}).Groups[0]
	if after.State != "Stable" || len(after.Members) != 1 || after.Members[0].MemberID != before.Members[0].MemberID {
		t.Fatalf("group on the new coordinator: %s with %d members; want the same member Stable", after.State, len(after.Members))
	}
	if !slices.Equal(a.get(), []int32{0, 1}) {
		t.Fatalf("client assignment after failover: %v", a.get())
	}
	// Same generation as before the failover: no rebalance happened.
	var last kmsg.GroupMetadataValue
	for _, r := range records {
		var k kmsg.GroupMetadataKey
		if k.ReadFrom(r.Key) == nil && k.Version == 2 && r.Value != nil {
			if err := last.ReadFrom(r.Value); err != nil {
				t.Fatal(err)
			}
		}
	}
	hb := &kmsg.HeartbeatRequest{Version: 4, Group: "g", MemberID: before.Members[0].MemberID, Generation: last.Generation}
	if code := next.Heartbeat(ctx, hb).ErrorCode; code != 0 {
		t.Fatalf("heartbeat in the persisted generation %d: error %d", last.Generation, code)
	}
	cl.Close() // leave while the new coordinator still serves
}
