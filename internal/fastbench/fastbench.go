// Package fastbench measures, on the machine it runs on, the claims of the seed notes' "why Kafka
// is fast" section, each next to its opposite in the same run:
//
//   - sequential vs random 4 KiB writes to one file, fsynced (DiskWrites),
//   - producing with batching vs one record per request to the bundled broker (Produce),
//   - per-batch compression with each codec vs none, on JSON-like records (Compression),
//   - an offset lookup through the sparse offset index vs a scan from the start of the log, for
//     several log sizes (OffsetLookup),
//   - fetching with sendfile(2) (zero-copy) vs copying through the broker's memory (Fetch).
//
// Run runs them all and returns a Report, which "kafkaguard bench" prints; the package's
// benchmarks (go test -bench . ./internal/fastbench/) call the same functions. Every
// measurement is bounded by Config.Duration, so a run takes a predictable time; figures are
// from one run on a machine that may be shared, not a statistical study.
package fastbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Side is one side of a comparison: how one way of doing the work did.
type Side struct {
	// Name says what was done, e.g. "sequential" or "sparse index".
	Name string `json:"name"`
	// Value is the measured figure in Unit.
	Value float64 `json:"value"`
	// Unit is Value's unit, e.g. "MB/s", "records/s", "µs/lookup", "B/record".
	Unit string `json:"unit"`
}

// Row is one claim measured side by side with its opposite.
type Row struct {
	// Claim names the claim and the work, e.g. "sequential beats random writes".
	Claim string `json:"claim"`
	// Claimed is the way the claim says is better; Opposite is the other way.
	Claimed  Side `json:"claimed"`
	Opposite Side `json:"opposite"`
	// Ratio is how many times better Claimed did than Opposite: Claimed/Opposite for rates,
	// Opposite/Claimed for times and sizes. Above 1 the claim held on this machine.
	Ratio float64 `json:"ratio"`
	// Note says how the figures were obtained where it matters (e.g. O_DIRECT or not) and
	// what the claimed way cost (compression throughput).
	Note string `json:"note,omitempty"`
}

// Held reports whether the claim held: the claimed way did better.
func (r Row) Held() bool { return r.Ratio > 1 }

// rateRow is a Row whose sides are rates (higher is better).
func rateRow(claim string, claimed, opposite Side, note string) Row {
	return Row{Claim: claim, Claimed: claimed, Opposite: opposite, Ratio: claimed.Value / opposite.Value, Note: note}
}

// costRow is a Row whose sides are times or sizes (lower is better).
func costRow(claim string, claimed, opposite Side, note string) Row {
	return Row{Claim: claim, Claimed: claimed, Opposite: opposite, Ratio: opposite.Value / claimed.Value, Note: note}
}

// Config says how long and how big the measurements are.
type Config struct {
	// Dir is where the files go (the disk writes, the logs, the brokers' data), in a temporary
	// directory removed at the end. Default os.TempDir(); the disk row measures its file system.
	Dir string
	// Duration bounds each side of each comparison (default 2s, or 150ms when Quick).
	Duration time.Duration
	// Quick shrinks the files and logs as well, for a run of a few seconds.
	Quick bool
	// Progress, if set, is called before each measurement with what it is about to do.
	Progress func(step string)
}

// sizes are the amounts of data a run works with.
type sizes struct {
	diskFile  int64   // bytes of the file the disk writes go to
	logSizes  []int64 // bytes of each log the offset lookups run on
	fetchData int64   // bytes each broker serves for the fetch comparison
}

func (c Config) withDefaults() (Config, sizes) {
	if c.Dir == "" {
		c.Dir = os.TempDir()
	}
	if c.Quick {
		if c.Duration <= 0 {
			c.Duration = 150 * time.Millisecond
		}
		return c, sizes{diskFile: 8 << 20, logSizes: []int64{256 << 10, 1 << 20, 4 << 20}, fetchData: 8 << 20}
	}
	if c.Duration <= 0 {
		c.Duration = 2 * time.Second
	}
	return c, sizes{diskFile: 128 << 20, logSizes: []int64{1 << 20, 8 << 20, 64 << 20}, fetchData: 128 << 20}
}

// Report is the outcome of Run.
type Report struct {
	// Rows are the comparisons, in the order of the package doc.
	Rows []Row `json:"rows"`
	// Elapsed is how long the run took.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Machine describes where it ran: GOOS/GOARCH and CPU count.
	Machine string `json:"machine"`
	// Duration is the bound of each side (Config.Duration).
	Duration time.Duration `json:"duration_ns"`
}

// Run runs every comparison and returns their rows. It stops at the first comparison that
// fails, returning the rows measured so far with the error.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg, sz := cfg.withDefaults()
	start := time.Now()
	rep := Report{Machine: fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()), Duration: cfg.Duration}
	dir, err := os.MkdirTemp(cfg.Dir, "kafkaguard-bench-")
	if err != nil {
		return rep, fmt.Errorf("fastbench: %w", err)
	}
	defer os.RemoveAll(dir)
	progress := func(s string) {
		if cfg.Progress != nil {
			cfg.Progress(s)
		}
	}
	steps := []func() ([]Row, error){
		func() ([]Row, error) {
			r, err := DiskWrites(ctx, dir, sz.diskFile, cfg.Duration, progress)
			return []Row{r}, err
		},
		func() ([]Row, error) {
			r, err := Produce(ctx, dir, cfg.Duration, progress)
			return []Row{r}, err
		},
		func() ([]Row, error) { return Compression(ctx, cfg.Duration, progress) },
		func() ([]Row, error) { return OffsetLookup(ctx, dir, sz.logSizes, cfg.Duration, progress) },
		func() ([]Row, error) {
			r, err := Fetch(ctx, dir, sz.fetchData, cfg.Duration, progress)
			return []Row{r}, err
		},
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rows, err := step()
		rep.Rows = append(rep.Rows, rows...)
		if err != nil {
			rep.Elapsed = time.Since(start)
			return rep, err
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// WriteTable writes the report as a table, one row per comparison, and a line saying how many
// claims held.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s, each side bounded by %v, %v in all\n\n", r.Machine, r.Duration, r.Elapsed.Round(time.Second))
	fmt.Fprintln(tw, "CLAIM\tCLAIMED WAY\tRESULT\tOPPOSITE\tRESULT\tRATIO\tHELD\tNOTE")
	held := 0
	for _, row := range r.Rows {
		verdict := "no"
		if row.Held() {
			verdict = "yes"
			held++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Claim,
			row.Claimed.Name, formatValue(row.Claimed), row.Opposite.Name, formatValue(row.Opposite),
			formatRatio(row.Ratio), verdict, row.Note)
	}
	fmt.Fprintf(tw, "\n%d of %d comparisons held (ratio above 1)\n", held, len(r.Rows))
	return tw.Flush()
}

func formatValue(s Side) string {
	v := s.Value
	var num string
	switch {
	case v >= 100:
		num = strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		num = strconv.FormatFloat(v, 'f', 1, 64)
	default:
		num = strconv.FormatFloat(v, 'f', 2, 64)
	}
	return num + " " + s.Unit
}

func formatRatio(r float64) string {
	if r >= 10 {
		return strconv.FormatFloat(r, 'f', 0, 64) + "x"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "x"
}

// until runs fn repeatedly until d has passed (at least once) or ctx ends, and returns how many
// times it ran and the time taken.
func until(ctx context.Context, d time.Duration, fn func() error) (n int, elapsed time.Duration, err error) {
	start := time.Now()
	for {
		if err := fn(); err != nil {
			return n, time.Since(start), err
		}
		n++
		elapsed = time.Since(start)
		if elapsed >= d {
			return n, elapsed, nil
		}
		if err := ctx.Err(); err != nil {
			return n, elapsed, err
		}
	}
}

// mbps is bytes over elapsed in MB/s (10^6 bytes per second).
func mbps(bytes int64, elapsed time.Duration) float64 {
	return float64(bytes) / 1e6 / elapsed.Seconds()
}

// errEmpty is returned when a measurement did no work to measure.
var errEmpty = errors.New("fastbench: nothing measured")

// sizeText is n bytes as "8 MiB" or "256 KiB".
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// joinNotes joins the non-empty notes with "; ".
func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}
