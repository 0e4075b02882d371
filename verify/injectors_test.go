package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

func TestControlFaultsDrivesTheBundledClusterOverHTTP(t *testing.T) {
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	fi := ControlFaults(srv.URL+"/", srv.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "control", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	info, _ := c.Partition("control", 0)
	leader, err := fi.Leader(ctx, "control", 0)
	if err != nil || leader != info.Leader {
		t.Fatalf("Leader = %d, %v; want %d", leader, err, info.Leader)
	}
	steps := []struct {
		name  string
		do    func(context.Context, int32) error
		check func(kafkatest.BrokerInfo) bool
	}{
		{"pause", fi.PauseReplication, func(b kafkatest.BrokerInfo) bool { return b.Paused }},
		{"resume", fi.ResumeReplication, func(b kafkatest.BrokerInfo) bool { return !b.Paused }},
		{"isolate", fi.Isolate, func(b kafkatest.BrokerInfo) bool { return b.Isolated }},
		{"heal", fi.Heal, func(b kafkatest.BrokerInfo) bool { return !b.Isolated }},
		{"kill", fi.Kill, func(b kafkatest.BrokerInfo) bool { return !b.Alive }},
		{"restart", fi.Restart, func(b kafkatest.BrokerInfo) bool { return b.Alive }},
	}
	for _, s := range steps {
		if err := s.do(ctx, 1); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if b := c.Brokers()[1]; !s.check(b) {
			t.Fatalf("after %s broker 1 is %+v", s.name, b)
		}
	}
	// The edge faults of the optional interfaces, over the same API.
	pauser, cutter := fi.(Pauser), fi.(ControllerCutter)
	delayer, links := fi.(Delayer), fi.(LinkCutter)
	if pauser == nil || cutter == nil || delayer == nil || links == nil || len(SupportedOps(fi)) != len(Ops()) {
		t.Fatalf("ControlFaults supports %v, want every op of %v", SupportedOps(fi), Ops())
	}
	edge := []struct {
		name  string
		do    func(context.Context, int32) error
		check func(kafkatest.BrokerInfo) bool
	}{
		{"pause", pauser.Pause, func(b kafkatest.BrokerInfo) bool { return b.Frozen }},
		{"resume", pauser.Resume, func(b kafkatest.BrokerInfo) bool { return !b.Frozen }},
		{"cut-controller", cutter.CutController, func(b kafkatest.BrokerInfo) bool { return b.ControllerCut }},
		{"reconnect-controller", cutter.ReconnectController, func(b kafkatest.BrokerInfo) bool { return !b.ControllerCut }},
		{"latency", func(ctx context.Context, id int32) error {
			return delayer.SetLatency(ctx, id, 150*time.Millisecond, 20*time.Millisecond)
		},
			func(b kafkatest.BrokerInfo) bool { return b.LatencyMs == 150 && b.JitterMs == 20 }},
		{"latency 0", func(ctx context.Context, id int32) error { return delayer.SetLatency(ctx, id, 0, 0) },
			func(b kafkatest.BrokerInfo) bool { return b.LatencyMs == 0 && b.JitterMs == 0 }},
		{"controller-latency", func(ctx context.Context, id int32) error {
			return fi.(ControllerDelayer).SetControllerLatency(ctx, id, 300*time.Millisecond, 30*time.Millisecond)
		},
			func(b kafkatest.BrokerInfo) bool {
				return b.ControllerLatencyMs == 300 && b.ControllerJitterMs == 30 && b.LatencyMs == 0
			}},
		{"controller-latency 0", func(ctx context.Context, id int32) error {
			return fi.(ControllerDelayer).SetControllerLatency(ctx, id, 0, 0)
		},
			func(b kafkatest.BrokerInfo) bool { return b.ControllerLatencyMs == 0 && b.ControllerJitterMs == 0 }},
	}
	for _, s := range edge {
		if err := s.do(ctx, 2); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if b := c.Brokers()[2]; !s.check(b) {
			t.Fatalf("after %s broker 2 is %+v", s.name, b)
		}
	}
	cutLinks := func() string {
		resp, err := srv.Client().Get(srv.URL + "/cluster")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct {
			CutLinks []struct{ From, To int32 } `json:"cut_links"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(st.CutLinks)
	}
	if err := links.CutLink(ctx, 2, 0); err != nil || cutLinks() != "[{2 0}]" {
		t.Fatalf("CutLink(2, 0) = %v, cut links %s", err, cutLinks())
	}
	if err := links.HealLink(ctx, 2, 0); err != nil || cutLinks() != "[]" {
		t.Fatalf("HealLink(2, 0) = %v, cut links %s", err, cutLinks())
	}

	err = fi.Restart(ctx, 1)
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "running") {
		t.Errorf("restarting a running broker: %v, want the API's 409 and its message", err)
	}
	if err := fi.Kill(ctx, 42); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("killing an unknown broker: %v, want 404", err)
	}
	if _, err := fi.Leader(ctx, "no-such-topic", 0); err == nil {
		t.Error("Leader of a missing topic: no error")
	}
}

func TestExecFaultsRunsTheCommandWithTheBrokerID(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	f := &ExecFaults{
		KillCmd:    "echo kill {broker} $KAFKAGUARD_BROKER >> " + out,
		RestartCmd: "echo restart {broker} >> " + out,
	}
	ctx := context.Background()
	if err := f.Kill(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := f.Restart(ctx, 7); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "kill 2 2\nrestart 7\n"; got != want {
		t.Errorf("commands wrote %q, want %q", got, want)
	}
}

func TestExecFaultsReportsAFailingCommandWithItsOutput(t *testing.T) {
	f := &ExecFaults{KillCmd: "echo no such broker {broker} >&2; exit 3"}
	err := f.Kill(context.Background(), 5)
	if err == nil || !strings.Contains(err.Error(), "no such broker 5") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Kill = %v, want the exit status and the command's output", err)
	}
}

func TestExecFaultsDoesNotWaitForABackgroundedBroker(t *testing.T) {
	// A restart command that leaves a process running with our output open.
	f := &ExecFaults{RestartCmd: "sleep 10 & echo started"}
	start := time.Now()
	if err := f.Restart(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("Restart waited %v for the background process", d)
	}
}

func TestExecFaultsSupportsOnlyKillAndRestart(t *testing.T) {
	f := &ExecFaults{KillCmd: "true"}
	want := map[Op]bool{OpKill: true, OpRestart: false, OpIsolate: false, OpHeal: false, OpPauseReplication: false, OpResumeReplication: false}
	for op, ok := range want {
		if f.Supports(op) != ok {
			t.Errorf("Supports(%s) = %v, want %v", op, !ok, ok)
		}
	}
	ctx := context.Background()
	for name, call := range map[string]func(context.Context, int32) error{
		"Restart": f.Restart, "Isolate": f.Isolate, "Heal": f.Heal,
		"PauseReplication": f.PauseReplication, "ResumeReplication": f.ResumeReplication,
	} {
		if err := call(ctx, 0); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s = %v, want ErrUnsupported", name, err)
		}
	}
	if got := MissingOps(f, FaultKillLeader); len(got) != 1 || got[0] != OpRestart {
		t.Errorf("MissingOps(kill-leader) = %v, want [restart]", got)
	}
	f.RestartCmd = "true"
	if got := SupportedOps(f); !slices.Equal(got, []Op{OpKill, OpRestart}) {
		t.Errorf("SupportedOps = %v, want [kill restart]", got)
	}
	for fault, ok := range map[Fault]bool{FaultNone: true, FaultKillLeader: true, FaultKillFollower: true,
		FaultIsolateLeader: false, FaultPauseFollowersKillLeader: false} {
		if Supports(f, fault) != ok {
			t.Errorf("Supports(%s) = %v, want %v", fault, !ok, ok)
		}
	}
	if !Supports(nil, FaultNone) || Supports(nil, FaultKillLeader) {
		t.Error("a nil injector must support exactly the fault-free schedule")
	}
}

func TestExecFaultsFindsTheLeaderWithMetadata(t *testing.T) {
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "exec", 2, 3, nil); err != nil {
		t.Fatal(err)
	}
	f := &ExecFaults{Bootstrap: c.Bootstrap()}
	defer f.Close()
	for p := int32(0); p < 2; p++ {
		info, _ := c.Partition("exec", p)
		if got, err := f.Leader(ctx, "exec", p); err != nil || got != info.Leader {
			t.Errorf("Leader(exec, %d) = %d, %v; want %d", p, got, err, info.Leader)
		}
	}
	if _, err := f.Leader(ctx, "exec", 7); err == nil {
		t.Error("Leader of a missing partition: no error")
	}
	if _, err := (&ExecFaults{}).Leader(ctx, "exec", 0); err == nil {
		t.Error("Leader without bootstrap brokers: no error")
	}
}
