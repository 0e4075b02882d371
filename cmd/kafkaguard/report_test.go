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

	"github.com/kafkaguard/kafkaguard/produce"
	"github.com/kafkaguard/kafkaguard/verify"
	"github.com/kafkaguard/kafkaguard/verify/report"
)

func TestVerifyReportWritesAnHTMLPageOfTheRuns(t *testing.T) {
	// Not parallel: the high-watermark lag is sampled every 100 ms while records are acked,
	// and a loaded machine can leave the short run without a sample of it.
	dir := filepath.Join(t.TempDir(), "new", "report")
	var stdout, stderr bytes.Buffer
	code := runVerify(context.Background(), []string{
		"--preset", "LeaderAck", "--fault", "pause-followers-then-kill-leader",
		"--records", "400", "--keys", "4", "--json", "--report", dir,
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	path := filepath.Join(dir, "index.html")
	if !strings.Contains(stderr.String(), "report written to "+path) {
		t.Errorf("stderr does not name %s:\n%s", path, stderr.String())
	}
	var got struct {
		Runs []struct {
			Result struct {
				Report struct{ Lost int }
				// The timeline as --json carries it.
				Timeline struct {
					Samples []struct{ Acked int }
					Faults  []struct{ Op string }
				}
			}
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || len(got.Runs) != 1 {
		t.Fatalf("JSON: %v, %d runs\n%s", err, len(got.Runs), stdout.String())
	}
	res := got.Runs[0].Result
	acked := 0
	for _, s := range res.Timeline.Samples {
		acked += s.Acked
	}
	if acked != 400 || len(res.Timeline.Faults) == 0 {
		t.Errorf("JSON timeline: %d acks over %d samples, %d fault steps; want 400 acks and the steps",
			acked, len(res.Timeline.Samples), len(res.Timeline.Faults))
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{
		`<section class="run" id="run-1">`, "LeaderAck pause-followers-then-kill-leader", "allowed by acks=1",
		"Faults over time", "Produce throughput", "Ack latency p50 / p99", "Lag",
		">pause-replication</text>", ">kill</text>", // the timeline's bars
		">acknowledged above the high watermark</text>", ">read-back lag</text>",
		`<td class="anomaly">lost</td><td class="num">` + strconv.Itoa(res.Report.Lost) + `</td>`,
		"<th>acknowledged at partition</th>", `<tr class="allowed"><td class="anomaly">lost</td>`, "<td>allowed: by acks=1</td>",
		"kafkaguard verify --fault=pause-followers-then-kill-leader --json=true --keys=4 --preset=LeaderAck --records=400 --report=",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if res.Report.Lost == 0 {
		t.Error("LeaderAck lost nothing: the lost row has no examples to show")
	}
	if n := strings.Count(page, "<svg "); n != 4 {
		t.Errorf("report has %d charts, want 4", n)
	}
}

func TestVerifyReportNamesTheFlagWhenTheDirectoryIsUnusable(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dir, want string
	}{
		{file, "--report " + file + ": cannot write a report there"},
		{filepath.Join(file, "sub"), "--report " + filepath.Join(file, "sub") + ": cannot write a report there"},
		{"", "--report needs a directory"},
	} {
		var stdout, stderr bytes.Buffer
		// Refused before the cluster starts: nothing is run.
		if code := runVerify(context.Background(), []string{"--report", tt.dir}, &stdout, &stderr); code != 2 {
			t.Errorf("--report %q: exit code %d, want 2", tt.dir, code)
		}
		if !strings.Contains(stderr.String(), tt.want) || strings.Contains(stderr.String(), "starting the bundled") {
			t.Errorf("--report %q: stderr = %q, want %q before any run", tt.dir, stderr.String(), tt.want)
		}
	}
}

func TestShellQuoteQuotesOnlyWhatNeedsIt(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"NoLoss,LeaderAck":           "NoLoss,LeaderAck",
		"http://127.0.0.1:9644":      "http://127.0.0.1:9644",
		"docker kill kafka-{broker}": "'docker kill kafka-{broker}'",
		"it's":                       `'it'\''s'`,
		"":                           "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestReportRowsJudgeEachAnomalyByThePresetsPromise(t *testing.T) {
	t.Parallel()
	lost := verify.Report{Acked: 10, Read: 10, Lost: 1, LostSample: []verify.Value{{Key: 0, Seq: 9}}, UnackedPresent: 1}
	acked := []verify.Ack{{Value: verify.Value{Key: 0, Seq: 9}, Partition: 1, Offset: 41}}
	rows := func(p produce.Preset) map[string]report.Anomaly {
		out := map[string]report.Anomaly{}
		for _, a := range anomalyRows(verify.Result{Preset: p, Fault: verify.FaultIsolateLeader, Report: lost, Acked: acked}) {
			out[a.Name] = a
		}
		return out
	}
	if r := rows(produce.NoLoss)["lost"]; r.Status != report.StatusViolation || r.Count != 1 ||
		len(r.Examples.Rows) != 1 || strings.Join(r.Examples.Rows[0], " ") != "k0:9 1 41" {
		t.Errorf("NoLoss lost row = %+v, want a violation with k0:9 acknowledged at partition 1 offset 41", r)
	}
	if r := rows(produce.LeaderAck)["lost"]; r.Status != report.StatusAllowed || r.Note != "by acks=1" {
		t.Errorf("LeaderAck lost row = %+v, want allowed by acks=1", r)
	}
	if r := rows(produce.NoLoss)["unacked-present"]; r.Status != report.StatusInfo {
		t.Errorf("unacked-present row = %+v, want info (indeterminate, not an anomaly)", r)
	}
	if r := rows(produce.NoLoss)["duplicated"]; r.Status != report.StatusOK || r.Count != 0 {
		t.Errorf("duplicated row = %+v, want ok", r)
	}

	na := reportRun(verify.ClientFranzGo, verifyRun{Preset: produce.NoLoss, Fault: verify.FaultKillLeader,
		Skipped: "needs restart", Verdict: "n/a: needs restart"})
	if na.Failed || na.Error != "the fault source needs restart" || na.Name != "NoLoss kill-leader" {
		t.Errorf("n/a run = %+v", na)
	}
	broken := reportRun(verify.ClientFranzGo, verifyRun{Preset: produce.NoLoss, Fault: verify.FaultNone,
		Error: "verify: create topic: boom", Verdict: "ERROR"})
	if !broken.Failed || broken.Error != "verify: create topic: boom" {
		t.Errorf("run that could not be carried out = %+v", broken)
	}
}
