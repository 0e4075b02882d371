package cluster_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// startCluster starts an in-process cluster with short timeouts and closes it when the test ends.
func startCluster(t *testing.T, brokers int) *cluster.Cluster {
	t.Helper()
	return startClusterWith(t, brokers, func(*cluster.Config) {})
}

// startClusterWith is startCluster with the configuration changed by mod.
func startClusterWith(t *testing.T, brokers int, mod func(*cluster.Config)) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := cluster.Config{
		Brokers:             brokers,
		DataDir:             t.TempDir(),
		SessionTimeout:      time.Second,
		ReplicaLagMax:       time.Second,
		ReplicaFetchMaxWait: 50 * time.Millisecond,
	}
	mod(&cfg)
	c, err := cluster.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// createTopic creates a topic over the Kafka protocol and waits until every partition has a
// leader that has opened its replica, with a full ISR.
func createTopic(t *testing.T, c *cluster.Cluster, name string, partitions int32, rf int16) {
	t.Helper()
	createTopicVia(t, c, nil, name, partitions, rf)
}

// createTopicVia is createTopic over connections from dialer (nil: plain TCP).
func createTopicVia(t *testing.T, c *cluster.Cluster, dialer wire.Dialer, name string, partitions int32, rf int16) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, dialer, c.Bootstrap()[0], "cluster-test")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(5)
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, rf
	req.Topics = append(req.Topics, rt)
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	for p := int32(0); p < partitions; p++ {
		testkit.WaitFor(t, 20*time.Second, "every partition of "+name+" to have a leader and a full ISR", func() bool {
			info, err := c.Partition(name, p)
			return err == nil && info.Leader >= 0 && info.HW >= 0 && len(info.ISR) == int(rf)
		})
	}
}

type result struct {
	code int
	body string
}

func call(t *testing.T, srv *httptest.Server, method, path string) result {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return result{resp.StatusCode, strings.TrimSpace(string(b))}
}

// expectCode calls a control route and checks its status code.
func expectCode(t *testing.T, srv *httptest.Server, method, path string, want int) {
	t.Helper()
	if r := call(t, srv, method, path); r.code != want {
		t.Errorf("%s %s: %d %s, want %d", method, path, r.code, r.body, want)
	}
}

func decode[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return v
}

func TestControlClusterListsEveryBrokerWithItsAddress(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()

	r := call(t, srv, "GET", "/cluster")
	if r.code != http.StatusOK {
		t.Fatalf("GET /cluster: %d %s", r.code, r.body)
	}
	got := decode[struct {
		Brokers []cluster.BrokerInfo `json:"brokers"`
	}](t, r)
	boot := c.Bootstrap()
	if len(got.Brokers) != 3 {
		t.Fatalf("GET /cluster listed %d brokers, want 3: %s", len(got.Brokers), r.body)
	}
	for i, b := range got.Brokers {
		want := cluster.BrokerInfo{ID: int32(i), Address: boot[i], Alive: true}
		if b != want {
			t.Errorf("broker %d: got %+v, want %+v", i, b, want)
		}
	}
	// The field names are the API: check them literally once.
	for _, field := range []string{`"id":0`, `"address":"` + boot[0] + `"`, `"alive":true`, `"fenced":false`, `"isolated":false`, `"replication_paused":false`} {
		if !strings.Contains(r.body, field) {
			t.Errorf("GET /cluster body %s lacks %s", r.body, field)
		}
	}
}

func TestControlPartitionEndpointsReportStateAndRefuseBadPaths(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	createTopic(t, c, "t", 2, 3)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()

	r := call(t, srv, "GET", "/partitions/t/1")
	if r.code != http.StatusOK {
		t.Fatalf("GET /partitions/t/1: %d %s", r.code, r.body)
	}
	info := decode[cluster.PartitionInfo](t, r)
	if info.Leader < 0 || !slices.Contains(info.Replicas, info.Leader) || len(info.ISR) != 3 || len(info.Replicas) != 3 || info.HW != 0 {
		t.Fatalf("GET /partitions/t/1 = %+v, want a leader among 3 replicas, ISR of 3 and HW 0", info)
	}
	for _, field := range []string{`"leader":`, `"isr":[`, `"replicas":[`, `"hw":0`, `"leader_epoch":`} {
		if !strings.Contains(r.body, field) {
			t.Errorf("body %s lacks %s", r.body, field)
		}
	}

	r = call(t, srv, "GET", "/brokers/"+itoa(info.Leader)+"/partitions/t/1")
	if r.code != http.StatusOK {
		t.Fatalf("replica state: %d %s", r.code, r.body)
	}
	rep := decode[cluster.ReplicaInfo](t, r)
	if rep.Leader != info.Leader || rep.LEO != 0 || rep.HW != 0 || rep.LeaderEpoch != info.LeaderEpoch {
		t.Fatalf("leader's replica = %+v, want leader %d, LEO 0, HW 0, epoch %d", rep, info.Leader, info.LeaderEpoch)
	}

	tests := []struct {
		name, method, path string
		code               int
		errHas             string
	}{
		{"unknown topic", "GET", "/partitions/nope/0", http.StatusNotFound, "unknown topic or partition"},
		{"partition out of range", "GET", "/partitions/t/2", http.StatusNotFound, "unknown topic or partition"},
		{"negative partition", "GET", "/partitions/t/-1", http.StatusNotFound, "unknown topic or partition"},
		{"partition not a number", "GET", "/partitions/t/x", http.StatusBadRequest, "partition must be an integer"},
		{"partition overflows int32", "GET", "/partitions/t/4294967296", http.StatusBadRequest, "partition must be an integer"},
		{"replica of unknown broker", "GET", "/brokers/9/partitions/t/0", http.StatusNotFound, "unknown broker"},
		{"replica of unknown partition", "GET", "/brokers/0/partitions/nope/0", http.StatusNotFound, "no replica"},
		{"replica broker not a number", "GET", "/brokers/x/partitions/t/0", http.StatusBadRequest, "broker id must be an integer"},
		{"replica partition not a number", "GET", "/brokers/0/partitions/t/x", http.StatusBadRequest, "partition must be an integer"},
		{"POST on a GET path", "POST", "/cluster", http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call2(t, srv, tt.method, tt.path)
			if r.code != tt.code {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, r.code, r.body, tt.code)
			}
			if tt.errHas != "" {
				e := decode[struct {
					Error string `json:"error"`
				}](t, r)
				if !strings.Contains(e.Error, tt.errHas) {
					t.Fatalf("%s %s: error %q, want it to mention %q", tt.method, tt.path, e.Error, tt.errHas)
				}
			}
		})
	}
}

// call2 is call without the Content-Type check, for paths the mux itself refuses.
func call2(t *testing.T, srv *httptest.Server, method, path string) result {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, strings.TrimSpace(string(b))}
}

func itoa(id int32) string { return strconv.Itoa(int(id)) }

func TestControlFaultActionsAnswerByBrokerState(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()

	// Each step runs in order on the same cluster: the state a step leaves is the next one's input.
	steps := []struct {
		path string
		code int
	}{
		{"/brokers/9/kill", http.StatusNotFound},
		{"/brokers/-1/kill", http.StatusNotFound},
		{"/brokers/x/kill", http.StatusBadRequest},
		{"/brokers/1/explode", http.StatusNotFound},
		{"/brokers/1/restart", http.StatusConflict}, // running
		{"/brokers/1/kill", http.StatusOK},
		{"/brokers/1/kill", http.StatusConflict}, // already dead
		{"/brokers/1/isolate", http.StatusConflict},
		{"/brokers/1/heal", http.StatusConflict},
		{"/brokers/1/pause-replication", http.StatusConflict},
		{"/brokers/1/resume-replication", http.StatusConflict},
		{"/brokers/1/restart", http.StatusOK},
		{"/brokers/2/isolate", http.StatusOK},
		{"/brokers/2/heal", http.StatusOK},
		{"/brokers/0/pause-replication", http.StatusOK},
		{"/brokers/0/resume-replication", http.StatusOK},
	}
	for _, s := range steps {
		r := call(t, srv, "POST", s.path)
		if r.code != s.code {
			t.Fatalf("POST %s: %d %s, want %d", s.path, r.code, r.body, s.code)
		}
		if s.code == http.StatusOK {
			action := s.path[strings.LastIndexByte(s.path, '/')+1:]
			if !strings.Contains(r.body, `"ok":true`) || !strings.Contains(r.body, `"action":"`+action+`"`) {
				t.Fatalf("POST %s: body %s, want ok and action %s", s.path, r.body, action)
			}
		} else if !strings.HasPrefix(r.body, `{"error":"`) {
			t.Fatalf("POST %s: body %s, want {\"error\":...}", s.path, r.body)
		}
	}
}

func TestControlShowsFaultsInClusterState(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	brokers := func() []cluster.BrokerInfo {
		return decode[struct {
			Brokers []cluster.BrokerInfo `json:"brokers"`
		}](t, call(t, srv, "GET", "/cluster")).Brokers
	}
	for _, p := range []string{"/brokers/0/kill", "/brokers/1/isolate", "/brokers/2/pause-replication"} {
		if r := call(t, srv, "POST", p); r.code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", p, r.code, r.body)
		}
	}
	bs := brokers()
	if bs[0].Alive || !bs[1].Alive || !bs[1].Isolated || !bs[2].Paused || bs[2].Isolated {
		t.Fatalf("after kill 0, isolate 1, pause 2: %+v", bs)
	}
	// The controller fences the killed and the isolated broker once their sessions time out.
	testkit.WaitFor(t, 20*time.Second, "brokers 0 and 1 fenced, broker 2 not", func() bool { bs := brokers(); return bs[0].Fenced && bs[1].Fenced && !bs[2].Fenced })

	for _, p := range []string{"/brokers/0/restart", "/brokers/1/heal", "/brokers/2/resume-replication"} {
		if r := call(t, srv, "POST", p); r.code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", p, r.code, r.body)
		}
	}
	testkit.WaitFor(t, 20*time.Second, "every broker alive, unfenced, connected and unpaused", func() bool {
		for _, b := range brokers() {
			if !b.Alive || b.Fenced || b.Isolated || b.Paused {
				return false
			}
		}
		return true
	})
}

func TestControlReplicaOfDeadBrokerIsConflict(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	createTopic(t, c, "t", 1, 2)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	if r := call(t, srv, "POST", "/brokers/1/kill"); r.code != http.StatusOK {
		t.Fatalf("kill: %d %s", r.code, r.body)
	}
	if r := call(t, srv, "GET", "/brokers/1/partitions/t/0"); r.code != http.StatusConflict {
		t.Fatalf("replica of a dead broker: %d %s, want 409", r.code, r.body)
	}
}

// produceOne produces one record with acks=all to partition 0 of topic and returns the answer.
func produceOne(ctx context.Context, t *testing.T, cl *wire.Client, topic string) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	return produceRecord(ctx, t, cl, topic, 0, -1, "v", 5*time.Second)
}

// produceRecord produces one record with the given acks to a partition of topic, waiting at most
// timeout for acks=all, and returns the answer.
func produceRecord(ctx context.Context, t *testing.T, cl *wire.Client, topic string, p int32, acks int16, value string, timeout time.Duration) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = acks, int32(timeout.Milliseconds())
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = p
	rp.Records = records.Build([]records.Record{{Value: []byte(value)}}, time.Now().UnixMilli(), records.NoProducer)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

func TestControlFailProduceRefusesTheNextProducesWithoutAppending(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	createTopic(t, c, "refused", 1, 1)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()

	for path, want := range map[string]int{
		"/partitions/refused/0/fail-produce?error=NO_SUCH_ERROR": http.StatusBadRequest,
		"/partitions/refused/0/fail-produce?count=-1":            http.StatusBadRequest,
		"/partitions/refused/0/fail-produce?delay=soon":          http.StatusBadRequest,
		"/partitions/refused/x/fail-produce":                     http.StatusBadRequest,
		"/partitions/missing/0/fail-produce":                     http.StatusNotFound,
	} {
		expectCode(t, srv, "POST", path, want)
	}
	r := call(t, srv, "POST", "/partitions/refused/0/fail-produce?count=2&error=NOT_ENOUGH_REPLICAS&delay=10ms")
	if r.code != http.StatusOK {
		t.Fatalf("fail-produce: %d %s", r.code, r.body)
	}
	got := decode[map[string]any](t, r)
	if got["error"] != "NOT_ENOUGH_REPLICAS" || got["count"] != float64(2) || got["broker"] != float64(0) {
		t.Fatalf("fail-produce answered %s", r.body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, nil, c.Bootstrap()[0], "cluster-test")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func() kmsg.ProduceResponseTopicPartition { return produceOne(ctx, t, cl, "refused") }
	for i := range 2 {
		if p := produce(); p.ErrorCode != kerr.NotEnoughReplicas.Code || p.BaseOffset != -1 {
			t.Fatalf("produce %d under the fault: code %d offset %d, want NOT_ENOUGH_REPLICAS", i, p.ErrorCode, p.BaseOffset)
		}
	}
	if info, err := c.ReplicaState(0, "refused", 0); err != nil || info.LEO != 0 {
		t.Fatalf("after refused produces: %+v, %v; want nothing appended", info, err)
	}
	if p := produce(); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("produce after the fault: code %d offset %d, want offset 0", p.ErrorCode, p.BaseOffset)
	}
}
