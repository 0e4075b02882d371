package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/verify"
)

func TestVerifyRejectsBadUsageWithExitCode2(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown client", []string{"--client", "kcat"}, `unknown client "kcat"`},
		{"unknown preset", []string{"--preset", "NoLoss,Fast"}, `unknown preset "Fast"`},
		{"empty preset list", []string{"--preset", ","}, "no preset given"},
		{"transactional preset", []string{"--preset", "NoLoss,ExactlyOnce"}, "ExactlyOnce: verify: the producer and queue workloads send outside transactions"},
		{"unknown fault", []string{"--fault", "meteor"}, `unknown fault schedule "meteor"`},
		{"zero records", []string{"--records", "0"}, "--records must be at least 1"},
		{"more keys than records", []string{"--records", "5", "--keys", "6"}, "--keys (6) must not exceed --records (5)"},
		{"zero rate", []string{"--rate", "0"}, "--rate must be at least 1"},
		{"control without bootstrap", []string{"--control", "http://x"}, "need --bootstrap"},
		{"control and exec", []string{"--bootstrap", "a:1", "--control", "http://x", "--fault-exec", "true"}, "either --control or --fault-exec"},
		{"restart without kill", []string{"--bootstrap", "a:1", "--restart-exec", "true"}, "--restart-exec needs --fault-exec"},
		{"pause without resume", []string{"--bootstrap", "a:1", "--pause-exec", "true"}, "--pause-exec and --resume-exec go together"},
		{"heal without isolate", []string{"--bootstrap", "a:1", "--heal-exec", "true"}, "--isolate-exec and --heal-exec go together"},
		{"pause exec without bootstrap", []string{"--pause-exec", "true", "--resume-exec", "true"}, "need --bootstrap"},
		{"control and pause exec", []string{"--bootstrap", "a:1", "--control", "http://x", "--pause-exec", "true", "--resume-exec", "true"}, "either --control or --fault-exec"},
		{"empty bootstrap", []string{"--bootstrap", " , "}, "--bootstrap lists no brokers"},
		{"arguments", []string{"now"}, "unexpected arguments"},
		{"bad topic config", []string{"--topic-config", "flush.messages"}, `"flush.messages" is not NAME=VALUE`},
		{"fault and schedules", []string{"--schedules", "2", "--fault", "kill-leader"}, "either --fault or --schedules"},
		{"seed without schedules", []string{"--seed", "4"}, "--seed needs --schedules"},
		{"negative schedules", []string{"--schedules", "-1"}, "--schedules must be at least 0"},
		{"schedules without a fault source", []string{"--bootstrap", "a:1", "--schedules", "1"}, "--schedules needs a fault source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runVerify(context.Background(), tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

// tableRows returns the verify table's rows by "PRESET FAULT".
func tableRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && f[0] != "PRESET" {
			rows[f[0]+" "+f[1]] = f
		}
	}
	return rows
}

func TestVerifyWithoutBootstrapRunsTheBundledClusterAndPrintsTheTable(t *testing.T) {
	t.Parallel()
	acked := filepath.Join(t.TempDir(), "acked.tsv")
	var stdout, stderr bytes.Buffer
	code := runVerify(context.Background(), []string{
		"--preset", "NoLoss,LeaderAck", "--fault", "none,pause-followers-then-kill-leader",
		"--records", "600", "--keys", "3", "--acked-out", acked,
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	header := "PRESET FAULT ACKED LOST DUPLICATED REORDERED UNACKED-PRESENT VERDICT"
	if !strings.Contains(strings.Join(strings.Fields(out), " "), header) {
		t.Fatalf("no table header %q in\n%s", header, out)
	}
	rows := tableRows(t, out)
	want := map[string]func(f []string) bool{
		"NoLoss none": func(f []string) bool {
			return f[2] == "600" && f[3] == "0" && f[4] == "0" && f[5] == "0" && f[7] == "ok"
		},
		"NoLoss pause-followers-then-kill-leader": func(f []string) bool {
			return f[2] == "600" && f[3] == "0" && f[4] == "0" && f[5] == "0" && f[7] == "ok"
		},
		"LeaderAck none": func(f []string) bool { return f[3] == "0" && f[7] == "ok" },
		"LeaderAck pause-followers-then-kill-leader": func(f []string) bool { return f[3] != "0" && strings.Join(f[7:], " ") == "allowed by acks=1" },
	}
	for key, ok := range want {
		if f, found := rows[key]; !found || !ok(f) {
			t.Errorf("row %q = %q\n%s", key, f, out)
		}
	}
	if !strings.Contains(out, "NoLoss: 0 lost, 0 duplicated, 0 reordered in 2 runs") ||
		!strings.Contains(out, "LeaderAck: lost acknowledged records (") {
		t.Errorf("no per-preset summary in\n%s", out)
	}
	for _, s := range []string{"[1/4] NoLoss none: ok", "[4/4] LeaderAck pause-followers-then-kill-leader: allowed by acks=1"} {
		if !strings.Contains(stderr.String(), s) {
			t.Errorf("stderr lacks progress %q:\n%s", s, stderr.String())
		}
	}

	b, err := os.ReadFile(acked)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 4*600 {
		t.Fatalf("--acked-out has %d lines, want %d", len(lines), 4*600)
	}
	topics := map[string]int{}
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 4 {
			t.Fatalf("line %q: want TOPIC PARTITION OFFSET VALUE", l)
		}
		if _, err := verify.ParseValue([]byte(f[3])); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		topics[f[0]]++
	}
	if len(topics) != 4 {
		t.Errorf("acked records of %d topics, want one per run: %v", len(topics), topics)
	}
}

func TestVerifyAgainstABootstrapTakesFaultsFromTheControlAPIAndPrintsJSON(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	srv := httptest.NewServer(c.ControlHandler())
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := runVerify(context.Background(), []string{
		"--bootstrap", strings.Join(c.Bootstrap(), ","), "--control", srv.URL, "--json",
		"--preset", "StrictOrder", "--fault", "kill-leader", "--client", "sarama", "--records", "500", "--keys", "5",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var got struct {
		Client string
		Passed bool
		Runs   []struct {
			Preset  string
			Fault   string
			Verdict string
			Result  struct {
				Topic  string
				Sent   int
				Report verify.Report
			}
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if got.Client != "sarama" || !got.Passed || len(got.Runs) != 1 {
		t.Fatalf("JSON = %+v", got)
	}
	r := got.Runs[0]
	if r.Preset != "StrictOrder" || r.Fault != "kill-leader" || r.Verdict != "ok" || r.Result.Sent != 500 ||
		r.Result.Report.Acked != 500 || !r.Result.Report.Clean() {
		t.Errorf("run = %+v", r)
	}
}

// TestVerifyFailsASchedulePassedWithFaultThatTheFaultSourceCannotRun pins issue 13's item 4:
// a schedule named with --fault that the fault commands cannot carry out fails the run (exit
// status 1, saying what is missing), where it used to print n/a and exit 0. Under --fault all
// such schedules are still only shown as n/a.
func TestVerifyFailsASchedulePassedWithFaultThatTheFaultSourceCannotRun(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	var stdout, stderr bytes.Buffer
	code := runVerify(context.Background(), []string{
		"--bootstrap", strings.Join(c.Bootstrap(), ","), "--fault-exec", "exit 1",
		"--preset", "NoLoss", "--fault", "none,kill-leader,isolate-leader", "--records", "200", "--keys", "2",
	}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	rows := tableRows(t, stdout.String())
	if f := rows["NoLoss none"]; len(f) < 8 || f[2] != "200" || f[7] != "ok" {
		t.Errorf("none row %q", f)
	}
	if f := rows["NoLoss kill-leader"]; !strings.Contains(strings.Join(f, " "), "n/a: needs restart") {
		t.Errorf("kill-leader row %q, want n/a for the missing --restart-exec", f)
	}
	if f := rows["NoLoss isolate-leader"]; !strings.Contains(strings.Join(f, " "), "n/a: needs isolate+heal") {
		t.Errorf("isolate-leader row %q", f)
	}
	for _, want := range []string{
		"NoLoss kill-leader: cannot be carried out: the fault source lacks restart (give --restart-exec)",
		"NoLoss isolate-leader: cannot be carried out: the fault source lacks isolate+heal (give --isolate-exec and --heal-exec)",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}

	stdout.Reset()
	code = runVerify(context.Background(), []string{
		"--bootstrap", strings.Join(c.Bootstrap(), ","), "--fault-exec", "exit 1",
		"--preset", "NoLoss", "--records", "200", "--keys", "2",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("--fault all: exit code %d, want 0 (n/a rows only shown)\nstdout:\n%s", code, stdout.String())
	}
	if f := tableRows(t, stdout.String())["NoLoss isolate-leader"]; !strings.Contains(strings.Join(f, " "), "n/a: needs isolate+heal") {
		t.Errorf("--fault all: isolate-leader row %q, want n/a", f)
	}
}

func TestVerifyExitsOneWhenARunCannotBeCarriedOut(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t) // one broker: no topic with replication factor 3
	var stdout, stderr bytes.Buffer
	code := runVerify(context.Background(), []string{
		"--bootstrap", c.Bootstrap()[0], "--preset", "NoLoss", "--fault", "none", "--records", "10", "--keys", "1",
	}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if f := tableRows(t, stdout.String())["NoLoss none"]; len(f) < 8 || f[7] != "ERROR" {
		t.Errorf("row %q, want ERROR", f)
	}
	if !strings.Contains(stdout.String(), "replication factor 3") {
		t.Errorf("stdout does not say why:\n%s", stdout.String())
	}
}

// faultProxy serves a bundled cluster's control API, but answers each fault request (POST) with
// onPost instead of forwarding it; reads (GET) reach the real cluster. It lets a test hand verify
// a fault source that misbehaves in a chosen way.
func faultProxy(t *testing.T, c *kafkatest.Cluster, onPost func(w http.ResponseWriter, r *http.Request)) string {
	t.Helper()
	real := c.ControlHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			onPost(w, r)
			return
		}
		real.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestVerifyExitsOneWhenAPresetsPromiseIsBroken checks verify's exit status for the two ways a
// run can break its preset's promise: LeaderAck showing no loss under the schedule built to make
// acks=1 lose (the faults were accepted and never carried out), and NoLoss losing acknowledged
// records (a "fault" that wipes every broker's copy of the topic).
func TestVerifyExitsOneWhenAPresetsPromiseIsBroken(t *testing.T) {
	t.Parallel()
	t.Run("faults accepted and not carried out", func(t *testing.T) {
		c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
		real := c.ControlHandler()
		paused := 0
		url := faultProxy(t, c, func(w http.ResponseWriter, r *http.Request) {
			switch _, action := brokerAction(r); action {
			case "pause-replication", "resume-replication":
				paused++
				w.WriteHeader(http.StatusOK) // accepted, not carried out
				return
			case "kill":
				// Without the pause, a loaded machine can still leave the followers a few
				// records behind when the leader dies, and acks=1 loses those: the kill
				// waits until every replica holds every record, so nothing can be lost.
				if err := waitReplicated(r.Context(), c); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
			}
			real.ServeHTTP(w, r)
		})
		var stdout, stderr bytes.Buffer
		code := runVerify(context.Background(), []string{
			"--bootstrap", strings.Join(c.Bootstrap(), ","), "--control", url,
			"--preset", "LeaderAck", "--fault", "pause-followers-then-kill-leader", "--records", "300", "--keys", "3",
		}, &stdout, &stderr)
		if paused == 0 {
			t.Fatalf("verify never asked to pause replication\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		if code != 1 {
			t.Fatalf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
		if f := tableRows(t, stdout.String())["LeaderAck pause-followers-then-kill-leader"]; len(f) < 8 || f[3] != "0" || !strings.Contains(strings.Join(f[7:], " "), "no loss shown") {
			t.Errorf("row %q, want 0 lost and the verdict \"no loss shown\"\n%s", f, stdout.String())
		}
		if !strings.Contains(stdout.String(), "1 runs broke their preset's promise") {
			t.Errorf("stdout does not list the broken promise:\n%s", stdout.String())
		}
	})
	t.Run("acknowledged records wiped", func(t *testing.T) {
		dir := t.TempDir()
		c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.DataDir(dir))
		// The kill is carried out; the restart that ends the schedule, seconds later (the
		// controller notices the dead leader after its session), first wipes every broker's
		// copy of the topic, so that what was acknowledged by then is gone.
		real := c.ControlHandler()
		wiped := false
		url := faultProxy(t, c, func(w http.ResponseWriter, r *http.Request) {
			if _, action := brokerAction(r); wiped || action != "restart" {
				real.ServeHTTP(w, r)
				return
			}
			wiped = true
			if err := wipeTopics(r.Context(), c, dir); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		var stdout, stderr bytes.Buffer
		code := runVerify(context.Background(), []string{
			"--bootstrap", strings.Join(c.Bootstrap(), ","), "--control", url,
			"--preset", "NoLoss", "--fault", "kill-leader", "--records", "300", "--keys", "3", "--rate", "100",
		}, &stdout, &stderr)
		if !wiped {
			t.Fatalf("verify never asked for the restart\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		if code != 1 {
			t.Fatalf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
		f := tableRows(t, stdout.String())["NoLoss kill-leader"]
		if len(f) < 8 || f[3] == "0" || !strings.HasPrefix(f[7], "FAIL") {
			t.Errorf("row %q, want acknowledged records lost and a FAIL verdict\n%s", f, stdout.String())
		}
	})
}

// waitReplicated waits until every replica of every partition of every topic of c has the same
// log end offset, unchanged for 300 ms (the verify workload has then been written in full).
func waitReplicated(ctx context.Context, c *kafkatest.Cluster) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topics, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		return err
	}
	// ends lists every replica's log end offset; ok is false while the replicas differ.
	ends := func() (ends []int64, ok bool) {
		ok = true
		for _, td := range topics.Sorted() {
			for _, pd := range td.Partitions.Sorted() {
				first := int64(-1)
				for _, id := range pd.Replicas {
					ri, err := c.Replica(id, td.Topic, pd.Partition)
					if err != nil {
						return nil, false
					}
					if first >= 0 && ri.LEO != first {
						ok = false
					}
					first = ri.LEO
					ends = append(ends, ri.LEO)
				}
			}
		}
		return ends, ok
	}
	last, _ := ends()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("replicas still differ: %w", ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
		now, ok := ends()
		if ok && slices.Equal(now, last) {
			return nil
		}
		last = now
	}
}

// wipeTopics plants a loss no preset can survive: it kills every running broker, deletes every
// broker's copy of every topic but the offsets topic, and starts them all again.
func wipeTopics(ctx context.Context, c *kafkatest.Cluster, dir string) error {
	var ids []int32
	for _, b := range c.Brokers() {
		ids = append(ids, b.ID)
		if b.Alive {
			if err := c.Kill(b.ID); err != nil {
				return err
			}
		}
		logs, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf("broker-%d", b.ID), "*-*"))
		if err != nil {
			return err
		}
		for _, l := range logs {
			if !strings.HasPrefix(filepath.Base(l), "__") {
				if err := os.RemoveAll(l); err != nil {
					return err
				}
			}
		}
	}
	for _, id := range ids {
		if err := c.Restart(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// brokerAction parses a control API fault request, POST /brokers/{id}/{action}.
func brokerAction(r *http.Request) (int32, string) {
	var id int32
	var action string
	if _, err := fmt.Sscanf(strings.ReplaceAll(r.URL.Path, "/", " "), " brokers %d %s", &id, &action); err != nil {
		return -1, ""
	}
	return id, action
}

// TestVerifyPowerLossOfAllReplicasIsAllowedToLoseWithoutFsyncOnly: the power-loss schedule runs
// when named; with the default flush policy NoLoss's loss is shown as allowed (exit 0), with
// --topic-config flush.messages=1 it loses nothing and says ok.
func TestVerifyPowerLossOfAllReplicasIsAllowedToLoseWithoutFsyncOnly(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		extra []string
		want  string
	}{
		{nil, "allowed without fsync"},
		{[]string{"--topic-config", "flush.messages=1"}, "NoLoss power-loss-all-replicas: ok"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"--preset", "NoLoss", "--fault", "power-loss-all-replicas", "--records", "600", "--keys", "3", "--partitions", "1"}, tt.extra...)
		if code := runVerify(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit code %d\nstdout:\n%s\nstderr:\n%s", args, code, stdout.String(), stderr.String())
		}
		if out := stdout.String() + stderr.String(); !strings.Contains(out, tt.want) {
			t.Fatalf("%v: output does not say %q:\n%s", args, tt.want, out)
		}
	}
}

// TestVerifySchedulesRunsSeededRandomSchedulesAndNamesEachSeed runs two random schedules on the
// bundled cluster: each row names its seed and the JSON carries seeds, schedules and anomalies.
func TestVerifySchedulesRunsSeededRandomSchedulesAndNamesEachSeed(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := runVerify(context.Background(), []string{
		"--schedules", "2", "--seed", "41", "--preset", "NoLoss", "--records", "300", "--keys", "3", "--rate", "300", "--json",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var got struct {
		Passed bool   `json:"passed"`
		Seed   *int64 `json:"seed"`
		Runs   []struct {
			Preset  string          `json:"preset"`
			Fault   string          `json:"fault"`
			Seed    *int64          `json:"seed"`
			Verdict string          `json:"verdict"`
			Result  json.RawMessage `json:"result"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if !got.Passed || got.Seed == nil || *got.Seed != 41 || len(got.Runs) != 2 {
		t.Fatalf("JSON = %+v", got)
	}
	for i, r := range got.Runs {
		var res struct {
			Seed      int64             `json:"seed"`
			Schedule  *verify.Schedule  `json:"schedule"`
			Anomalies *verify.Anomalies `json:"anomalies"`
		}
		if err := json.Unmarshal(r.Result, &res); err != nil {
			t.Fatal(err)
		}
		if r.Fault != "random" || r.Seed == nil || *r.Seed != int64(41+i) || res.Seed != *r.Seed || r.Verdict != "ok" {
			t.Errorf("run %d = %+v", i, r)
		}
		if res.Schedule == nil || res.Schedule.Seed != *r.Seed || len(res.Schedule.Windows) == 0 {
			t.Errorf("run %d: schedule %+v", i, res.Schedule)
		}
		if !strings.Contains(string(r.Result), `"anomalies":`) {
			t.Errorf("run %d: no anomalies key in %s", i, r.Result)
		}
	}
	if !strings.Contains(stderr.String(), "2 random schedules, seeds 41 to 42") || !strings.Contains(stderr.String(), "seed 42 NoLoss: ok") {
		t.Errorf("stderr does not name the seeds:\n%s", stderr.String())
	}
	// Not a terminal: the status lines are plain lines, naming the seed, the stage and the acks.
	if !regexp.MustCompile(`(?m)^\[1/2\] seed 41 NoLoss: [a-z].*: sent \d+/300, acked \d+, failed \d+`).MatchString(stderr.String()) {
		t.Errorf("no status line for seed 41 in stderr:\n%s", stderr.String())
	}
}

func TestVerifyProgressLineGoesOutAtMostOncePerSecond(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newProgressLine(&buf)
	for i := range 50 {
		p.update(fmt.Sprintf("status %d", i))
	}
	p.done("finished")
	if got := buf.String(); got != "status 0\nfinished\n" {
		t.Errorf("stderr = %q, want one status line, then the run's line", got)
	}
	p.last = p.last.Add(-p.every) // a second later
	p.update("status 50")
	if !strings.HasSuffix(buf.String(), "status 50\n") {
		t.Errorf("no status line a second later: %q", buf.String())
	}
}

// TestVerifySchedulesPrintsTheCommandThatReplaysAFailingSeed hands verify a fault source whose
// faults all fail: the row is an ERROR naming its seed, and the report prints the command that
// replays exactly that seed and preset.
func TestVerifySchedulesPrintsTheCommandThatReplaysAFailingSeed(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	url := faultProxy(t, c, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"refused by the test"}`, http.StatusInternalServerError)
	})
	boot := strings.Join(c.Bootstrap(), ",")
	var stdout, stderr bytes.Buffer
	code := runVerify(context.Background(), []string{
		"--bootstrap", boot, "--control", url, "--schedules", "1", "--seed", "7", "--preset", "StrictOrder",
		"--records", "300", "--keys", "3", "--rate", "300",
	}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "SEED PRESET FAULTS ACKED LOST DUPLICATED REORDERED UNACKED-PRESENT ANOMALIES VERDICT") {
		t.Fatalf("no table header in\n%s", out)
	}
	var row []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "7" {
			row = f
		}
	}
	if len(row) == 0 || row[1] != "StrictOrder" || row[len(row)-1] != "ERROR" {
		t.Errorf("row %q, want seed 7 StrictOrder ERROR\n%s", row, out)
	}
	want := "replay: kafkaguard verify --bootstrap " + boot + " --control " + url +
		" --keys 3 --rate 300 --records 300 --preset StrictOrder --seed 7 --schedules 1"
	if !strings.Contains(out, want) || !strings.Contains(out, "refused by the test") {
		t.Errorf("stdout lacks %q and the error:\n%s", want, out)
	}
}

func TestVerifySchedulesSaysWhenTheUnsafePresetsLostNothing(t *testing.T) {
	t.Parallel()
	run := func(p produce.Preset, lost int) verifyRun {
		return verifyRun{Preset: p, Fault: verify.FaultRandom, Result: &verify.Result{Report: verify.Report{Lost: lost}}}
	}
	if got := dangerMissed([]verifyRun{run(produce.NoLoss, 0), run(produce.LeaderAck, 0), run(produce.LeaderAck, 0)}); got !=
		"note: LeaderAck lost nothing in 2 runs: these schedules did not reach the danger it allows" {
		t.Errorf("dangerMissed = %q", got)
	}
	if got := dangerMissed([]verifyRun{run(produce.LeaderAck, 0), run(produce.LeaderAck, 3), run(produce.NoLoss, 0)}); got != "" {
		t.Errorf("LeaderAck lost 3 records: dangerMissed = %q, want no note", got)
	}
}

// TestVerifySchedulesWithExecCommandsDrawOnlyTheirFaultsAndReplayWithThem gives --schedules
// kill, restart, pause and resume commands that only record their calls: every window drawn is
// a kill or a pause, and every fault the run logged ran its command. Then a pause command that
// fails makes the run an ERROR whose replay command carries the --*-exec flags.
func TestVerifySchedulesWithExecCommandsDrawOnlyTheirFaultsAndReplayWithThem(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	boot := strings.Join(c.Bootstrap(), ",")
	calls := filepath.Join(t.TempDir(), "calls")
	rec := func(op string) string { return "echo " + op + " {broker} >> " + calls }
	var stdout, stderr bytes.Buffer
	code := runVerify(context.Background(), []string{
		"--bootstrap", boot, "--fault-exec", rec("kill"), "--restart-exec", rec("restart"),
		"--pause-exec", rec("pause"), "--resume-exec", rec("resume"),
		"--schedules", "2", "--seed", "11", "--preset", "NoLoss", "--records", "300", "--keys", "3", "--rate", "300", "--json",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var out struct {
		Runs []struct {
			Result struct {
				Schedule    verify.Schedule     `json:"schedule"`
				FaultEvents []verify.FaultEvent `json:"fault_events"`
			} `json:"result"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out.Runs) != 2 {
		t.Fatalf("JSON: %v, %d runs\n%s", err, len(out.Runs), stdout.String())
	}
	var logged strings.Builder
	kinds := map[verify.FaultKind]int{}
	for _, r := range out.Runs {
		for _, w := range r.Result.Schedule.Windows {
			kinds[w.Kind]++
		}
		for _, e := range r.Result.FaultEvents {
			fmt.Fprintf(&logged, "%s %d\n", e.Op, e.Broker)
		}
	}
	if len(kinds) == 0 || kinds[verify.KindKill]+kinds[verify.KindPause] != len(out.Runs[0].Result.Schedule.Windows)+len(out.Runs[1].Result.Schedule.Windows) {
		t.Errorf("windows drawn by kind %v, want kill and pause only", kinds)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != logged.String() {
		t.Errorf("commands ran\n%s\nthe runs logged\n%s", b, logged.String())
	}

	stdout.Reset()
	code = runVerify(context.Background(), []string{
		"--bootstrap", boot, "--pause-exec", "exit 3", "--resume-exec", "true",
		"--schedules", "1", "--seed", "4", "--preset", "NoLoss", "--records", "300", "--keys", "3", "--rate", "300",
	}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("failing pause command: exit code %d, want 1\nstdout:\n%s", code, stdout.String())
	}
	want := "replay: kafkaguard verify --bootstrap " + boot + " --keys 3 --pause-exec 'exit 3' --rate 300 --records 300" +
		" --resume-exec true --preset NoLoss --seed 4 --schedules 1"
	if !strings.Contains(stdout.String(), want) || !strings.Contains(stdout.String(), "exit status 3") {
		t.Errorf("stdout lacks %q and the command's failure:\n%s", want, stdout.String())
	}
}
