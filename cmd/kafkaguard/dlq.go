package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/retry"
)

const dlqLong = `Inspects and replays a dead-letter topic written by the retry job (or by a
Spring service: both header formats are read):

	list    the dead letters grouped by error, with their ages
	show    one dead letter (--partition, --offset) with its whole retry history
	replay  re-send selected dead letters to their source topic or, as fresh
	        markers, to their retry topic

The dead-letter topic is --dlq-topic, or TOPIC.dlq for --topic TOPIC
(TOPIC-dlt with --header-mode spring).

Replay is idempotent for replays run one after the other: every record it
writes carries the header kafkaguard.retry.replayed-from with the dead letter's
topic/partition@offset, and before writing it reads the destination from an
hour before the oldest selected dead letter was written and skips the dead
letters already replayed there. Two replays of the same records at the same
moment can both write: run one at a time.`

// newDLQCmd is "kafkaguard dlq".
func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq list|show|replay [flags]",
		Short: "List, show and replay the records of a dead-letter topic",
		Long:  dlqLong + "\n\nExit status: 0 on success, 1 when the cluster could not be read or a record\nnot written, 2 for bad usage." + securityHelp,
		Example: `  kafkaguard dlq list --bootstrap 127.0.0.1:9092 --topic orders
  kafkaguard dlq show --bootstrap 127.0.0.1:9092 --topic orders --partition 0 --offset 42
  kafkaguard dlq replay --bootstrap 127.0.0.1:9092 --topic orders --error timeout --dry-run
  kafkaguard dlq replay --bootstrap 127.0.0.1:9092 --topic orders --from-offset 10 --to-offset 20 --to retry`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown dlq command %q: want list, show or replay", args[0])
			}
			fmt.Fprint(cmd.ErrOrStderr(), cmd.UsageString())
			return exitCode(2)
		},
	}
	cmd.AddCommand(newDLQListCmd(), newDLQShowCmd(), newDLQReplayCmd())
	for _, c := range cmd.Commands() {
		c.DisableFlagsInUseLine = true
		c.InitDefaultHelpFlag()
	}
	return cmd
}

// dlqFlags are the flags every dlq command takes: where the topic is.
type dlqFlags struct {
	bootstrap, topic, dlqTopic, headerMode *string
	timeout                                *time.Duration
	sec                                    *securityFlags
}

func addDLQFlags(fs *pflag.FlagSet) *dlqFlags {
	return &dlqFlags{
		bootstrap:  fs.String("bootstrap", "", "comma-separated host:port list of Kafka brokers (required)"),
		topic:      fs.String("topic", "", "source topic whose dead letters these are (or --dlq-topic)"),
		dlqTopic:   fs.String("dlq-topic", "", "dead-letter topic (default TOPIC.dlq, or TOPIC-dlt with --header-mode spring)"),
		headerMode: fs.String("header-mode", "kafkaguard", "kafkaguard or spring: the default topic names, and the format of markers replayed to a retry topic"),
		timeout:    durationFlag(fs, "timeout", time.Minute, positive[time.Duration](), "give up after this long"),
		sec:        addSecurityFlags(fs),
	}
}

// read checks the flags, opens the DeadLetters (extra options after the
// flags'), reads the dead letters filter selects and calls fn with them,
// all within --timeout.
func (f *dlqFlags) read(ctx context.Context, filter retry.Filter, extra []retry.DeadLettersOpt,
	fn func(context.Context, *retry.DeadLetters, []*retry.DeadLetter) error) error {
	brokers := splitList(*f.bootstrap)
	if len(brokers) == 0 {
		return usageErrorf("--bootstrap is required")
	}
	if *f.topic == "" && *f.dlqTopic == "" {
		return usageErrorf("--topic or --dlq-topic is required")
	}
	mode, err := retry.ParseHeaderMode(*f.headerMode)
	if err != nil {
		return usageErrorf("--header-mode must be kafkaguard or spring, got %q", *f.headerMode)
	}
	secOpts, err := f.sec.kgoOpts()
	if err != nil {
		return err
	}
	opts := []retry.DeadLettersOpt{retry.Headers(mode),
		retry.KgoOpts(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID("kafkaguard-dlq")}, secOpts...)...)}
	if *f.topic != "" {
		opts = append(opts, retry.Topic(*f.topic))
	}
	if *f.dlqTopic != "" {
		opts = append(opts, retry.DeadLetterTopic(*f.dlqTopic))
	}
	d, err := retry.NewDeadLetters(append(opts, extra...)...)
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	dls, err := d.Read(ctx, filter)
	if err != nil {
		return failure(err)
	}
	return fn(ctx, d, dls)
}

// selectFlags select dead letters.
type selectFlags struct {
	fs                 *pflag.FlagSet
	partition          *int
	fromOffset, toOff  *int
	key, errorContains *string
}

func addSelectFlags(fs *pflag.FlagSet) *selectFlags {
	return &selectFlags{
		fs:            fs,
		partition:     intFlag(fs, "partition", -1, atLeast(-1), "only this partition of the dead-letter topic (-1: all)"),
		fromOffset:    intFlag(fs, "from-offset", 0, atLeast(0), "only dead letters at this offset or later"),
		toOff:         intFlag(fs, "to-offset", -1, atLeast(-1), "only dead letters at this offset or earlier (-1: no bound)"),
		key:           fs.String("key", "", "only dead letters with this key"),
		errorContains: fs.String("error", "", "only dead letters with this text in an error of their history or their reason"),
	}
}

// changed reports whether any selection flag was given.
func (s *selectFlags) changed() bool {
	for _, name := range []string{"partition", "from-offset", "to-offset", "key", "error"} {
		if s.fs.Changed(name) {
			return true
		}
	}
	return false
}

func (s *selectFlags) filter() (retry.Filter, error) {
	f := retry.Filter{From: int64(*s.fromOffset), ErrorContains: *s.errorContains}
	if *s.partition >= 0 {
		f.Partitions = []int32{int32(*s.partition)}
	}
	if *s.toOff >= 0 {
		if *s.toOff < *s.fromOffset {
			return f, usageErrorf("--to-offset (%d) must be at least --from-offset (%d)", *s.toOff, *s.fromOffset)
		}
		f.Until = int64(*s.toOff) + 1
	}
	if s.fs.Changed("key") {
		f.Key = []byte(*s.key)
	}
	return f, nil
}

func newDLQListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list --bootstrap LIST --topic T [flags]",
		Short: "List the dead letters grouped by error and age",
		Long: `Reads the dead-letter topic up to its current end and prints the dead letters
grouped by error (the last error of their history, or why they were
dead-lettered), the largest group first: how many, how many were written
under an hour, a day, a week ago and earlier, and the oldest and newest.
--json prints {"topic", "count", "groups": [{"error", "count", "by_age",
"oldest", "newest"}]}.

Exit status: 0, 1 when the topic could not be read, 2 for bad usage.` + securityHelp,
		Example: "  kafkaguard dlq list --bootstrap 127.0.0.1:9092 --topic orders --json",
		Args:    noArgs,
	}
	fs := cmd.Flags()
	f := addDLQFlags(fs)
	sel := addSelectFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		filter, err := sel.filter()
		if err != nil {
			return err
		}
		return f.read(cmd.Context(), filter, nil, func(_ context.Context, d *retry.DeadLetters, dls []*retry.DeadLetter) error {
			return writeList(cmd.OutOrStdout(), d.Topic(), dls, *asJSON)
		})
	}
	return cmd
}

// writeList prints the dead letters grouped by error and age.
func writeList(stdout io.Writer, topic string, dls []*retry.DeadLetter, asJSON bool) error {
	groups := retry.Summarize(dls, time.Now())
	if asJSON {
		type group struct {
			Error  string         `json:"error"`
			Count  int            `json:"count"`
			ByAge  map[string]int `json:"by_age"`
			Oldest time.Time      `json:"oldest"`
			Newest time.Time      `json:"newest"`
		}
		out := struct {
			Topic  string  `json:"topic"`
			Count  int     `json:"count"`
			Groups []group `json:"groups"`
		}{Topic: topic, Count: len(dls), Groups: []group{}}
		for _, g := range groups {
			by := map[string]int{}
			for i, name := range retry.AgeBuckets {
				by[name] = g.ByAge[i]
			}
			out.Groups = append(out.Groups, group{g.Cause, g.Count, by, g.Oldest.UTC(), g.Newest.UTC()})
		}
		return writeJSON(stdout, out)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "%s: %d dead letters, %d errors\n", topic, len(dls), len(groups))
	if len(groups) > 0 {
		fmt.Fprintf(w, "COUNT\t%s\tOLDEST\tNEWEST\tERROR\n", strings.Join(retry.AgeBuckets[:], "\t"))
	}
	for _, g := range groups {
		fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", g.Count, g.ByAge[0], g.ByAge[1], g.ByAge[2], g.ByAge[3],
			g.Oldest.UTC().Format(time.RFC3339), g.Newest.UTC().Format(time.RFC3339), oneLine(g.Cause, 120))
	}
	if err := w.Flush(); err != nil {
		return failure(fmt.Errorf("writing output: %w", err))
	}
	return nil
}

func newDLQShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show --bootstrap LIST --topic T --partition P --offset O [--json]",
		Short: "Print one dead letter with its whole retry history",
		Long: `Prints the dead letter at --partition and --offset of the dead-letter topic:
the original record (topic, partition, offset, timestamp, key, value,
headers), its attempts, when it first failed, why it was dead-lettered and
every failed attempt with its time and error.

Exit status: 0, 1 when there is no such record or the topic could not be
read, 2 for bad usage.` + securityHelp,
		Example: "  kafkaguard dlq show --bootstrap 127.0.0.1:9092 --topic orders --partition 0 --offset 42",
		Args:    noArgs,
	}
	fs := cmd.Flags()
	f := addDLQFlags(fs)
	partition := intFlag(fs, "partition", 0, atLeast(0), "partition of the dead-letter topic")
	offset := intFlag(fs, "offset", -1, atLeast(-1), "offset of the dead letter (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *offset < 0 {
			return usageErrorf("--offset is required")
		}
		filter := retry.Filter{Partitions: []int32{int32(*partition)}, From: int64(*offset), Until: int64(*offset) + 1}
		return f.read(cmd.Context(), filter, nil, func(_ context.Context, d *retry.DeadLetters, dls []*retry.DeadLetter) error {
			if len(dls) == 0 {
				return failure(fmt.Errorf("%w: %s/%d@%d", retry.ErrNoSuchDeadLetter, d.Topic(), *partition, *offset))
			}
			if *asJSON {
				return writeJSON(cmd.OutOrStdout(), showJSON(dls[0]))
			}
			return writeDeadLetter(cmd.OutOrStdout(), dls[0])
		})
	}
	return cmd
}

type headerJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// showJSON is the JSON form of a dead letter.
func showJSON(dl *retry.DeadLetter) any {
	out := map[string]any{
		"dead_letter": dl.Source(),
		"written":     dl.Written.UTC(),
		"error":       dl.Cause(),
	}
	hs := func(in []kgo.RecordHeader) []headerJSON {
		out := []headerJSON{}
		for _, h := range in {
			out = append(out, headerJSON{h.Key, string(h.Value)})
		}
		return out
	}
	m := dl.Marker
	if m == nil {
		out["unreadable"] = dl.Err.Error()
		out["key"], out["value"], out["headers"] = string(dl.Record.Key), string(dl.Record.Value), hs(dl.Record.Headers)
		return out
	}
	history := []map[string]any{}
	for _, a := range m.History {
		h := map[string]any{"attempt": a.Attempt, "error": a.Error}
		if !a.At.IsZero() {
			h["at"] = a.At.UTC()
		}
		history = append(history, h)
	}
	out["original"] = map[string]any{"topic": m.Topic, "partition": m.Partition, "offset": m.Offset, "timestamp": m.Timestamp.UTC()}
	out["key"], out["value"], out["headers"] = string(m.Key), string(m.Value), hs(m.Headers)
	out["attempts"], out["reason"], out["history"] = m.Attempts, m.Reason, history
	if !m.FirstFailed.IsZero() {
		out["first_failed"] = m.FirstFailed.UTC()
	}
	return out
}

func writeDeadLetter(w io.Writer, dl *retry.DeadLetter) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "dead letter\t%s\n", dl.Source())
	fmt.Fprintf(tw, "written\t%s\n", dl.Written.UTC().Format(time.RFC3339Nano))
	key, value, headers := dl.Record.Key, dl.Record.Value, dl.Record.Headers
	if m := dl.Marker; m != nil {
		key, value, headers = m.Key, m.Value, m.Headers
		fmt.Fprintf(tw, "original\t%s, timestamp %s\n", m.Origin, m.Timestamp.UTC().Format(time.RFC3339Nano))
	} else {
		fmt.Fprintf(tw, "unreadable\t%v\n", dl.Err)
	}
	fmt.Fprintf(tw, "key\t%s\n", printable(key))
	fmt.Fprintf(tw, "value\t%s (%d bytes)\n", printable(value), len(value))
	for _, h := range headers {
		fmt.Fprintf(tw, "header\t%s=%s\n", h.Key, printable(h.Value))
	}
	if m := dl.Marker; m != nil {
		fmt.Fprintf(tw, "attempts\t%d\n", m.Attempts)
		if !m.FirstFailed.IsZero() {
			fmt.Fprintf(tw, "first failed\t%s\n", m.FirstFailed.UTC().Format(time.RFC3339Nano))
		}
		if m.Reason != "" {
			fmt.Fprintf(tw, "reason\t%s\n", m.Reason)
		}
		fmt.Fprintf(tw, "history\t%d failed attempts\n", len(m.History))
		for _, a := range m.History {
			at := "-"
			if !a.At.IsZero() {
				at = a.At.UTC().Format(time.RFC3339Nano)
			}
			fmt.Fprintf(tw, "  #%d\t%s  %s\n", a.Attempt, at, oneLine(a.Error, 1000))
		}
	} else {
		fmt.Fprintf(tw, "error\t%s\n", dl.Cause())
	}
	if err := tw.Flush(); err != nil {
		return failure(fmt.Errorf("writing output: %w", err))
	}
	return nil
}

func newDLQReplayCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay --bootstrap LIST --topic T (--all | selection) [--to source|retry] [--dry-run]",
		Short: "Re-send selected dead letters to their source or retry topic, once",
		Long: `Re-sends the selected dead letters (--partition, --from-offset, --to-offset,
--key, --error; or --all) to the topic they were first read from (--to
source, the default: key, value and headers as they were) or back to their
retry topic (--to retry: a marker due at once with no attempt counted, so
the retry job runs it its --max-attempts again). Progress goes to stderr;
what was done, one line per dead letter and a summary, to stdout (--json:
the whole report). --dry-run writes nothing and says what would be written.

A dead letter already replayed to the destination (the replayed-from header,
see 'kafkaguard dlq --help') is not written again: replaying twice writes
once.

Exit status: 0 when every selected dead letter was written, found already
replayed or (dry run) would be written; 1 when the topics could not be read
or a record was not written; 2 for bad usage.` + securityHelp,
		Example: `  kafkaguard dlq replay --bootstrap 127.0.0.1:9092 --topic orders --error "connection refused" --dry-run
  kafkaguard dlq replay --bootstrap 127.0.0.1:9092 --topic orders --all --to retry`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	f := addDLQFlags(fs)
	sel := addSelectFlags(fs)
	all := fs.Bool("all", false, "replay every dead letter")
	to := fs.String("to", "source", "destination: source (the original topic) or retry (the retry topic)")
	retryTopic := fs.String("retry-topic", "", "retry topic for --to retry (default TOPIC.retry, or TOPIC-retry with --header-mode spring)")
	dryRun := fs.Bool("dry-run", false, "write nothing; print what would be written")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
		var dest retry.Destination
		switch *to {
		case "source":
			dest = retry.ToSource
		case "retry":
			dest = retry.ToRetry
		default:
			return usageErrorf("--to must be source or retry, got %q", *to)
		}
		if *retryTopic != "" && dest != retry.ToRetry {
			return usageErrorf("--retry-topic goes with --to retry")
		}
		if *all == sel.changed() {
			return usageErrorf("select the dead letters to replay with --partition, --from-offset, --to-offset, --key or --error, or give --all (not both)")
		}
		filter, err := sel.filter()
		if err != nil {
			return err
		}
		var extra []retry.DeadLettersOpt
		if *retryTopic != "" {
			extra = append(extra, retry.RetryTopic(*retryTopic))
		}
		return f.read(cmd.Context(), filter, extra, func(ctx context.Context, d *retry.DeadLetters, dls []*retry.DeadLetter) error {
			return replay(ctx, stdout, stderr, d, dls, dest, *dryRun, *asJSON)
		})
	}
	return cmd
}

// replay replays dls, with a progress line on stderr, and prints what it did.
func replay(ctx context.Context, stdout, stderr io.Writer, d *retry.DeadLetters, dls []*retry.DeadLetter, dest retry.Destination, dryRun, asJSON bool) error {
	var opts []retry.ReplayOpt
	if dryRun {
		opts = append(opts, retry.DryRun())
	}
	opts = append(opts, retry.OnProgress(func(done, total int) {
		fmt.Fprintf(stderr, "\rreplay: %d/%d dead letters", done, total)
	}))
	rep, rerr := d.Replay(ctx, dls, dest, opts...)
	fmt.Fprintln(stderr)
	if rep == nil {
		return failure(rerr)
	}
	if asJSON {
		if err := writeJSON(stdout, replayJSON(d.Topic(), rep)); err != nil {
			return err
		}
	} else {
		for _, it := range rep.Items {
			line := fmt.Sprintf("%-16s %s", it.Outcome, it.From)
			if it.Topic != "" {
				line += " -> " + it.Topic
				if it.Offset >= 0 {
					line += "/" + strconv.Itoa(int(it.Partition)) + "@" + strconv.FormatInt(it.Offset, 10)
				}
				line += " (original " + it.Origin.String() + ")"
			}
			if it.Err != "" {
				line += ": " + it.Err
			}
			fmt.Fprintln(stdout, line)
		}
		verb := "replayed"
		if rep.DryRun {
			verb = "dry run, nothing written"
		}
		fmt.Fprintf(stdout, "%s to %s: %d selected, %d written, %d would be written, %d already replayed, %d skipped, %d failed\n",
			verb, rep.To, len(rep.Items), rep.Written, rep.Would, rep.AlreadyReplayed, rep.Skipped, rep.Failed)
	}
	if rerr != nil {
		return failure(rerr)
	}
	return nil
}

func replayJSON(topic string, rep *retry.ReplayReport) any {
	type item struct {
		From      string `json:"from"`
		Origin    string `json:"origin,omitempty"`
		Topic     string `json:"topic,omitempty"`
		Outcome   string `json:"outcome"`
		Partition *int32 `json:"partition,omitempty"`
		Offset    *int64 `json:"offset,omitempty"`
		Error     string `json:"error,omitempty"`
	}
	items := []item{}
	for _, it := range rep.Items {
		x := item{From: it.From, Topic: it.Topic, Outcome: string(it.Outcome), Error: it.Err}
		if it.Topic != "" {
			x.Origin = it.Origin.String()
		}
		if it.Offset >= 0 {
			x.Partition, x.Offset = &it.Partition, &it.Offset
		}
		items = append(items, x)
	}
	return map[string]any{
		"dlq_topic": topic, "to": rep.To.String(), "dry_run": rep.DryRun, "items": items,
		"written": rep.Written, "would_write": rep.Would, "already_replayed": rep.AlreadyReplayed,
		"skipped": rep.Skipped, "failed": rep.Failed,
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return failure(fmt.Errorf("writing output: %w", err))
	}
	return nil
}

// printable quotes b when it is not plain printable text, and cuts it.
func printable(b []byte) string {
	s := string(b)
	cut := ""
	if len(s) > 256 {
		s, cut = s[:256], "..."
	}
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		return q + cut
	}
	return s + cut
}

// oneLine puts s on one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}
