package cluster_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// The tests below drive each fault kind through the control API, on more than one broker where
// the fault allows it, and check what the brokers do, not what the API answers.

// post calls a control route that must succeed.
func post(t *testing.T, srv *httptest.Server, path string) {
	t.Helper()
	if r := call(t, srv, "POST", path); r.code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, r.code, r.body)
	}
}

// brokerState returns broker id as GET /cluster reports it.
func brokerState(t *testing.T, srv *httptest.Server, id int32) cluster.BrokerInfo {
	t.Helper()
	got := decode[struct {
		Brokers []cluster.BrokerInfo `json:"brokers"`
	}](t, call(t, srv, "GET", "/cluster"))
	return got.Brokers[id]
}

// dial connects to broker id as a client.
func dial(t *testing.T, c *cluster.Cluster, id int32) *wire.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, nil, c.Bootstrap()[id], "edge-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// metadata asks broker id for the cluster's metadata, as any client does first.
func metadata(ctx context.Context, cl *wire.Client) error {
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(9)
	_, err := cl.Request(ctx, req)
	return err
}

// leo is broker id's log end offset of topic/p.
func leo(t *testing.T, c *cluster.Cluster, id int32, topic string, p int32) int64 {
	t.Helper()
	info, err := c.ReplicaState(id, topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return info.LEO
}

func isr(t *testing.T, c *cluster.Cluster, topic string, p int32) []int32 {
	t.Helper()
	info, err := c.Partition(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return info.ISR
}

func others(n int, not int32) []int32 {
	var out []int32
	for id := range int32(n) {
		if id != not {
			out = append(out, id)
		}
	}
	return out
}

// faultFollowers starts 3 brokers with a topic replicated on all, applies a fault (a control
// action) to both followers of its partition, and waits until the controller has fenced them
// and shrunk the ISR to the leader.
func faultFollowers(t *testing.T, topic, action string) (c *cluster.Cluster, srv *httptest.Server, leader int32, followers []int32) {
	t.Helper()
	c = startCluster(t, 3)
	createTopic(t, c, topic, 1, 3)
	srv = httptest.NewServer(c.ControlHandler())
	t.Cleanup(srv.Close)
	info, _ := c.Partition(topic, 0)
	leader, followers = info.Leader, others(3, info.Leader)
	for _, f := range followers {
		post(t, srv, "/brokers/"+itoa(f)+"/"+action)
	}
	testkit.WaitFor(t, 20*time.Second, "the followers fenced and out of the ISR", func() bool {
		return slices.Equal(isr(t, c, topic, 0), []int32{leader}) && brokerState(t, srv, followers[0]).Fenced && brokerState(t, srv, followers[1]).Fenced
	})
	return c, srv, leader, followers
}

func TestEdgeIsolatingTwoFollowersFencesThemWhileClientsStillReachThem(t *testing.T) {
	t.Parallel()
	c, srv, leader, followers := faultFollowers(t, "iso", "isolate")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p := produceRecord(ctx, t, dial(t, c, leader), "iso", 0, 1, "alone", 5*time.Second); p.ErrorCode != 0 {
		t.Fatalf("acks=1 produce to the leader: error %d", p.ErrorCode)
	}
	for _, f := range followers {
		if err := metadata(ctx, dial(t, c, f)); err != nil {
			t.Fatalf("a client cannot reach isolated broker %d: %v", f, err)
		}
		if got := leo(t, c, f, "iso", 0); got != 0 {
			t.Fatalf("isolated broker %d copied the leader's record: LEO %d", f, got)
		}
	}

	for _, f := range followers {
		post(t, srv, "/brokers/"+itoa(f)+"/heal")
	}
	testkit.WaitFor(t, 20*time.Second, "the healed followers back in the ISR with the record", func() bool {
		return len(isr(t, c, "iso", 0)) == 3 && leo(t, c, followers[0], "iso", 0) == 1 && leo(t, c, followers[1], "iso", 0) == 1
	})
}

func TestEdgeOneWayCutStopsOnlyTheCutDirection(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	// Broker 0 follows 1 (partition 0) and 2 (partition 1), and leads partition 2, which 1 and 2
	// follow.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := server.TopicSpec{Name: "oneway", Assignment: map[int32][]int32{0: {1, 0}, 1: {2, 0}, 2: {0, 1, 2}}}
	if errs := c.Controller().CreateTopics(ctx, []server.TopicSpec{spec}, false); errs[0] != nil {
		t.Fatal(errs[0])
	}
	for p := range int32(3) {
		want := len(spec.Assignment[p])
		testkit.WaitFor(t, 20*time.Second, "each partition of oneway to have its ISR", func() bool {
			info, err := c.Partition("oneway", p)
			return err == nil && info.HW >= 0 && len(info.ISR) == want
		})
	}
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}

	post(t, srv, "/brokers/0/cut-link?to=1,2")
	if got := decode[struct {
		Links []cluster.Link `json:"cut_links"`
	}](t, call(t, srv, "GET", "/cluster")).Links; !slices.Equal(got, []cluster.Link{{From: 0, To: 1}, {From: 0, To: 2}}) {
		t.Fatalf("cut_links = %v", got)
	}
	for p, leader := range []int32{1, 2, 0} {
		if r := produceRecord(ctx, t, dial(t, c, leader), "oneway", int32(p), 1, "x", 5*time.Second); r.ErrorCode != 0 {
			t.Fatalf("produce to partition %d: error %d", p, r.ErrorCode)
		}
	}
	// 0 cannot fetch from 1 or 2: it drops out of their ISRs without the record; 1 and 2 still
	// fetch from 0 and copy its record.
	testkit.WaitFor(t, 20*time.Second, "broker 0 out of the ISRs of partitions 0 and 1, and brokers 1 and 2 to copy partition 2's record", func() bool {
		return slices.Equal(isr(t, c, "oneway", 0), []int32{1}) && slices.Equal(isr(t, c, "oneway", 1), []int32{2}) &&
			leo(t, c, 1, "oneway", 2) == 1 && leo(t, c, 2, "oneway", 2) == 1
	})
	if a, b := leo(t, c, 0, "oneway", 0), leo(t, c, 0, "oneway", 1); a != 0 || b != 0 {
		t.Fatalf("broker 0 copied records over cut links: LEOs %d, %d", a, b)
	}
	if got := isr(t, c, "oneway", 2); len(got) != 3 {
		t.Fatalf("partition 2 (led by 0) ISR %v: its followers reach it and must stay", got)
	}

	post(t, srv, "/brokers/0/heal-link?to=1,2")
	testkit.WaitFor(t, 20*time.Second, "the healed links to restore the ISRs of partitions 0 and 1", func() bool {
		return len(isr(t, c, "oneway", 0)) == 2 && len(isr(t, c, "oneway", 1)) == 2 &&
			leo(t, c, 0, "oneway", 0) == 1 && leo(t, c, 0, "oneway", 1) == 1
	})
}

func TestEdgeControllerCutFencesABrokerThatStillReplicates(t *testing.T) {
	t.Parallel()
	c, srv, leader, cut := faultFollowers(t, "cc", "cut-controller")
	if b := brokerState(t, srv, cut[0]); !b.ControllerCut || b.Isolated {
		t.Fatalf("GET /cluster: %+v, want controller_cut only", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p := produceRecord(ctx, t, dial(t, c, leader), "cc", 0, 1, "x", 5*time.Second); p.ErrorCode != 0 {
		t.Fatalf("produce: error %d", p.ErrorCode)
	}
	// Fenced, yet still linked to the leader: both copy the record.
	testkit.WaitFor(t, 20*time.Second, "the brokers cut from the controller to replicate the record", func() bool { return leo(t, c, cut[0], "cc", 0) == 1 && leo(t, c, cut[1], "cc", 0) == 1 })
	if len(isr(t, c, "cc", 0)) != 1 {
		t.Fatal("a fenced broker joined the ISR")
	}

	for _, f := range cut {
		post(t, srv, "/brokers/"+itoa(f)+"/reconnect-controller")
	}
	testkit.WaitFor(t, 20*time.Second, "the reconnected brokers unfenced and back in the ISR", func() bool {
		return len(isr(t, c, "cc", 0)) == 3 && !brokerState(t, srv, cut[0]).Fenced && !brokerState(t, srv, cut[1]).Fenced
	})
}

func TestEdgeLatencyDelaysEveryRoundTripThroughTheSlowBrokers(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	createTopic(t, c, "lat", 3, 1)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	const latency = 300 * time.Millisecond
	slow := []int32{0, 2}
	for _, id := range slow {
		post(t, srv, "/brokers/"+itoa(id)+"/latency?latency=300ms&jitter=50ms")
	}
	if b := brokerState(t, srv, 2); b.LatencyMs != 300 || b.JitterMs != 50 {
		t.Fatalf("GET /cluster: %+v", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for p := range int32(3) {
		info, _ := c.Partition("lat", p)
		if !slices.Contains(slow, info.Leader) {
			continue
		}
		cl := dial(t, c, info.Leader)
		start := time.Now()
		if r := produceRecord(ctx, t, cl, "lat", p, -1, "x", 5*time.Second); r.ErrorCode != 0 {
			t.Fatalf("produce: error %d", r.ErrorCode)
		}
		if took := time.Since(start); took < latency {
			t.Errorf("a produce round trip to broker %d took %v, less than its added latency %v", info.Leader, took, latency)
		}
	}
	post(t, srv, "/brokers/0/latency?latency=0")
	if b := brokerState(t, srv, 0); b.LatencyMs != 0 || b.JitterMs != 0 {
		t.Fatalf("latency=0 must remove it: %+v", b)
	}
}

// A controller-only latency on a leader keeps a caught-up follower's ISR join pending for at least
// the latency (the AlterISR travels the slow link), while the leader still answers clients at
// full speed: the fault that lets a pending ISR change overlap a crash.
func TestEdgeControllerLatencyKeepsAnISRJoinPendingButNotClients(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	createTopic(t, c, "ctl-lat", 1, 3)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	info, _ := c.Partition("ctl-lat", 0)
	leader, follower := info.Leader, others(3, info.Leader)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := dial(t, c, leader)

	post(t, srv, "/brokers/"+itoa(follower)+"/pause-replication")
	if r := produceRecord(ctx, t, cl, "ctl-lat", 0, 1, "behind", 5*time.Second); r.ErrorCode != 0 {
		t.Fatalf("produce: error %d", r.ErrorCode)
	}
	testkit.WaitFor(t, 20*time.Second, "the stalled follower to leave the ISR", func() bool { return !slices.Contains(isr(t, c, "ctl-lat", 0), follower) })

	const latency = 400 * time.Millisecond
	post(t, srv, "/brokers/"+itoa(leader)+"/controller-latency?latency=400ms&jitter=20ms")
	if b := brokerState(t, srv, leader); b.ControllerLatencyMs != 400 || b.ControllerJitterMs != 20 || b.LatencyMs != 0 {
		t.Fatalf("GET /cluster: %+v", b)
	}
	start := time.Now()
	if r := produceRecord(ctx, t, cl, "ctl-lat", 0, 1, "fast", 5*time.Second); r.ErrorCode != 0 {
		t.Fatalf("produce: error %d", r.ErrorCode)
	}
	if took := time.Since(start); took >= latency {
		t.Errorf("a produce to the leader took %v: a controller-only latency of %v slowed a client", took, latency)
	}
	post(t, srv, "/brokers/"+itoa(follower)+"/resume-replication")
	var caughtUp time.Time
	testkit.WaitFor(t, 20*time.Second, "the follower to catch up", func() bool {
		caughtUp = time.Now()
		return leo(t, c, follower, "ctl-lat", 0) == leo(t, c, leader, "ctl-lat", 0)
	})
	testkit.WaitFor(t, 20*time.Second, "the follower to rejoin the ISR", func() bool { return slices.Contains(isr(t, c, "ctl-lat", 0), follower) })
	// The leader proposes the join after the follower's next fetch shows it caught up: the
	// controller commits it at least the latency later.
	if pending := time.Since(caughtUp); pending < latency {
		t.Errorf("the join committed %v after the follower caught up, less than the controller latency %v", pending, latency)
	}
	post(t, srv, "/brokers/"+itoa(leader)+"/controller-latency?latency=0")
	if b := brokerState(t, srv, leader); b.ControllerLatencyMs != 0 || b.ControllerJitterMs != 0 {
		t.Fatalf("latency=0 must remove it: %+v", b)
	}
}

func TestEdgePausedLeaderLosesLeadershipAndRejoinsOnResume(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	createTopic(t, c, "frozen", 1, 3)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	info, _ := c.Partition("frozen", 0)
	leader := info.Leader
	cl := dial(t, c, leader) // connected before the pause: held, not closed

	post(t, srv, "/brokers/"+itoa(leader)+"/pause")
	answered := make(chan time.Time, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := metadata(ctx, cl); err == nil {
			answered <- time.Now()
		}
		close(answered)
	}()
	// Its heartbeats stop: the controller fences it and another replica leads.
	testkit.WaitFor(t, 20*time.Second, "another leader elected and the frozen one fenced out of the ISR", func() bool {
		info, _ := c.Partition("frozen", 0)
		return info.Leader >= 0 && info.Leader != leader && !slices.Contains(info.ISR, leader) && brokerState(t, srv, leader).Fenced
	})
	if !brokerState(t, srv, leader).Frozen {
		t.Fatal("GET /cluster does not show the broker paused")
	}
	select {
	case <-answered:
		t.Fatal("a paused broker answered a request")
	default:
	}

	resumed := time.Now()
	post(t, srv, "/brokers/"+itoa(leader)+"/resume")
	select {
	case at, ok := <-answered:
		if !ok {
			t.Fatal("the request sent while the broker was paused failed: its connection must be held")
		}
		if at.Before(resumed) {
			t.Fatal("the request was answered before the broker resumed")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the request sent while the broker was paused got no answer after it resumed")
	}
	testkit.WaitFor(t, 20*time.Second, "the thawed broker unfenced and back in the ISR", func() bool {
		return slices.Contains(isr(t, c, "frozen", 0), leader) && !brokerState(t, srv, leader).Fenced
	})
}

func TestEdgeRoutesRefuseBadParameters(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	for path, code := range map[string]int{
		"/brokers/0/cut-link":                        http.StatusBadRequest,
		"/brokers/0/cut-link?to=x":                   http.StatusBadRequest,
		"/brokers/0/cut-link?to=7":                   http.StatusNotFound,
		"/brokers/0/cut-link?to=0":                   http.StatusConflict,
		"/brokers/0/latency?latency=soon":            http.StatusBadRequest,
		"/brokers/0/latency?jitter=-1s":              http.StatusBadRequest,
		"/brokers/0/controller-latency?latency=soon": http.StatusBadRequest,
		"/brokers/9/controller-latency?latency=1s":   http.StatusNotFound,
		"/brokers/9/pause":                           http.StatusNotFound,
		"/brokers/1/reconnect-controller?x=1":        http.StatusOK,
	} {
		expectCode(t, srv, "POST", path, code)
	}
}

// A produce request for several partitions loses only the armed one to the listener: the others
// are appended and answered by the broker, in one answer, whether topics go by name or by id
// (produce v13), and the requests pipelined behind it on the connection are answered after it.
func TestEdgeFailProduceRefusesOnlyTheArmedPartitionOfARequest(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	createTopic(t, c, "two", 2, 1)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	topicID := c.Controller().Image().Topic("two").ID
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := dial(t, c, 0)
	for i, version := range []int16{9, 13} {
		post(t, srv, "/partitions/two/1/fail-produce?count=1&error=NOT_ENOUGH_REPLICAS&delay=20ms")
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(version)
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		if version >= 13 {
			rt.TopicID = topicID
		} else {
			rt.Topic = "two"
		}
		for p := range int32(2) {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = p
			rp.Records = records.Build([]records.Record{{Value: []byte("v")}}, time.Now().UnixMilli(), records.NoProducer)
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := cl.Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		got := resp.(*kmsg.ProduceResponse).Topics
		if len(got) != 1 || len(got[0].Partitions) != 2 {
			t.Fatalf("v%d answer %+v, want one topic with both partitions", version, got)
		}
		p0, p1 := got[0].Partitions[0], got[0].Partitions[1]
		if p0.Partition != 0 || p0.ErrorCode != 0 || p0.BaseOffset != int64(i) {
			t.Fatalf("v%d partition 0: %+v, want appended at %d", version, p0, i)
		}
		if p1.Partition != 1 || p1.ErrorCode != kerr.NotEnoughReplicas.Code || p1.BaseOffset != -1 {
			t.Fatalf("v%d partition 1: %+v, want NOT_ENOUGH_REPLICAS", version, p1)
		}
		if got := leo(t, c, 0, "two", 1); got != 0 {
			t.Fatalf("v%d: the refused batch was appended (LEO %d)", version, got)
		}
	}
	// Disarmed, both are appended again.
	if p := produceRecord(ctx, t, cl, "two", 1, -1, "v", 5*time.Second); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("after the fault: %+v", p)
	}
}

// A paused broker can still be killed (a stopped process dies too) and restarted, and comes back
// without the pause; a cluster with a paused broker closes.
func TestEdgePausedBrokerCanBeKilledRestartedAndClosed(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	post(t, srv, "/brokers/1/pause")
	post(t, srv, "/brokers/1/kill")
	if b := brokerState(t, srv, 1); b.Alive || b.Frozen {
		t.Fatalf("killed paused broker: %+v", b)
	}
	post(t, srv, "/brokers/1/restart")
	testkit.WaitFor(t, 20*time.Second, "broker 1 alive, unfenced and thawed", func() bool { b := brokerState(t, srv, 1); return b.Alive && !b.Fenced && !b.Frozen })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := metadata(ctx, dial(t, c, 1)); err != nil {
		t.Fatalf("restarted broker does not answer: %v", err)
	}

	// Closing the cluster does not wait for a paused broker to resume.
	post(t, srv, "/brokers/0/pause")
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a paused broker")
	}
}
