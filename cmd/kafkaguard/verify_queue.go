package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kafkaguard/kafkaguard/consume"
	"github.com/kafkaguard/kafkaguard/verify"
	"github.com/kafkaguard/kafkaguard/verify/report"
)

// queueCell is the consumers' side of a queue run: the order mode, the
// crash plan's seed and the queue checker's counts and anomalies.
type queueCell struct {
	Order string `json:"order"`
	Group string `json:"group,omitempty"`
	Seed  uint64 `json:"seed"`
	verify.QueueReport
	// CrashLog says which consumer crashed when (from the run's start).
	CrashLog []verify.QueueCrash `json:"crash_log,omitempty"`
}

// parseOrders parses a comma-separated list of consume order modes, or
// "all".
func parseOrders(list string) ([]consume.Order, error) {
	return parseNames(list, verify.Orders(), verify.ParseOrder, "no order mode given")
}

// parseNames parses a comma-separated list of names with parse, or "all"
// (every one of all); none is the error of an empty list.
func parseNames[T any](list string, all []T, parse func(string) (T, error), none string) ([]T, error) {
	if strings.EqualFold(strings.TrimSpace(list), "all") {
		return all, nil
	}
	var out []T
	for _, name := range splitList(list) {
		v, err := parse(name)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New(none)
	}
	return out, nil
}

// crashCount is --crashes as QueueConfig.Crashes, where 0 means the
// default: none is negative.
func crashCount(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// writeQueueTable prints one row per queue run, then the broken promises.
func writeQueueTable(w io.Writer, client verify.Client, cells []verifyRun, elapsed time.Duration) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "client %s, %s in %v\n\n", client, runsText(len(cells)), elapsed.Round(time.Second))
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tORDER\tPRESET\tFAULT\tCRASH-SEED\tACKED\tLOST\tHANDLED\tREHANDLED\tCRASHES\tANOMALIES\tVERDICT")
	for _, c := range cells {
		q := c.Queue
		fault := string(c.Fault)
		if c.Seed != nil {
			fault = fmt.Sprintf("%s:%d", c.Fault, *c.Seed) // the schedule's seed
		}
		if c.Result == nil || q == nil {
			order, seed := "-", "-"
			if q != nil {
				order, seed = q.Order, strconv.FormatUint(q.Seed, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t%s\n", c.Workload, order, c.Preset, fault, seed, c.Verdict)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", c.Workload, q.Order, c.Preset, fault, q.Seed,
			c.Result.Report.Acked, c.Result.Report.Lost, q.Handled, q.Rehandled, q.Crashes, q.Anomalies(), c.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeBroken(bw, cells, func(c verifyRun) string { return fmt.Sprintf("queue %s %s %s", c.Preset, c.Fault, c.Queue.Order) },
		"every acknowledged record handled, no commit ahead of handling, no anomaly")
	return bw.Flush()
}

// queueReportRun adds a queue run's side to its report section: its name,
// the consumers' counts and the queue checker's anomalies with examples.
func queueReportRun(r *report.Run, c verifyRun) {
	q := c.Queue
	if q == nil {
		return
	}
	r.Name = fmt.Sprintf("queue %s %s %s (seed %d)", q.Order, c.Preset, c.Fault, q.Seed)
	if c.Result == nil {
		return
	}
	r.Facts = append(r.Facts, report.Fact{Name: "consumers", Value: fmt.Sprintf(
		"%s in group %s: %d handled (%d distinct, %d again), %d indeterminate, %d crashes",
		q.Order, q.Group, q.Handled, q.Distinct, q.Rehandled, q.Indeterminate, q.Crashes)})
	r.Facts = appendCrashLog(r.Facts, "consumer crashes", q.CrashLog)
	r.Anomalies = appendFindings(r.Anomalies, "", verify.QueueKinds(), q.Findings)
	if q.Rehandled > 0 {
		r.Anomalies = append(r.Anomalies, report.Anomaly{Name: "rehandled", Count: q.Rehandled, Status: report.StatusInfo,
			Note: "the at-least-once cost: records in flight when their consumer crashed or lost the partition, run again"})
	}
}

// writeBroken prints, after a table, the runs that broke a promise or
// could not run (name names a run that could not), with their replay
// commands, or that every run kept its promise: promise.
func writeBroken(bw *bufio.Writer, cells []verifyRun, name func(verifyRun) string, promise string) {
	var problems []string
	broken := 0
	for _, c := range cells {
		if c.Error != "" || c.Failure != "" {
			broken++
		}
		switch {
		case c.Error != "":
			problems = append(problems, fmt.Sprintf("%s: %s", name(c), c.Error))
		case c.Failure != "":
			problems = append(problems, c.Failure)
		}
		if c.Replay != "" && (c.Error != "" || c.Failure != "") {
			problems = append(problems, "replay: "+c.Replay)
		}
	}
	if len(problems) == 0 {
		fmt.Fprintln(bw, "\nevery run kept its promise: "+promise)
		return
	}
	fmt.Fprintf(bw, "\n%d runs broke a promise or could not run:\n", broken)
	for _, p := range problems {
		fmt.Fprintf(bw, "- %s\n", strings.ReplaceAll(p, "\n", "; "))
	}
}

// appendCrashLog adds a report fact named name listing the crashes, if
// any.
func appendCrashLog(facts []report.Fact, name string, crashes []verify.QueueCrash) []report.Fact {
	if len(crashes) == 0 {
		return facts
	}
	var parts []string
	for _, c := range crashes {
		parts = append(parts, fmt.Sprintf("%s at %v", c.Consumer, c.At.Round(time.Millisecond)))
	}
	return append(facts, report.Fact{Name: name, Value: strings.Join(parts, ", ")})
}

// appendFindings adds a report row per kind (indeterminate left out),
// named prefix + kind: a violation with its examples if found, else ok.
func appendFindings(rows []report.Anomaly, prefix string, kinds []verify.AnomalyKind, found verify.Anomalies) []report.Anomaly {
	for _, k := range kinds {
		if k == verify.Indeterminate {
			continue
		}
		row := report.Anomaly{Name: prefix + string(k), Status: report.StatusOK}
		if f, ok := found.Get(k); ok {
			row.Count, row.Status, row.Examples = f.Count, report.StatusViolation, exampleTable(f.Examples)
		}
		rows = append(rows, row)
	}
	return rows
}
