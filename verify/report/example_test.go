package report_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/kafkaguard/kafkaguard/verify/report"
)

// A caller fills a Run from what it recorded (here by hand: a leader killed from 1 s to 2 s,
// nothing acknowledged meanwhile) and writes the page. The page's bytes are not shown: they
// hold gonum/plot's SVG, whose exact markup is no promise; what the page contains is.
func ExampleWrite() {
	var samples []report.Sample
	for i := range 30 {
		s := report.Sample{At: time.Duration(i) * 100 * time.Millisecond, Sent: 50, Acked: 50,
			P50: 2 * time.Millisecond, P99: 9 * time.Millisecond}
		if i >= 10 && i < 20 {
			s.Acked, s.P50, s.P99 = 0, 0, 0
		}
		samples = append(samples, s)
	}
	page := report.Page{Command: "kafkaguard verify --preset NoLoss --fault kill-leader", Runs: []report.Run{{
		Name: "NoLoss kill-leader", Verdict: "ok",
		Faults:    []report.FaultSpan{{Kind: "kill", Brokers: []int32{1}, Start: time.Second, End: 2 * time.Second}},
		Samples:   samples,
		Anomalies: []report.Anomaly{{Name: "lost-write", Status: report.StatusOK}},
	}}}
	var html bytes.Buffer
	if err := report.Write(&html, page); err != nil {
		log.Fatal(err)
	}
	out := html.String()
	fmt.Println("charts:", strings.Count(out, "<svg") > 0, "scripts:", strings.Contains(out, "<script"))
	fmt.Println("run shown:", strings.Contains(out, "NoLoss kill-leader"), "anomaly row:", strings.Contains(out, "lost-write"))

	err := report.Write(&html, report.Page{})
	fmt.Println(errors.Is(err, report.ErrNoRuns))
	// Output:
	// charts: true scripts: false
	// run shown: true anomaly row: true
	// true
}
