package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kafkaguard/kafkaguard/verify"
	"github.com/kafkaguard/kafkaguard/verify/report"
)

// Notes under the lag chart: what each series measures.
const (
	hwLagNote = "acknowledged records no consumer could read yet: over the partitions, the highest acknowledged offset + 1 " +
		"minus the high watermark, sampled every 100 ms while records are produced and awaited (gaps: a high watermark " +
		"could not be listed, e.g. while a partition has no leader; none under acks=0, which reports no offsets). " +
		"acks=all keeps it at 0; acks=1 shows the leader acknowledging alone."
	readLagNote = "records between the read-back consumer's position and the end offsets, while verify reads the topic " +
		"back after the run."
)

// checkReportDir makes sure the report can be written to dir before any
// run starts: it creates dir and a file in it.
func checkReportDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".kafkaguard-report-check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// reportPage is the report of a verify command's runs.
func reportPage(command string, client verify.Client, cells []verifyRun, created time.Time) report.Page {
	p := report.Page{Command: command, Created: created}
	for _, c := range cells {
		p.Runs = append(p.Runs, reportRun(client, c))
	}
	return p
}

// reportRun is one run of the matrix as the report shows it.
func reportRun(client verify.Client, c verifyRun) report.Run {
	r := report.Run{Name: c.Preset.String() + " " + string(c.Fault), Verdict: c.Verdict,
		Failed: c.Error != "" || c.Failure != "", Replay: c.Replay}
	if c.Seed != nil {
		r.Seed = strconv.FormatInt(*c.Seed, 10)
		r.Name = c.Preset.String() + " seed " + r.Seed
	}
	switch {
	case c.Skipped != "":
		r.Error = "the fault source " + c.Skipped
		queueReportRun(&r, c)
		copierReportRun(&r, c)
		return r
	case c.Result == nil:
		r.Error = c.Error
		queueReportRun(&r, c)
		copierReportRun(&r, c)
		return r
	}
	res := c.Result
	rep := res.Report
	r.Facts = []report.Fact{
		{Name: "client", Value: string(client)},
		{Name: "topic", Value: res.Topic},
		{Name: "records", Value: fmt.Sprintf("%d sent, %d acknowledged, %d failed, %d read back", res.Sent, rep.Acked, res.Failed, rep.Read)},
	}
	if len(res.TopicConfigs) > 0 {
		r.Facts = append(r.Facts, report.Fact{Name: "topic configs", Value: topicConfigsText(res.TopicConfigs)})
	}
	if res.FirstError != "" {
		r.Facts = append(r.Facts, report.Fact{Name: "first send error", Value: res.FirstError})
	}
	if c.Failure != "" {
		r.Facts = append(r.Facts, report.Fact{Name: "broken promise", Value: c.Failure})
	}
	if tl := res.Timeline; tl != nil {
		r.Duration, r.Interval = tl.Duration, tl.Interval
		for _, w := range tl.Windows() {
			r.Faults = append(r.Faults, report.FaultSpan{Kind: string(w.Op), Brokers: []int32{w.Broker}, Start: w.Start, End: w.End})
		}
		for _, s := range tl.Samples {
			r.Samples = append(r.Samples, report.Sample{At: s.At, Sent: s.Sent, Acked: s.Acked, Failed: s.Failed,
				P50: s.LatencyP50, P99: s.LatencyP99})
		}
		for _, l := range []struct {
			name, note string
			pts        []verify.TimelineLag
		}{
			{"acknowledged above the high watermark", hwLagNote, tl.HighWatermarkLag},
			{"read-back lag", readLagNote, tl.ReadLag},
		} {
			if len(l.pts) == 0 {
				continue
			}
			s := report.Series{Name: l.name, Note: l.note}
			for _, pt := range l.pts {
				s.Points = append(s.Points, report.Point{At: pt.At, Value: float64(pt.Records)})
			}
			r.Lag = append(r.Lag, s)
		}
	}
	r.Anomalies = anomalyRows(*res)
	queueReportRun(&r, c)
	copierReportRun(&r, c)
	return r
}

// anomalyRows are the checker's counts as anomaly rows: a violation when
// it breaks the preset's promise (Result.Err), allowed otherwise.
func anomalyRows(res verify.Result) []report.Anomaly {
	rep, err := res.Report, res.Err()
	status := func(n int, is error) report.Status {
		switch {
		case n == 0:
			return report.StatusOK
		case errors.Is(err, is):
			return report.StatusViolation
		}
		return report.StatusAllowed
	}
	note := func(s report.Status) string { // "allowed: by acks=1"
		if s == report.StatusAllowed {
			return strings.TrimPrefix(res.Verdict(), "allowed ")
		}
		return ""
	}
	// Where each lost record was acknowledged.
	ackedAt := make(map[verify.Value]verify.Ack, len(rep.LostSample))
	for _, v := range rep.LostSample {
		ackedAt[v] = verify.Ack{Partition: -1, Offset: -1}
	}
	for _, a := range res.Acked {
		if _, ok := ackedAt[a.Value]; ok {
			ackedAt[a.Value] = a
		}
	}
	lost := report.Table{Columns: []string{"value", "acknowledged at partition", "offset"}}
	for _, v := range rep.LostSample {
		a := ackedAt[v]
		lost.Rows = append(lost.Rows, []string{v.String(), strconv.Itoa(int(a.Partition)), strconv.FormatInt(a.Offset, 10)})
	}
	rows := []report.Anomaly{
		{Name: "lost", Count: rep.Lost, Status: status(rep.Lost, verify.ErrLost), Examples: lost},
		{Name: "duplicated", Count: rep.Duplicated, Status: status(rep.Duplicated, verify.ErrDuplicated), Examples: valueTable(rep.DuplicatedSample)},
		{Name: "reordered", Count: rep.Reordered, Status: status(rep.Reordered, verify.ErrReordered), Examples: valueTable(rep.ReorderedSample)},
	}
	if rep.SplitKeys > 0 {
		rows = append(rows, report.Anomaly{Name: "split keys", Count: rep.SplitKeys, Status: status(rep.SplitKeys, verify.ErrReordered),
			Note: "keys read back from more than one partition"})
	}
	up := report.Anomaly{Name: "unacked-present", Count: rep.UnackedPresent, Status: report.StatusOK}
	if rep.UnackedPresent > 0 {
		up.Status, up.Note = report.StatusInfo, "indeterminate, not an anomaly: read back though the send reported no acknowledgement"
	}
	rows = append(rows, up)
	if res.Corrupt > 0 {
		rows = append(rows, report.Anomaly{Name: "corrupt", Count: res.Corrupt, Status: report.StatusViolation,
			Note: "records read back that are not workload values"})
	}
	// The checker's named anomalies (lost-write, unseen, …), each with its examples.
	for _, a := range res.Anomalies {
		st := report.StatusAllowed
		switch {
		case a.Kind == verify.Indeterminate:
			st = report.StatusInfo
		case err != nil:
			st = report.StatusViolation
		}
		rows = append(rows, report.Anomaly{Name: string(a.Kind), Count: a.Count, Status: st, Examples: exampleTable(a.Examples)})
	}
	for i := range rows {
		if rows[i].Note == "" {
			rows[i].Note = note(rows[i].Status)
		}
	}
	return rows
}

// exampleTable is the table of an anomaly's examples; the consumer column
// is there when an example names one (queue workload).
func exampleTable(exs []verify.Example) report.Table {
	consumers := slices.ContainsFunc(exs, func(e verify.Example) bool { return e.Consumer != "" })
	t := report.Table{Columns: []string{"value", "partition", "offset", "at", "faults then", "note"}}
	if consumers {
		t.Columns = slices.Insert(t.Columns, 3, "consumer")
	}
	for _, e := range exs {
		row := []string{e.Value.String(), strconv.Itoa(int(e.Partition)), strconv.FormatInt(e.Offset, 10),
			e.At.Round(time.Millisecond).String(), strings.Join(e.Faults, ", "), e.Note}
		if consumers {
			row = slices.Insert(row, 3, e.Consumer)
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// valueTable is a one-column example table of workload values.
func valueTable(vs []verify.Value) report.Table {
	t := report.Table{Columns: []string{"value"}}
	for _, v := range vs {
		t.Rows = append(t.Rows, []string{v.String()})
	}
	return t
}

func topicConfigsText(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// commandLine is the command as the user could type it again: the
// command's path and the flags set, each quoted for a POSIX shell when it
// needs to be.
func commandLine(cmd *cobra.Command) string {
	parts := []string{cmd.CommandPath()}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		parts = append(parts, "--"+f.Name+"="+shellQuote(f.Value.String()))
	})
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a POSIX shell unless it needs no quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/=@+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
