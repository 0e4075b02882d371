// Command kafkaguard is the kafkaguard command-line tool.
//
// Usage:
//
//	kafkaguard <command> [flags] [args]
//
// Commands:
//
//	partition   print the partition each client family picks for keys
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
)

// commands maps a command name to its implementation, which returns the exit
// code.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"partition": runPartition,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: kafkaguard <command> [flags] [args]; commands: partition")
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kafkaguard: unknown command %q\n", args[0])
		return 2
	}
	return cmd(ctx, args[1:], stdout, stderr)
}
