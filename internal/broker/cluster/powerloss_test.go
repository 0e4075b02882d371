package cluster_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// TestControlPowerLossCutsWhatWasNotFsyncedAndRestartBringsTheBrokerBack: a kill keeps what the
// broker wrote (the OS has it), a power loss takes what was never fsynced, even when the writes
// were made before an earlier kill and restart; the route answers 400/404 for bad ids.
func TestControlPowerLossCutsWhatWasNotFsyncedAndRestartBringsTheBrokerBack(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	createTopic(t, c, "pl", 1, 1)
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cl, err := wire.Dial(ctx, nil, c.Bootstrap()[0], "cluster-test")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if p := produceOne(ctx, t, cl, "pl"); p.ErrorCode != 0 {
			t.Fatalf("produce: code %d", p.ErrorCode)
		}
	}
	cl.Close()

	for path, want := range map[string]int{"/brokers/x/power-loss": http.StatusBadRequest, "/brokers/9/power-loss": http.StatusNotFound} {
		if r := call(t, srv, "POST", path); r.code != want {
			t.Fatalf("POST %s: %d %s, want %d", path, r.code, r.body, want)
		}
	}
	leo := func() int64 {
		t.Helper()
		var info cluster.ReplicaInfo
		testkit.WaitFor(t, 20*time.Second, "broker 0's replica of pl", func() bool {
			info, err = c.ReplicaState(0, "pl", 0)
			return err == nil
		})
		return info.LEO
	}
	steps := []struct {
		path string
		code int
	}{
		{"/brokers/0/kill", http.StatusOK},
		{"/brokers/0/restart", http.StatusOK},
	}
	for _, s := range steps {
		if r := call(t, srv, "POST", s.path); r.code != s.code {
			t.Fatalf("POST %s: %d %s, want %d", s.path, r.code, r.body, s.code)
		}
	}
	if got := leo(); got != 3 {
		t.Fatalf("after kill and restart the log ends at %d, want 3 (a kill loses nothing the OS has)", got)
	}
	r := call(t, srv, "POST", "/brokers/0/power-loss")
	if r.code != http.StatusOK || !strings.Contains(r.body, `"action":"power-loss"`) {
		t.Fatalf("POST power-loss: %d %s", r.code, r.body)
	}
	if bs := c.Brokers(); bs[0].Alive {
		t.Fatalf("broker 0 still alive after a power loss: %+v", bs[0])
	}
	if r := call(t, srv, "POST", "/brokers/0/restart"); r.code != http.StatusOK {
		t.Fatalf("restart after the power loss: %d %s", r.code, r.body)
	}
	if got := leo(); got != 0 {
		t.Fatalf("after a power loss the log ends at %d, want 0 (nothing was fsynced)", got)
	}
}

// TestRestartedReplicaStartsFromItsCheckpointedHighWatermark: a broker writes its replicas' high
// watermarks to replication-offset-checkpoint and, restarted, starts each replica from it,
// before it has heard from any leader (here the leader is dead and the partition offline).
func TestRestartedReplicaStartsFromItsCheckpointedHighWatermark(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	c, err := cluster.Start(ctx, cluster.Config{
		Brokers: 2, DataDir: dir, SessionTimeout: time.Second, ReplicaLagMax: time.Second,
		ReplicaFetchMaxWait: 50 * time.Millisecond, HWCheckpointInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	createTopic(t, c, "hw", 1, 2)
	info, err := c.Partition("hw", 0)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := wire.Dial(ctx, nil, c.Bootstrap()[info.Leader], "cluster-test")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if p := produceOne(ctx, t, cl, "hw"); p.ErrorCode != 0 {
			t.Fatalf("produce: code %d", p.ErrorCode)
		}
	}
	cl.Close()
	follower := 1 - info.Leader
	testkit.WaitFor(t, 20*time.Second, "the follower's high-watermark checkpoint to record 5", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "broker-"+itoa(follower), "replication-offset-checkpoint"))
		return strings.Contains(string(b), "\nhw 0 5\n")
	})
	if err := c.Kill(follower); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(info.Leader); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, follower); err != nil {
		t.Fatal(err)
	}
	rep, err := c.ReplicaState(follower, "hw", 0)
	if err != nil || rep.HW != 5 || rep.LEO != 5 {
		t.Fatalf("restarted follower: %+v, %v; want HW 5 from the checkpoint and LEO 5", rep, err)
	}
}
