// Package report renders what verify runs did as one self-contained HTML
// page: per run, a timeline of the faults (which broker, which fault, the
// window it lasted), the producer's throughput and ack latency (p50, p99)
// over time, lag over time, and a table of the anomalies found with
// examples.
//
// The input is plain data ([Page], [Run]): the package knows nothing of
// how a run was carried out, so a caller fills a Run from whatever it
// recorded (cmd/kafkaguard does it from a [verify.Result]). Charts are drawn
// with gonum.org/v1/plot as SVG and inlined in the page, which carries its
// own CSS: it opens with no network (no scripts, no external fonts or
// images). Every text of the input is escaped.
//
// Anomalies are rows of a small generic shape ([Anomaly] with an example
// [Table]), so that a checker with new kinds of anomaly, or richer examples
// (partition, offset, time, seed), fills the same table.
//
// [verify.Result]: https://pkg.go.dev/github.com/kafkaguard/kafkaguard/verify#Result
package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Page is one report: any number of runs, each in its own section.
type Page struct {
	// Title heads the page (default "kafkaguard verify report").
	Title string
	// Command is the command line that made the runs, shown verbatim.
	Command string
	// Created is when the report was made; the zero time is not shown.
	Created time.Time
	// Runs are shown in order.
	Runs []Run
}

// Run is one run: what it was, what happened over time and what it found.
// Times are offsets from the run's start.
type Run struct {
	Name    string // Name heads the run's section, such as "NoLoss kill-leader".
	Seed    string // Seed is the fault schedule's seed, if it was drawn from one.
	Replay  string // Replay is a command that replays the run, if known.
	Verdict string // Verdict sums the run up, such as "ok" or "FAIL: lost".
	// Failed marks a run that broke its promise or could not be carried out.
	Failed bool
	// Error says why the run could not be carried out; such a run has no
	// charts.
	Error string
	// Facts are label/value lines shown under the heading (topic, client,
	// acked, ...).
	Facts []Fact

	// Duration is the length of the charts' time axis (default: the last
	// sample, lag point or fault step).
	Duration time.Duration
	// Interval is the width of each [Sample] (default 100 ms).
	Interval time.Duration
	// Faults are the fault windows, drawn on the timeline and shaded on
	// every other chart.
	Faults []FaultSpan
	// Samples are the producer's outcomes per Interval, in time order.
	Samples []Sample
	// Lag are the lag series, drawn on one chart.
	Lag []Series

	// Anomalies are the rows of the anomaly table, in order.
	Anomalies []Anomaly
}

// Fact is one label/value line of a run.
type Fact struct {
	Name, Value string
}

// FaultSpan is one fault: its kind ("kill", "isolate", ...), the brokers it
// hit, and the window it lasted. End equal to Start is a single step, drawn
// as a thin mark.
type FaultSpan struct {
	Kind string
	// Brokers are the node ids the fault hit; none means the whole cluster.
	Brokers    []int32
	Start, End time.Duration
}

// Sample is what the producer did in one interval starting At: records
// handed to it, acknowledged and failed, and the latency (send to
// acknowledgement) of the records acknowledged in the interval. A zero
// latency means no record was acknowledged then.
type Sample struct {
	At                  time.Duration
	Sent, Acked, Failed int
	P50, P99            time.Duration
}

// Series is a named line of values over time; Note says what it measures
// and is shown under its chart.
type Series struct {
	Name   string
	Note   string
	Points []Point
}

// Point is one value of a [Series] at a time.
type Point struct {
	At    time.Duration
	Value float64
}

// Status is how bad an [Anomaly] row is; it picks the row's colour.
type Status string

// The statuses of an anomaly row.
const (
	// StatusOK is a row that counts nothing wrong (a count of zero).
	StatusOK Status = "ok"
	// StatusInfo is a row that is not an anomaly but worth counting, such as
	// records read back whose send had failed (indeterminate).
	StatusInfo Status = "info"
	// StatusAllowed is an anomaly the run's configuration permits, such as
	// a loss under acks=1.
	StatusAllowed Status = "allowed"
	// StatusViolation is an anomaly that breaks the run's promise.
	StatusViolation Status = "violation"
)

// Anomaly is one row of a run's anomaly table: a kind of anomaly, how many
// the run showed, how bad that is, and examples.
type Anomaly struct {
	Name   string // Name is the anomaly's name, such as "lost" or "lost-write".
	Count  int
	Status Status
	// Note explains the status, such as "allowed by acks=1".
	Note string
	// Examples are a few instances, one row each, with columns of the
	// checker's choosing (value, partition, offset, time, ...).
	Examples Table
}

// Table is a small table of text: a header and rows of cells.
type Table struct {
	Columns []string
	Rows    [][]string
}

// defaults of a Run.
const defaultInterval = 100 * time.Millisecond

// FileName is the name of the page [WriteDir] writes.
const FileName = "index.html"

// ErrNoRuns is returned by [Write] for a page without runs.
var ErrNoRuns = errors.New("report: the page has no runs")

// Write renders the page as HTML to w.
func Write(w io.Writer, p Page) error {
	if len(p.Runs) == 0 {
		return ErrNoRuns
	}
	v, err := build(p)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := pageTemplate().Execute(&buf, v); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// WriteDir renders the page to dir/index.html ([FileName]), creating dir
// if needed, and returns the file's path.
func WriteDir(dir string, p Page) (string, error) {
	if dir == "" {
		return "", errors.New("report: no directory given")
	}
	var buf bytes.Buffer
	if err := Write(&buf, p); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	path := filepath.Join(dir, FileName)
	tmp, err := os.CreateTemp(dir, "."+FileName+".*")
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	_, werr := buf.WriteTo(tmp)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("report: %w", werr)
	}
	return path, nil
}
