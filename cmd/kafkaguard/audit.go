package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/produce"
)

const auditLong = `Reads the cluster's configuration (Metadata and DescribeConfigs) and checks the
cluster side of the no-loss checklist, printing one line per rule and
resource with pass or FAIL, then the fix for each failure:

	every broker: default.replication.factor >= 3, min.insync.replicas >= 2,
	              unclean.leader.election.enable = false
	every --topic: it exists, replication factor >= 3, min.insync.replicas >= 2
	              and below the replication factor,
	              unclean.leader.election.enable = false

Exit status: 0 when every check passed, 1 when one failed or the cluster could
not be read, 2 for bad usage.`

// newAuditCmd is "kafkaguard audit".
func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit --bootstrap LIST [--topic T]... [--json]",
		Short: "Check a cluster's configuration against the no-loss checklist",
		Long:  auditLong + securityHelp,
		Example: `  kafkaguard audit --bootstrap 127.0.0.1:9092 --topic orders
  kafkaguard audit --bootstrap kafka-1:9092,kafka-2:9092 --topic orders,payments --json`,
		Args: noArgs,
	}
	fs := cmd.Flags()
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
	sec := addSecurityFlags(fs)
	timeout := durationFlag(fs, "timeout", 30*time.Second, positive[time.Duration](), "give up reading the cluster after this long")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		brokers := splitList(*bootstrap)
		if len(brokers) == 0 {
			return usageErrorf("--bootstrap is required")
		}

		secOpts, err := sec.kgoOpts()
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID("kafkaguard-audit")}, secOpts...)...)
		if err != nil {
			return failure(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		rep, err := produce.Audit(ctx, kadm.NewClient(cl), topics)
		if err != nil {
			return failure(fmt.Errorf("reading the cluster at %v: %w", brokers, err))
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			err = enc.Encode(rep)
		} else {
			err = rep.WriteText(stdout)
		}
		if err != nil {
			return failure(fmt.Errorf("writing output: %w", err))
		}
		if !rep.Passed() {
			return exitCode(1)
		}
		return nil
	}
	return cmd
}
