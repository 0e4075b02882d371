package main

import (
	"context"
	"io"
)

// runBroker and its siblings run one command as the command line would.
func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"broker"}, args...), stdout, stderr)
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"verify"}, args...), stdout, stderr)
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"audit"}, args...), stdout, stderr)
}

func runPartition(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"partition"}, args...), stdout, stderr)
}
