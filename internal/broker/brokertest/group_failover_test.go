package brokertest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// groupWire speaks the classic group protocol to one chosen broker, so that a test decides which
// coordinator (a live one, an isolated one) gets each request.
type groupWire struct {
	t     *testing.T
	cl    *kgo.Client
	group string
}

// join joins (or rejoins, with memberID) through broker id and returns the member id and the
// generation the JoinGroup answer gives, or its error code. It follows MEMBER_ID_REQUIRED.
func (w groupWire) join(ctx context.Context, id int32, memberID string) (string, int32, int16) {
	w.t.Helper()
	for {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group = w.group
		req.MemberID = memberID
		req.ProtocolType = "consumer"
		req.SessionTimeoutMillis = 6000
		req.RebalanceTimeoutMillis = 6000
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 1}}}
		resp, err := req.RequestWith(ctx, w.cl.Broker(int(id)))
		if err != nil {
			w.t.Fatalf("JoinGroup to broker %d: %v", id, err)
		}
		if resp.ErrorCode == kerr.MemberIDRequired.Code {
			memberID = resp.MemberID
			continue
		}
		return resp.MemberID, resp.Generation, resp.ErrorCode
	}
}

// sync sends the leader's SyncGroup through broker id and returns its error code.
func (w groupWire) sync(ctx context.Context, id int32, memberID string, gen int32) int16 {
	w.t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group = w.group
	req.MemberID = memberID
	req.Generation = gen
	req.ProtocolType = kmsg.StringPtr("consumer")
	req.Protocol = kmsg.StringPtr("range")
	req.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: memberID, MemberAssignment: []byte{0, 1}}}
	resp, err := req.RequestWith(ctx, w.cl.Broker(int(id)))
	if err != nil {
		w.t.Fatalf("SyncGroup to broker %d: %v", id, err)
	}
	return resp.ErrorCode
}

// commit commits offset for topic-0 through broker id as member memberID of generation gen and
// returns the partition's error code.
func (w groupWire) commit(ctx context.Context, id int32, topic string, memberID string, gen int32, offset int64) (int16, error) {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = w.group
	req.MemberID = memberID
	req.Generation = gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition = 0
	rp.Offset = offset
	rp.LeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, w.cl.Broker(int(id)))
	if err != nil {
		return 0, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		w.t.Fatalf("OffsetCommit to broker %d: answer for %d topics", id, len(resp.Topics))
	}
	return resp.Topics[0].Partitions[0].ErrorCode, nil
}

// fetch returns the committed offset of topic-0 as broker id answers OffsetFetch (v8 or later,
// as franz-go negotiates with the bundled broker; -1: none), or the group's error code.
func (w groupWire) fetch(ctx context.Context, id int32, topic string) (int64, int16) {
	w.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = w.group
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{0}}}
	req.Groups = append(req.Groups, rg)
	resp, err := req.RequestWith(ctx, w.cl.Broker(int(id)))
	if err != nil {
		w.t.Fatalf("OffsetFetch to broker %d: %v", id, err)
	}
	if len(resp.Groups) != 1 {
		w.t.Fatalf("OffsetFetch v%d to broker %d: %d groups in the answer", resp.Version, id, len(resp.Groups))
	}
	g := resp.Groups[0]
	if g.ErrorCode != 0 {
		return 0, g.ErrorCode
	}
	if len(g.Topics) != 1 || len(g.Topics[0].Partitions) != 1 {
		return -1, 0
	}
	p := g.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

// groupOnFailoverCluster is a 3-broker cluster with topic "events" (one partition) and group
// groupID at generation 1 with one member (its leader), persisted by the leader's SyncGroup on
// coordinator old, once every broker is in the ISR of the group's offsets partition (so any of
// them may take over).
type groupOnFailoverCluster struct {
	c           *kafkatest.Cluster
	w           groupWire
	offsetsPart int32
	old         int32
	member      string
	gen         int32
}

func newGroupOnFailoverCluster(t *testing.T, ctx context.Context, groupID string) groupOnFailoverCluster {
	t.Helper()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	if err := c.CreateTopic(ctx, "events", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	f := groupOnFailoverCluster{c: c, w: groupWire{t: t, cl: cl, group: groupID}, offsetsPart: group.PartitionFor(groupID, 4)}
	if _, err := c.WaitPartition(ctx, "__consumer_offsets", f.offsetsPart, func(p kafkatest.PartitionInfo) bool {
		return len(p.ISR) == 3
	}); err != nil {
		t.Fatal(err)
	}
	f.old = coordinatorOf(t, ctx, cl, groupID)
	var code int16
	f.member, f.gen, code = f.w.join(ctx, f.old, "")
	if code != 0 || f.gen != 1 {
		t.Fatalf("first join: generation %d, code %d; want 1, 0", f.gen, code)
	}
	if code := f.w.sync(ctx, f.old, f.member, f.gen); code != 0 {
		t.Fatalf("SyncGroup: code %d", code)
	}
	return f
}

// A group coordinator cut off from the other brokers and the controller (clients still reach it)
// must not acknowledge an offset commit: acks=all cannot be met without the ISR, and the new
// coordinator, elected meanwhile, never has the record. The new coordinator serves the offsets
// and the generation that were persisted before the cut, and its next rebalance continues from
// that generation, as Kafka's, which reloads the generation from the GroupMetadata record. After
// the heal the old coordinator truncates what it could not replicate, answers the commit that
// waited with an error, and is no coordinator any more; the offsets stay as persisted.
func TestGroupCoordinatorIsolatedThenHealedServesOnlyPersistedOffsetsAndGeneration(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const topic = "events"
	f := newGroupOnFailoverCluster(t, ctx, "isolated-coordinator")
	c, w, offsetsPart, old, member, gen := f.c, f.w, f.offsetsPart, f.old, f.member, f.gen
	// A commit in generation 1.
	if code, err := w.commit(ctx, old, topic, member, gen, 42); err != nil || code != 0 {
		t.Fatalf("commit of 42 to coordinator %d: code %d, %v", old, code, err)
	}

	if err := c.Isolate(old); err != nil {
		t.Fatal(err)
	}
	// A commit to the cut-off coordinator waits for an ISR it cannot reach.
	type answer struct {
		code int16
		err  error
	}
	lateCommit := make(chan answer, 1)
	go func() {
		code, err := w.commit(ctx, old, topic, member, gen, 99)
		lateCommit <- answer{code, err}
	}()
	info, err := c.WaitPartition(ctx, "__consumer_offsets", offsetsPart, func(p kafkatest.PartitionInfo) bool {
		return p.Leader >= 0 && p.Leader != old
	})
	if err != nil {
		t.Fatal(err)
	}
	next := info.Leader
	select {
	case a := <-lateCommit:
		if a.err == nil && a.code == 0 {
			t.Fatalf("the isolated coordinator %d acknowledged a commit its ISR never had", old)
		}
		t.Logf("commit to the isolated coordinator: code %d, %v", a.code, a.err)
		lateCommit <- a
	default:
	}

	// The new coordinator has loaded what was persisted: offset 42, generation 1.
	var fetched int64
	testkit.WaitFor(t, 20*time.Second, "the new coordinator to serve the group", func() bool {
		off, code := w.fetch(ctx, next, topic)
		fetched = off
		return code == 0
	})
	if fetched != 42 {
		t.Fatalf("new coordinator %d: committed offset %d, want 42", next, fetched)
	}
	// The member rejoins: the next generation after the persisted one.
	if _, gen2, code := w.join(ctx, next, member); code != 0 || gen2 != gen+1 {
		t.Fatalf("rejoin on the new coordinator %d: generation %d, code %d; want %d, 0", next, gen2, code, gen+1)
	}

	if err := c.Heal(old); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-lateCommit:
		if a.err == nil && a.code == 0 {
			t.Fatalf("the healed coordinator %d acknowledged a commit made while it was cut off", old)
		}
	case <-ctx.Done():
		t.Fatal("the commit to the healed coordinator never got an answer")
	}
	// Once the old coordinator follows again, it has truncated the commit of 99 and
	// serves nothing; the new one still serves 42.
	testkit.WaitFor(t, 20*time.Second, "the old coordinator to rejoin the ISR", func() bool {
		p, err := c.Partition("__consumer_offsets", offsetsPart)
		return err == nil && slices.Contains(p.ISR, old)
	})
	if _, code := w.fetch(ctx, old, topic); code != kerr.NotCoordinator.Code {
		t.Fatalf("OffsetFetch from the old coordinator %d after the heal: code %d, want NOT_COORDINATOR", old, code)
	}
	if off, code := w.fetch(ctx, next, topic); code != 0 || off != 42 {
		t.Fatalf("new coordinator %d after the heal: offset %d, code %d; want 42", next, off, code)
	}
}

// A group coordinator cut off from the controller only still replicates: the commits it
// acknowledges are in its ISR, so the coordinator the controller elects when it fences the old
// one serves the last acknowledged offset or a later one that was attempted (a commit that got no
// answer may have been written), never an older one, and the next rebalance continues from the
// persisted generation. Once reconnected, the old coordinator is no coordinator any more.
func TestGroupCoordinatorCutFromTheControllerKeepsAcknowledgedCommits(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const topic = "events"
	f := newGroupOnFailoverCluster(t, ctx, "controller-cut-coordinator")
	c, w, offsetsPart, old, member, gen := f.c, f.w, f.offsetsPart, f.old, f.member, f.gen

	if err := c.CutController(old); err != nil {
		t.Fatal(err)
	}
	// Commit 1, 2, 3, ... to the old coordinator, every 10 ms, until 500 ms after the controller
	// moved the offsets partition (the brokers learn it a little later); each commit gets 300 ms
	// (one that times out is indeterminate).
	var acked, attempted int64 = -1, 0
	var next int32 = -1
	var movedAt time.Time
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for movedAt.IsZero() || time.Since(movedAt) < 500*time.Millisecond {
		select {
		case <-ctx.Done():
			t.Fatal("the controller never moved the offsets partition off the cut-off coordinator")
		case <-tick.C:
		}
		if p, err := c.Partition("__consumer_offsets", offsetsPart); movedAt.IsZero() && err == nil && p.Leader >= 0 && p.Leader != old {
			next, movedAt = p.Leader, time.Now()
		}
		attempted++
		cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
		code, err := w.commit(cctx, old, topic, member, gen, attempted)
		ccancel()
		if err == nil && code == 0 {
			acked = attempted
		}
	}
	if acked < 1 {
		t.Fatalf("the coordinator cut from the controller only acknowledged no commit of %d (it still replicates)", attempted)
	}
	t.Logf("coordinator %d acknowledged commits up to %d of %d; broker %d took over", old, acked, attempted, next)

	var fetched int64
	testkit.WaitFor(t, 20*time.Second, "the new coordinator to serve the group", func() bool {
		off, code := w.fetch(ctx, next, topic)
		fetched = off
		return code == 0
	})
	if fetched < acked || fetched > attempted {
		t.Fatalf("new coordinator %d: committed offset %d; want the acknowledged %d or a later attempt up to %d", next, fetched, acked, attempted)
	}
	if _, gen2, code := w.join(ctx, next, member); code != 0 || gen2 != gen+1 {
		t.Fatalf("rejoin on the new coordinator %d: generation %d, code %d; want %d, 0", next, gen2, code, gen+1)
	}

	if err := c.ReconnectController(old); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "the old coordinator to step down", func() bool {
		_, code := w.fetch(ctx, old, topic)
		return code == kerr.NotCoordinator.Code
	})
	if off, code := w.fetch(ctx, next, topic); code != 0 || off != fetched {
		t.Fatalf("new coordinator %d after the reconnect: offset %d, code %d; want %d", next, off, code, fetched)
	}
}
