package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kafkaguard/kafkaguard/internal/fastbench"
)

const benchLong = `Measures, on this machine and in one run, the claims of "why Kafka is fast",
each side by side with its opposite, and prints one row per comparison with
the ratio (how many times better the claimed way did; above 1 the claim held):

	disk          sequential vs random 4 KiB writes to one file, fsynced, with
	              O_DIRECT where the file system allows it (the note says)
	produce       batching vs one record per request, to the bundled broker
	compression   gzip, snappy, lz4 and zstd vs none on JSON-like records:
	              bytes per record, with each codec's throughput in the note
	offset lookup the sparse offset index vs a scan from the start of the log,
	              for three log sizes (the scan grows with the log)
	fetch         sendfile(2) (zero-copy) vs copying through the broker

Each side runs for --duration (default 2s; about 50s in all), or with --quick
for a few seconds on small files. Files go to a temporary directory under
--dir, removed at the end. Progress goes to stderr. The same measurements run
as Go benchmarks: go test -bench . ./internal/fastbench/

Exit status: 0 when every comparison was measured (whether or not its claim
held), 1 when one could not be carried out, 2 for bad usage.`

// newBenchCmd is "kafkaguard bench".
func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench [--quick] [--duration D] [--dir DIR] [--json]",
		Short: `Demonstrate "why Kafka is fast" on this machine: each claim next to its opposite`,
		Long:  benchLong,
		Example: `  kafkaguard bench
  kafkaguard bench --quick --json
  kafkaguard bench --duration 5s --dir /var/lib/kafka-disk`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	quick := fs.Bool("quick", false, "small files and 150ms per side (unless --duration is given): a run of a few seconds")
	duration := durationFlag(fs, "duration", 2*time.Second, between(10*time.Millisecond, time.Minute), "how long each side of each comparison runs")
	dir := fs.String("dir", "", "directory for the files written (default: the system's temporary directory); the disk row measures its file system")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg := fastbench.Config{Dir: *dir, Quick: *quick}
		if fs.Changed("duration") || !*quick {
			cfg.Duration = *duration
		}
		prog := newProgressLine(cmd.ErrOrStderr())
		cfg.Progress = prog.step
		rep, err := fastbench.Run(cmd.Context(), cfg)
		prog.clear()
		if err != nil {
			return failure(err)
		}
		out := cmd.OutOrStdout()
		if *asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			err = enc.Encode(rep)
		} else {
			err = rep.WriteTable(out)
		}
		if err != nil {
			return failure(fmt.Errorf("writing output: %w", err))
		}
		return nil
	}
	return cmd
}
