package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runCLI runs args with a context that is already cancelled, so that a command that wrongly
// accepts its arguments returns at once instead of serving until killed.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// ourCommands are kafkaguard's commands (cobra adds none: completion is off).
func ourCommands(t *testing.T) []*cobra.Command {
	t.Helper()
	cmds := newRootCmd().Commands()
	var names []string
	for _, c := range cmds {
		names = append(names, c.Name())
	}
	want := []string{"audit", "bench", "broker", "dlq", "help", "partition", "retry-job", "verify", "version"}
	if !slices.Equal(names, want) {
		t.Fatalf("commands %q, want %q", names, want)
	}
	return cmds
}

func TestEveryCommandDocumentsItselfAndItsExitStatus(t *testing.T) {
	t.Parallel()
	root := newRootCmd()
	for _, c := range append(ourCommands(t), root) {
		if c.Short == "" || strings.Contains(c.Short, "\n") {
			t.Errorf("%s: one-line description %q", c.Name(), c.Short)
		}
		if len(c.Long) < 2*len(c.Short) {
			t.Errorf("%s: no longer description: %q", c.Name(), c.Long)
		}
		if !strings.Contains(c.Long, "Exit status: 0") {
			t.Errorf("%s: the description does not state the exit statuses", c.Name())
		}
		if !strings.Contains(c.Example, "kafkaguard ") {
			t.Errorf("%s: no example: %q", c.Name(), c.Example)
		}
	}
}

func TestHelpGoesToStdoutWithExitZero(t *testing.T) {
	t.Parallel()
	root := newRootCmd()
	type tc struct {
		args []string
		cmd  *cobra.Command
	}
	tests := []tc{
		{[]string{"--help"}, root}, {[]string{"-h"}, root}, {[]string{"help"}, root}, {[]string{"-help"}, root},
	}
	for _, c := range root.Commands() {
		tests = append(tests,
			tc{[]string{"help", c.Name()}, c}, tc{[]string{c.Name(), "--help"}, c},
			tc{[]string{c.Name(), "-h"}, c}, tc{[]string{c.Name(), "-help"}, c})
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing on stderr", code, stderr)
			}
			for _, want := range []string{tt.cmd.Long, "Usage:\n  " + tt.cmd.UseLine(), "Examples:\n" + tt.cmd.Example} {
				if !strings.Contains(stdout, want) {
					t.Errorf("help lacks %q:\n%s", want, stdout)
				}
			}
			tt.cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if !strings.Contains(stdout, "--"+f.Name+" ") {
					t.Errorf("help does not show --%s:\n%s", f.Name, stdout)
				}
			})
		})
	}
}

func TestVersionPrintsTheModuleVersion(t *testing.T) {
	t.Parallel()
	want := "kafkaguard " + buildVersion(debug.ReadBuildInfo()) + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0 and %q", args, code, stdout, stderr, want)
		}
	}
}

func TestBuildVersion(t *testing.T) {
	t.Parallel()
	devel := func(settings ...debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings}
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"release", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}}, true, "v1.4.0"},
		{"devel without vcs", devel(), true, "(devel)"},
		{"no version", &debug.BuildInfo{}, true, "(devel)"},
		{"devel with vcs", devel(
			debug.BuildSetting{Key: "vcs.revision", Value: "42ac6fe0"},
			debug.BuildSetting{Key: "vcs.time", Value: "2026-12-06T09:00:00Z"},
			debug.BuildSetting{Key: "vcs.modified", Value: "false"}), true, "(devel) 42ac6fe0 2026-12-06T09:00:00Z"},
		{"devel modified", devel(
			debug.BuildSetting{Key: "vcs.revision", Value: "42ac6fe0"},
			debug.BuildSetting{Key: "vcs.modified", Value: "true"}), true, "(devel) 42ac6fe0+modified"},
		{"no build info", nil, false, "(unknown)"},
	}
	for _, tt := range tests {
		if got := buildVersion(tt.bi, tt.ok); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestBadFlagValuesAreRefusedNamingTheFlag has one row per numeric and duration flag of each
// command (and a few per bound): the value is refused with exit status 2, a message naming the
// flag and the usage line, before the command does anything.
func TestBadFlagValuesAreRefusedNamingTheFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		says string
	}{
		{[]string{"broker", "--brokers", "0"}, "--brokers must be between 1 and 64, got 0"},
		{[]string{"broker", "--brokers", "65"}, "--brokers must be between 1 and 64, got 65"},
		{[]string{"broker", "--port", "-1"}, "--port -1 leaves no room for 1 brokers"},
		{[]string{"broker", "--port", "70000"}, "--port 70000 leaves no room"},
		{[]string{"broker", "--port", "x"}, `invalid value "x" for flag --port`},
		{[]string{"broker", "--replica-lag-max", "0"}, "--replica-lag-max must be between 1ms and 596h31m23.647s, got 0"},
		{[]string{"broker", "--replica-lag-max", "-1s"}, "--replica-lag-max must be between 1ms"},
		{[]string{"broker", "--replica-lag-max", "soon"}, `invalid value "soon" for flag --replica-lag-max: not a duration`},
		{[]string{"broker", "--session-timeout", "0s"}, "--session-timeout must be between 1ms"},
		{[]string{"broker", "--session-timeout", "1000h"}, "--session-timeout must be between 1ms and 596h31m23.647s, got 1000h"},
		{[]string{"broker", "--min-insync-replicas", "0"}, "--min-insync-replicas must be at least 1, got 0"},
		{[]string{"broker", "--num-partitions", "-3"}, "--num-partitions must be between 1 and 10000, got -3"},
		{[]string{"broker", "--num-partitions", "10001"}, "--num-partitions must be between 1 and 10000"},
		{[]string{"broker", "--offsets-partitions", "0"}, "--offsets-partitions must be between 1 and 10000, got 0"},
		{[]string{"broker", "--offsets-partitions", "1e3"}, `invalid value "1e3" for flag --offsets-partitions: not an integer`},
		{[]string{"broker", "--log-level", "loud"}, `invalid value "loud" for flag --log-level`},
		{[]string{"verify", "--records", "0"}, "--records must be at least 1, got 0"},
		{[]string{"verify", "--records", "99999999999999999999"}, `invalid value "99999999999999999999" for flag --records: out of range`},
		{[]string{"verify", "--keys", "0"}, "--keys must be at least 1, got 0"},
		{[]string{"verify", "--keys", "11", "--records", "10"}, "--keys (11) must not exceed --records (10)"},
		{[]string{"verify", "--partitions", "0"}, "--partitions must be between 1 and 1000, got 0"},
		{[]string{"verify", "--partitions", "1001"}, "--partitions must be between 1 and 1000, got 1001"},
		{[]string{"verify", "--rate", "-5"}, "--rate must be at least 1, got -5"},
		{[]string{"audit", "--bootstrap", "a:1", "--timeout", "0"}, "--timeout must be greater than 0, got 0"},
		{[]string{"audit", "--bootstrap", "a:1", "--timeout", "-1s"}, "--timeout must be greater than 0, got -1s"},
		{[]string{"partition", "--partitions", "0", "k"}, "--partitions must be 1 to 2147483647, not 0"},
		{[]string{"partition", "k", "--partitions", "2147483648"}, "--partitions must be 1 to 2147483647, not 2147483648"},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--max-attempts", "0"}, "--max-attempts must be at least 1, got 0"},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--backoff-initial", "0"}, "--backoff-initial must be greater than 0, got 0"},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--backoff-max", "-1m"}, "--backoff-max must be greater than 0, got -1m"},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--backoff-initial", "2m", "--backoff-max", "1m"}, "--backoff-max (1m0s) must be at least --backoff-initial (2m0s)"},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--backoff-jitter", "-0.1"}, "--backoff-jitter must be in [0, 1), got -0.1"},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--backoff-jitter", "1"}, "--backoff-jitter must be in [0, 1), got 1"},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--backoff-jitter", "NaN"}, `invalid value "NaN" for flag --backoff-jitter: not a number`},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--concurrency", "0"}, "--concurrency must be at least 1, got 0"},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--alert-backlog", "-1"}, "--alert-backlog must be at least 0, got -1"},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--alert-age", "-1s"}, "--alert-age must be at least 0s, got -1s"},
		{[]string{"retry-job", "--bootstrap", "a:1", "--topic", "t", "--alert-dead-letters", "-1"}, "--alert-dead-letters must be at least 0, got -1"},
		{[]string{"bench", "--duration", "0"}, "--duration must be between 10ms and 1m0s, got 0"},
		{[]string{"bench", "--quick", "--duration", "2m"}, "--duration must be between 10ms and 1m0s, got 2m"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.says) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.says)
			}
			if !strings.Contains(stderr, "usage: kafkaguard "+tt.args[0]) || stdout != "" {
				t.Errorf("stderr %q, stdout %q; want the usage line on stderr and nothing on stdout", stderr, stdout)
			}
		})
	}
}

func TestUnknownCommandsAndFlagsExitTwo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		says string
	}{
		{nil, "Available Commands:"},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"--nope"}, "flag provided but not defined: --nope"},
		{[]string{"help", "nope"}, `unknown command "nope"`},
		{[]string{"verify", "--nope"}, "flag provided but not defined: --nope"},
		{[]string{"partition", "-x", "k"}, "flag provided but not defined: -x"},
		{[]string{"audit", "--timeout"}, "flag needs an argument: --timeout"},
		{[]string{"version", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.says) || stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2, nothing on stdout and %q", code, stdout, stderr, tt.says)
			}
		})
	}
}

func TestFlagsMayFollowArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"partition", "order-1", "--partitions", "12"}, "order-1\t10\t1\t7\n"},
		{[]string{"partition", "order-1", "--partitioner", "fnv1a", "order-2", "--partitions=12"}, "order-1\t1\norder-2\t4\n"},
		// Flags in the single-dash form of Go's flag package, which earlier versions took.
		{[]string{"partition", "-partitions", "12", "-partitioner=fnv1a", "order-1"}, "order-1\t1\n"},
		{[]string{"partition", "order-2", "-partitions=12"}, "order-2\t3\t4\t9\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 0 || stdout != tt.want {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

func TestCompatArgsRewritesOnlyKnownSingleDashLongFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want []string
	}{
		{[]string{"verify", "-records", "5", "-json"}, []string{"verify", "--records", "5", "--json"}},
		{[]string{"verify", "-v", "-keys=3", "-json=false"}, []string{"verify", "-v", "--keys=3", "--json=false"}},
		// A value is never rewritten, whatever it looks like.
		{[]string{"verify", "-topic-config", "-records", "-preset", "-json"}, []string{"verify", "--topic-config", "-records", "--preset", "-json"}},
		{[]string{"partition", "--partitions", "3", "--", "-partitions"}, []string{"partition", "--partitions", "3", "--", "-partitions"}},
		{[]string{"partition", "-nope", "---partitions", "3"}, []string{"partition", "-nope", "---partitions", "3"}},
		{[]string{"-help"}, []string{"--help"}},
		{[]string{"help", "-help"}, []string{"help", "--help"}},
		{[]string{"nope", "-records"}, []string{"nope", "-records"}},
	}
	for _, tt := range tests {
		if got := compatArgs(newRootCmd(), tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("compatArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestVerifyKeepsAcceptingTheShortVerboseFlag(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"-v", "--v", "--verbose", "-v=true"} {
		code, _, stderr := runCLI(t, "verify", flag, "--records", "0")
		// Parsing got past the verbose flag to the bad --records.
		if code != 2 || !strings.Contains(stderr, "--records must be at least 1") {
			t.Errorf("verify %s: exit %d, stderr %q", flag, code, stderr)
		}
	}
}
