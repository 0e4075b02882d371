package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/produce"
)

const auditUsage = `usage: kafkaguard audit --bootstrap LIST [--topic T]... [--json]

Reads the cluster's configuration (Metadata and DescribeConfigs) and checks the
cluster side of the no-loss checklist, printing one line per rule and
resource with pass or FAIL, then the fix for each failure:

	every broker: default.replication.factor >= 3, min.insync.replicas >= 2,
	              unclean.leader.election.enable = false
	every --topic: it exists, replication factor >= 3, min.insync.replicas >= 2
	              and below the replication factor,
	              unclean.leader.election.enable = false

Exit status: 0 when every check passed, 1 when one failed or the cluster could
not be read, 2 for bad usage.

Flags:
`

// runAudit implements "kafkaguard audit".
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bootstrap := fs.String("bootstrap", "", "comma-separated host:port list of the cluster (required)")
	var topics []string
	fs.Func("topic", "topic to check (repeat, or separate with commas)", func(s string) error {
		t := splitList(s)
		if len(t) == 0 {
			return errors.New("empty topic name")
		}
		topics = append(topics, t...)
		return nil
	})
	asJSON := fs.Bool("json", false, `print the report as JSON: {"passed": bool, "checks": [...]}`)
	timeout := fs.Duration("timeout", 30*time.Second, "give up reading the cluster after this long")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), auditUsage)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kafkaguard audit: "+format+"\n", a...)
		fmt.Fprintln(stderr, "usage: kafkaguard audit --bootstrap LIST [--topic T]... [--json]")
		return 2
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	brokers := splitList(*bootstrap)
	if len(brokers) == 0 {
		return usageErr("--bootstrap is required")
	}
	if *timeout <= 0 {
		return usageErr("--timeout must be positive")
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("kafkaguard-audit"))
	if err != nil {
		fmt.Fprintf(stderr, "kafkaguard audit: %v\n", err)
		return 1
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, err := produce.Audit(ctx, kadm.NewClient(cl), topics)
	if err != nil {
		fmt.Fprintf(stderr, "kafkaguard audit: reading the cluster at %v: %v\n", brokers, err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kafkaguard audit: writing output: %v\n", err)
		return 1
	}
	if !rep.Passed() {
		return 1
	}
	return 0
}
