// Command kafkaguard is the kafkaguard command-line tool.
//
// Usage:
//
//	kafkaguard <command> [flags] [args]
//	kafkaguard help [command]
//	kafkaguard --version
//
// Commands:
//
//	broker      run the bundled Kafka-protocol broker (one node or a cluster in one process)
//	verify      prove the producer presets' promises under broker faults
//	audit       check a cluster's configuration against the no-loss checklist
//	partition   print the partition each client family picks for keys
//	retry-job   run the retry job for failed records of a topic
//	dlq         list, show and replay the records of a dead-letter topic
//	bench       demonstrate "why Kafka is fast" on this machine, each claim next to its opposite
//	version     print the version
//
// Help goes to stdout and exits 0; bad usage (an unknown command or flag, a
// flag value out of range) is reported on stderr with exit status 2. Each
// command's help states its exit statuses.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args (without the program name) and returns the
// exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(compatArgs(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	return exitStatus(cmd, err, stderr)
}

// exitError ends a command with exit status code. A non-nil err is printed
// on stderr, prefixed by the command's path; a nil err means the command has
// already said why.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports bad usage: exit status 2, the message and the
// command's usage line on stderr.
func usageErrorf(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

// failure reports that the command could not do its work: exit status 1 and
// err on stderr.
func failure(err error) error {
	return &exitError{code: 1, err: err}
}

// exitCode ends the command with status code; it has printed why already.
func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
}

// exitStatus prints what err says on stderr and returns the exit status for
// it. Errors that cobra itself returns (an unknown command, a bad argument
// count) are bad usage.
func exitStatus(cmd *cobra.Command, err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	name := "kafkaguard"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		ee = &exitError{code: 2, err: err}
	}
	if ee.err == nil {
		return ee.code
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, ee.err)
	if ee.code == 2 && cmd != nil {
		fmt.Fprintf(stderr, "usage: %s\nrun '%s --help' for details\n", cmd.UseLine(), name)
	}
	return ee.code
}

const rootLong = `kafkaguard makes Kafka clients lose nothing, duplicate nothing and reorder
nothing, and proves it. This tool runs the proofs (verify), checks a
cluster's configuration (audit), runs the bundled Kafka-protocol broker
(broker), shows how client families partition keys (partition), runs the
retry job for failed records (retry-job), inspects and replays dead letters
(dlq), and measures the claims of "why Kafka is fast" on this machine
(bench).

Flags may come before or after arguments; a lone "--" ends the flags. For
compatibility with earlier versions, a long flag may also be written with one
dash (-records 5 is --records 5).

Exit status: 0 on success, 1 when a command could not do its work or a
check failed (each command's help says which), 2 for bad usage: an unknown
command or flag, a missing or out-of-range value.`

// newRootCmd builds the command tree. It holds no state between runs: every
// call returns new commands with their own flags.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kafkaguard <command> [flags] [args]",
		Short: "Kafka clients that lose, duplicate and reorder nothing, and the proof",
		Long:  rootLong,
		Example: `  kafkaguard verify                      # every preset under every fault, bundled cluster
  kafkaguard broker --brokers 3 --control 127.0.0.1:9990
  kafkaguard help verify`,
		Version: buildVersion(debug.ReadBuildInfo()),
		// With no command: the usage on stderr and exit status 2, as before
		// this tool had help. Args is left nil so that cobra refuses an
		// unknown command before this runs.
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprint(cmd.ErrOrStderr(), cmd.UsageString())
			return exitCode(2)
		},
		SilenceErrors:         true,
		SilenceUsage:          true,
		DisableFlagsInUseLine: true,
		CompletionOptions:     cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	help := newHelpCmd(root)
	root.AddCommand(newBrokerCmd(), newVerifyCmd(), newAuditCmd(), newPartitionCmd(), newRetryJobCmd(), newDLQCmd(),
		newBenchCmd(), newVersionCmd(), help)
	root.SetHelpCommand(help)
	root.SetFlagErrorFunc(flagError) // inherited by every command
	root.InitDefaultVersionFlag()
	// The help flags exist before parsing so that compatArgs knows -help.
	for _, c := range append(root.Commands(), root) {
		c.DisableFlagsInUseLine = true
		c.InitDefaultHelpFlag()
	}
	return root
}

// newHelpCmd replaces cobra's help command, which answers an unknown topic
// with exit status 0.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Print the help of kafkaguard or of a command",
		Long: `Prints the help of kafkaguard, or of the named command, to stdout: what it
does, its flags, examples and exit statuses. "kafkaguard help verify" is
"kafkaguard verify --help".

Exit status: 0, or 2 for an unknown command.`,
		Example: "  kafkaguard help\n  kafkaguard help retry-job",
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return usageErrorf("unknown command %q", strings.Join(args, " "))
			}
			return target.Help()
		},
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of kafkaguard",
		Long: `Prints the module version of this kafkaguard build: the release tag when
installed with "go install ...@VERSION", otherwise "(devel)" followed by the
VCS revision and time it was built from, when the build recorded them.
"kafkaguard --version" prints the same.

Exit status: 0.`,
		Example: "  kafkaguard version\n  kafkaguard --version",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "kafkaguard %s\n", cmd.Root().Version)
			return err
		},
	}
}

// buildVersion describes the build: the main module's version, and for a
// development build the VCS revision, time and whether the tree was modified.
func buildVersion(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	if v != "(devel)" {
		return v
	}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		v += " " + rev
		if modified == "true" {
			v += "+modified"
		}
	}
	if at != "" {
		v += " " + at
	}
	return v
}

// noArgs refuses positional arguments, in the words the commands used before
// they moved to cobra.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected arguments %q", args)
	}
	return nil
}
