// Command kafkaguard is the kafkaguard command-line tool.
//
// Usage:
//
//	kafkaguard <command> [flags] [args]
//
// Commands:
//
//	broker      run the bundled Kafka-protocol broker (one node or a cluster in one process)
//	partition   print the partition each client family picks for keys
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// commands maps a command name to its implementation, which returns the exit
// code.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"broker":    runBroker,
	"partition": runPartition,
	"retry-job": runRetryJob,
	"verify":    runVerify,
	"audit":     runAudit,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		names := make([]string, 0, len(commands))
		for name := range commands {
			names = append(names, name)
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "usage: kafkaguard <command> [flags] [args]; commands: %s\n", strings.Join(names, ", "))
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kafkaguard: unknown command %q\n", args[0])
		return 2
	}
	return cmd(ctx, args[1:], stdout, stderr)
}
