package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/kafkaguard/kafkaguard/verify"
	"github.com/kafkaguard/kafkaguard/verify/report"
)

// copierCell is the copiers' side of a copier run: the mode, the crash
// plan's seed and the copier checker's counts and anomalies.
type copierCell struct {
	Mode   verify.CopierMode `json:"mode"`
	Seed   uint64            `json:"seed"`
	Group  string            `json:"group,omitempty"`
	Output string            `json:"output,omitempty"`
	verify.CopierReport
	// CrashLog says which copier crashed when (from the run's start).
	CrashLog []verify.QueueCrash `json:"crash_log,omitempty"`
}

// parseCopierModes parses a comma-separated list of copier modes, or
// "all".
func parseCopierModes(list string) ([]verify.CopierMode, error) {
	return parseNames(list, verify.CopierModes(), verify.ParseCopierMode, "no copier mode given")
}

// writeCopierTable prints one row per copier run, then the broken
// promises and how to replay each.
func writeCopierTable(w io.Writer, client verify.Client, cells []verifyRun, elapsed time.Duration) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "client %s, %s in %v\n\n", client, runsText(len(cells)), elapsed.Round(time.Second))
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tMODE\tPRESET\tFAULT\tCOPIER-SEED\tACKED\tCOPIED\tDUPLICATED\tLOST\tREORDERED\tABORTED-READS\tINTERMEDIATE-READS\tCRASHES\tVERDICT")
	for _, c := range cells {
		k := c.Copier
		fault := string(c.Fault)
		if c.Seed != nil {
			fault = fmt.Sprintf("%s:%d", c.Fault, *c.Seed) // the schedule's seed
		}
		if c.Result == nil || k == nil {
			mode, seed := "-", "-"
			if k != nil {
				mode, seed = string(k.Mode), strconv.FormatUint(k.Seed, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n", c.Workload, mode, c.Preset, fault, seed, c.Verdict)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", c.Workload, k.Mode, c.Preset, fault, k.Seed,
			k.Acked, k.Copied, k.Duplicated, k.Lost, k.Reordered, k.AbortedReads, k.IntermediateReads, k.Crashes, c.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeBroken(bw, cells, func(c verifyRun) string { return fmt.Sprintf("copier %s %s %s", c.Copier.Mode, c.Preset, c.Fault) },
		"every acknowledged record copied once, in key order, no read of an aborted or unfinished transaction")
	return bw.Flush()
}

// copierReportRun adds a copier run's side to its report section: its
// name, the copiers' counts and the copier checker's anomalies with
// examples.
func copierReportRun(r *report.Run, c verifyRun) {
	k := c.Copier
	if k == nil {
		return
	}
	r.Name = fmt.Sprintf("copier %s %s %s (seed %d)", k.Mode, c.Preset, c.Fault, k.Seed)
	if c.Result == nil {
		return
	}
	r.Facts = append(r.Facts, report.Fact{Name: "copiers", Value: fmt.Sprintf(
		"%s in group %s to %s: %d acknowledged, %d copied, %d read from the output, %d crashes",
		k.Mode, k.Group, k.Output, k.Acked, k.Copied, k.Read, k.Crashes)})
	r.Facts = appendCrashLog(r.Facts, "copier crashes", k.CrashLog)
	r.Anomalies = appendFindings(r.Anomalies, "copy: ", verify.CopierKinds(), k.Findings)
}
