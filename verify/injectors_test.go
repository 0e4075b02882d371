package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
	f := &ExecFaults{KillCmd: "echo no such broker {broker} >&2; exit 3"}
	err := f.Kill(context.Background(), 5)
	if err == nil || !strings.Contains(err.Error(), "no such broker 5") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Kill = %v, want the exit status and the command's output", err)
	}
}

func TestExecFaultsDoesNotWaitForABackgroundedBroker(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// TestExecFaultsPausesAndResumesThroughItsCommands checks the commands of every operation an
// ExecFaults can carry out besides kill and restart: each runs with {broker} and
// $KAFKAGUARD_BROKER set to the node id, and pause and resume make it a Pauser.
func TestExecFaultsPausesAndResumesThroughItsCommands(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	rec := func(op string) string { return "echo " + op + " {broker} $KAFKAGUARD_BROKER >> " + out }
	f := &ExecFaults{
		KillCmd: rec("kill"), RestartCmd: rec("restart"), PauseCmd: rec("pause"), ResumeCmd: rec("resume"),
		IsolateCmd: rec("isolate"), HealCmd: rec("heal"),
		PauseReplicationCmd: rec("pause-replication"), ResumeReplicationCmd: rec("resume-replication"),
	}
	var fi FaultInjector = f
	p, ok := fi.(Pauser)
	if !ok {
		t.Fatal("ExecFaults is not a Pauser")
	}
	ctx := context.Background()
	for _, call := range []func() error{
		func() error { return p.Pause(ctx, 3) }, func() error { return p.Resume(ctx, 3) },
		func() error { return f.Isolate(ctx, 1) }, func() error { return f.Heal(ctx, 1) },
		func() error { return f.PauseReplication(ctx, 2) }, func() error { return f.ResumeReplication(ctx, 2) },
	} {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "pause 3 3\nresume 3 3\nisolate 1 1\nheal 1 1\npause-replication 2 2\nresume-replication 2 2\n"
	if string(b) != want {
		t.Errorf("commands wrote %q, want %q", b, want)
	}
	wantOps := []Op{OpKill, OpRestart, OpIsolate, OpHeal, OpPauseReplication, OpResumeReplication, OpPause, OpResume}
	if got := SupportedOps(f); !slices.Equal(got, wantOps) {
		t.Errorf("SupportedOps = %v, want %v", got, wantOps)
	}
	for _, fault := range Faults() {
		if !Supports(f, fault) {
			t.Errorf("Supports(%s) = false with every command set", fault)
		}
	}
}

// TestExecFaultsWithoutResumeNeverDrawsAPause checks that a pause command without its resume
// (or a kill without its restart) is not enough for a random schedule to draw that kind: a
// schedule never strikes with a fault it cannot heal.
func TestExecFaultsWithoutResumeNeverDrawsAPause(t *testing.T) {
	t.Parallel()
	f := &ExecFaults{KillCmd: "true", RestartCmd: "true", PauseCmd: "true"}
	if err := f.Resume(context.Background(), 1); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Resume without ResumeCmd = %v, want ErrUnsupported", err)
	}
	sh := Shape{Brokers: []int32{1, 2, 3}, Partitions: 2, Ops: SupportedOps(f), Span: time.Minute}
	if got := drawableKinds(sh); !slices.Equal(got, []FaultKind{KindKill}) {
		t.Errorf("drawable kinds %v, want [kill]", got)
	}
	f.ResumeCmd = "true"
	sh.Ops = SupportedOps(f)
	if got := drawableKinds(sh); !slices.Equal(got, []FaultKind{KindKill, KindPause}) {
		t.Errorf("drawable kinds %v, want [kill pause]", got)
	}
	for seed := range int64(20) {
		for _, w := range NewSchedule(seed, sh).Windows {
			if w.Kind != KindKill && w.Kind != KindPause {
				t.Fatalf("seed %d drew %s with only kill and pause commands", seed, w)
			}
		}
	}
}

// TestRandomScheduleCarriesOutPausesThroughExecFaults runs a random schedule whose only fault
// source is a pair of pause and resume commands (which here only record their calls): every
// window is a pause, and each pause and resume the run logged ran its command for that broker.
func TestRandomScheduleCarriesOutPausesThroughExecFaults(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	out := filepath.Join(t.TempDir(), "calls")
	f := &ExecFaults{Bootstrap: c.Bootstrap(),
		PauseCmd: "echo pause {broker} >> " + out, ResumeCmd: "echo resume {broker} >> " + out}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Fault: FaultRandom, Seed: 5, Records: 300, Keys: 3, Rate: 300,
		Bootstrap: c.Bootstrap(), Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	if res.Schedule == nil || len(res.Schedule.Windows) == 0 {
		t.Fatalf("schedule %v: no window", res.Schedule)
	}
	for _, w := range res.Schedule.Windows {
		if w.Kind != KindPause {
			t.Errorf("window %s: only pause can be drawn", w)
		}
	}
	var want strings.Builder
	for _, e := range res.FaultEvents {
		fmt.Fprintf(&want, "%s %d\n", e.Op, e.Broker)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want.String() || !strings.Contains(want.String(), "resume") {
		t.Errorf("commands ran\n%s\nthe run logged\n%s", b, want.String())
	}
}

// TestExecFaultsLeaderGivesUpOnABrokerThatNeverAnswers stands a listener that accepts
// connections and answers nothing (a SIGSTOPped broker) as the only bootstrap broker: Leader
// returns an error within its own bound instead of holding the schedule.
func TestExecFaultsLeaderGivesUpOnABrokerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	f := &ExecFaults{Bootstrap: []string{ln.Addr().String()}}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if _, err := f.Leader(ctx, "t", 0); err == nil {
		t.Fatal("Leader from a broker that never answers: no error")
	}
	if d := time.Since(start); d > execLeaderTimeout+2*time.Second {
		t.Errorf("Leader took %v, want at most about %v", d, execLeaderTimeout)
	}
}
