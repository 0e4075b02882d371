package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/verify"
	"github.com/kafkaguard/kafkaguard/verify/report"
)

func TestVerifyQueueRejectsBadUsageWithExitCode2(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown workload", []string{"--workload", "stream"}, `unknown workload "stream"`},
		{"unknown order", []string{"--workload", "queue", "--order", "Sorted"}, `unknown order mode "Sorted"`},
		{"empty order list", []string{"--workload", "queue", "--order", ","}, "no order mode given"},
		{"order without the queue workload", []string{"--order", "KeyOrder"}, "--order needs --workload queue"},
		{"crashes without the queue workload", []string{"--crashes", "2"}, "--crashes needs --workload queue"},
		{"zero consumers", []string{"--workload", "queue", "--consumers", "0"}, "--consumers must be between 1 and 100"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runVerify(context.Background(), tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

// TestVerifyQueueWorkloadPrintsARowPerRun runs the queue workload on the bundled cluster: a row
// per order mode naming the workload, with the consumers' counts, and exit status 0.
func TestVerifyQueueWorkloadPrintsARowPerRun(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := runVerify(context.Background(), []string{"--workload", "queue", "--preset", "NoLoss", "--fault", "none",
		"--order", "KeyOrder,Unordered", "--records", "600", "--keys", "6", "--queue-seed", "7"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	header := "WORKLOAD ORDER PRESET FAULT CRASH-SEED ACKED LOST HANDLED REHANDLED CRASHES ANOMALIES VERDICT"
	if !strings.Contains(strings.Join(strings.Fields(out), " "), header) {
		t.Fatalf("no header %q in:\n%s", header, out)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 12 && f[0] == "queue" {
			rows[f[1]] = f
		}
	}
	for order, seed := range map[string]string{"KeyOrder": "7", "Unordered": "8"} {
		f, ok := rows[order]
		if !ok {
			t.Fatalf("no queue row for %s in:\n%s", order, out)
		}
		if f[2] != "NoLoss" || f[3] != "none" || f[4] != seed || f[5] != "600" || f[6] != "0" || f[9] != "3" || f[10] != "0" || f[11] != "ok" {
			t.Errorf("row %v: want NoLoss none seed %s, 600 acked, 0 lost, 3 crashes, 0 anomalies, ok", f, seed)
		}
		handled, _ := strconv.Atoi(f[7])
		rehandled, _ := strconv.Atoi(f[8])
		if handled-rehandled != 600 {
			t.Errorf("row %v: handled %d, %d of them again; want every acked record handled once more than again", f, handled, rehandled)
		}
	}
}

// TestVerifyQueueWorkloadJSONAndReport: --json carries the workload, the order, the seed and
// the queue checker's counts; --report names the queue anomalies.
func TestVerifyQueueWorkloadJSONAndReport(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "report")
	var stdout, stderr bytes.Buffer
	code := runVerify(context.Background(), []string{"--workload", "queue", "--preset", "NoLoss", "--fault", "kill-leader",
		"--order", "PartitionOrder", "--records", "600", "--keys", "6", "--json", "--report", dir}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var got struct {
		Passed bool `json:"passed"`
		Runs   []struct {
			Workload string `json:"workload"`
			Fault    string `json:"fault"`
			Verdict  string `json:"verdict"`
			Result   struct {
				Report struct {
					Acked int `json:"acked"`
				} `json:"report"`
			} `json:"result"`
			Queue *struct {
				Order     string            `json:"order"`
				Seed      uint64            `json:"seed"`
				Group     string            `json:"group"`
				Acked     int               `json:"acked"`
				Handled   int               `json:"handled"`
				Distinct  int               `json:"distinct"`
				Rehandled int               `json:"rehandled"`
				Crashes   int               `json:"crashes"`
				Anomalies []json.RawMessage `json:"anomalies"`
				CrashLog  []struct {
					Consumer string `json:"consumer"`
					AtNS     int64  `json:"at_ns"`
				} `json:"crash_log"`
			} `json:"queue"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v in:\n%s", err, stdout.String())
	}
	if !got.Passed || len(got.Runs) != 1 {
		t.Fatalf("passed %v, %d runs:\n%s", got.Passed, len(got.Runs), stdout.String())
	}
	r := got.Runs[0]
	q := r.Queue
	if r.Workload != "queue" || r.Fault != "kill-leader" || r.Verdict != "ok" || q == nil {
		t.Fatalf("run %+v", r)
	}
	if q.Order != "PartitionOrder" || q.Seed != 1 || q.Group == "" || q.Acked != 600 || q.Distinct != 600 ||
		q.Handled != q.Distinct+q.Rehandled || q.Crashes != 3 || len(q.Anomalies) != 0 || r.Result.Report.Acked != 600 {
		t.Errorf("queue %+v, result acked %d", *q, r.Result.Report.Acked)
	}
	if len(q.CrashLog) != q.Crashes || q.CrashLog[0].Consumer == "" || q.CrashLog[0].AtNS <= 0 {
		t.Errorf("crash log %+v for %d crashes", q.CrashLog, q.Crashes)
	}
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"queue PartitionOrder NoLoss kill-leader (seed 1)", "at-least-once-violation", "unexplained-rehandle", "consumer crashes"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("report has no %q", want)
		}
	}
}

// TestVerifyQueueTableAndReportShowAnomalies: a queue run whose checker found an anomaly is a
// FAIL row with its count, listed among the broken promises, and a violation row in the report
// with its examples.
func TestVerifyQueueTableAndReportShowAnomalies(t *testing.T) {
	t.Parallel()
	found := verify.QueueReport{Acked: 10, Handled: 9, Distinct: 9, Crashes: 2, Findings: verify.Anomalies{
		{Kind: verify.AtLeastOnceViolation, Count: 1, Examples: []verify.Example{{Value: verify.Value{Key: 1, Seq: 4}, Partition: 0, Offset: 7, At: 300 * time.Millisecond, Note: "committed offset 9 observed at 300ms; never handled"}}},
		{Kind: verify.Unseen, Count: 1, Examples: []verify.Example{{Value: verify.Value{Key: 1, Seq: 4}, Partition: 0, Offset: 7}}},
	}}
	qr := verify.QueueResult{Result: verify.Result{Preset: produce.NoLoss, Fault: verify.FaultKillLeader, Report: verify.Report{Acked: 10, Read: 10}},
		Order: "KeyOrder", Seed: 5, Queue: found}
	cell := verifyRun{Preset: produce.NoLoss, Fault: verify.FaultKillLeader, Workload: verify.WorkloadQueue,
		Result: &qr.Result, Verdict: qr.Verdict(), Failure: qr.Err().Error(),
		Queue: &queueCell{Order: "KeyOrder", Seed: 5, QueueReport: found}}
	var out bytes.Buffer
	if err := writeQueueTable(&out, verify.ClientFranzGo, []verifyRun{cell}, time.Second); err != nil {
		t.Fatal(err)
	}
	want := "queue KeyOrder NoLoss kill-leader 5 10 0 9 0 2 2 FAIL: at-least-once-violation, unseen"
	if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), want) {
		t.Errorf("table lacks row %q:\n%s", want, out.String())
	}
	if !strings.Contains(out.String(), "1 runs broke a promise") || !strings.Contains(out.String(), "at-least-once-violation: 1, e.g. k1:4 at 0/7") {
		t.Errorf("table lacks the broken promise:\n%s", out.String())
	}
	r := reportRun(verify.ClientFranzGo, cell)
	if r.Name != "queue KeyOrder NoLoss kill-leader (seed 5)" || !r.Failed {
		t.Errorf("report run %q, failed %v", r.Name, r.Failed)
	}
	var row *report.Anomaly
	for i := range r.Anomalies {
		if r.Anomalies[i].Name == string(verify.AtLeastOnceViolation) {
			row = &r.Anomalies[i]
		}
	}
	if row == nil || row.Count != 1 || row.Status != report.StatusViolation || len(row.Examples.Rows) != 1 || row.Examples.Rows[0][2] != "7" {
		t.Errorf("report row %+v", row)
	}
}

// TestVerifyQueueJSONKeepsItsAnomalyFields: the queue's anomalies in --json keep the fields the
// first queue workload wrote ("anomaly", and per example value, partition, offset, consumer,
// at_ns, note) next to the shared vocabulary's ("kind", "seed", "faults").
func TestVerifyQueueJSONKeepsItsAnomalyFields(t *testing.T) {
	t.Parallel()
	found := verify.QueueReport{Acked: 3, Handled: 3, Distinct: 3, Findings: verify.Anomalies{{Kind: verify.PollSkip, Count: 1,
		Examples: []verify.Example{{Value: verify.Value{Key: 1, Seq: 2}, Partition: 1, Offset: 5, Seed: 9, Consumer: "c0.1",
			At: time.Second, Faults: []string{"kill broker 1"}, Note: "consumer c0.1 went from offset 4 to 6 in generation 3"}}}}}
	cell := verifyRun{Workload: verify.WorkloadQueue, Queue: &queueCell{Order: "KeyOrder", Seed: 5, QueueReport: found}}
	var out bytes.Buffer
	if err := writeVerifyJSON(&out, verify.ClientFranzGo, []verifyRun{cell}, false, nil, time.Second); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Runs []struct {
			Queue struct {
				Order     string           `json:"order"`
				Anomalies []map[string]any `json:"anomalies"`
			} `json:"queue"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	as := got.Runs[0].Queue.Anomalies
	if got.Runs[0].Queue.Order != "KeyOrder" || len(as) != 1 || as[0]["anomaly"] != "poll-skip" || as[0]["kind"] != "poll-skip" || as[0]["count"] != 1.0 {
		t.Fatalf("anomalies %v in:\n%s", as, out.String())
	}
	ex := as[0]["examples"].([]any)[0].(map[string]any)
	for k, v := range map[string]any{"value": "k1:2", "partition": 1.0, "offset": 5.0, "consumer": "c0.1", "at_ns": 1e9, "seed": 9.0,
		"note": "consumer c0.1 went from offset 4 to 6 in generation 3"} {
		if ex[k] != v {
			t.Errorf("example %q = %v, want %v", k, ex[k], v)
		}
	}
}

// TestVerifyQueueReplayNamesTheOrderAndCrashSeed: a failing queue run's replay command runs that
// run's order mode with its crash plan's seed, whatever --order and --queue-seed said.
func TestVerifyQueueReplayNamesTheOrderAndCrashSeed(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("verify", pflag.ContinueOnError)
	fs.String("workload", "producer", "")
	fs.String("order", "all", "")
	fs.Uint64("queue-seed", 1, "")
	fs.Int("schedules", 0, "")
	fs.Int64("seed", 0, "")
	if err := fs.Parse([]string{"--workload", "queue", "--order", "all", "--queue-seed", "3", "--schedules", "100", "--seed", "1"}); err != nil {
		t.Fatal(err)
	}
	got := replayCommand(fs, 34, produce.StrictOrder, &queueCell{Order: "KeyOrder", Seed: 202})
	want := "kafkaguard verify --workload queue --preset StrictOrder --seed 34 --schedules 1 --order KeyOrder --queue-seed 202"
	if got != want {
		t.Errorf("replay\n%s\nwant\n%s", got, want)
	}
}
