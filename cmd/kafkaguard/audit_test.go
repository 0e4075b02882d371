package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/produce"
)

// auditCluster starts a 3-broker cluster whose broker defaults follow the checklist, with one
// topic that does too ("safe") and one that breaks three rules ("unsafe": replication factor 1,
// min.insync.replicas=1, unclean leader election on).
func auditCluster(t *testing.T) *kafkatest.Cluster {
	t.Helper()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.BrokerConfig("min.insync.replicas", "2"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateTopic(ctx, "safe", 2, 3, map[string]string{"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, "unsafe", 1, 1, map[string]string{"min.insync.replicas": "1", "unclean.leader.election.enable": "true"}); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuditPassesACorrectTopicAndFailsAnUnsafeOneWithFixes(t *testing.T) {
	t.Parallel()
	c := auditCluster(t)
	boot := strings.Join(c.Bootstrap(), ",")

	var stdout, stderr bytes.Buffer
	if code := runAudit(context.Background(), []string{"--bootstrap", boot, "--topic", "safe"}, &stdout, &stderr); code != 0 {
		t.Fatalf("safe topic: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "checks passed") || strings.Contains(stdout.String(), "FAIL") {
		t.Errorf("safe topic report:\n%s", stdout.String())
	}

	stdout.Reset()
	stderr.Reset()
	if code := runAudit(context.Background(), []string{"--bootstrap", boot, "--topic", "unsafe"}, &stdout, &stderr); code != 1 {
		t.Fatalf("unsafe topic: exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"FAIL  topic unsafe  replication.factor >= 3",
		"FAIL  topic unsafe  min.insync.replicas >= 2",
		"FAIL  topic unsafe  unclean.leader.election.enable = false",
		"--add-config min.insync.replicas=2",
		"--add-config unclean.leader.election.enable=false",
		"--replication-factor 3",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("unsafe topic report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FAIL  broker") {
		t.Errorf("broker defaults follow the checklist, yet:\n%s", out)
	}
}

func TestAuditJSONListsEveryCheck(t *testing.T) {
	t.Parallel()
	c := auditCluster(t)
	var stdout, stderr bytes.Buffer
	code := runAudit(context.Background(), []string{"--bootstrap", strings.Join(c.Bootstrap(), ","), "--topic", "safe,unsafe", "--json"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr %q", code, stderr.String())
	}
	var rep struct {
		Passed bool
		Checks []produce.Check
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if rep.Passed {
		t.Error("passed = true with an unsafe topic")
	}
	failed := map[string]bool{}
	for _, ch := range rep.Checks {
		if ch.Resource == "topic safe" && !ch.Pass {
			t.Errorf("safe topic failed %+v", ch)
		}
		if ch.Resource == "topic unsafe" && !ch.Pass {
			if ch.Fix == "" {
				t.Errorf("failed check without a fix: %+v", ch)
			}
			failed[ch.Rule] = true
		}
	}
	for _, rule := range []string{produce.RuleReplicationFactor, produce.RuleMinInsyncReplicas, produce.RuleUncleanElection} {
		if !failed[rule] {
			t.Errorf("rule %q did not fail for the unsafe topic; failed: %v", rule, failed)
		}
	}
}

func TestAuditRejectsBadUsageWithExitCode2(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"no bootstrap":     {"--topic", "t"},
		"empty topic":      {"--bootstrap", "a:1", "--topic", ","},
		"arguments":        {"--bootstrap", "a:1", "t"},
		"negative timeout": {"--bootstrap", "a:1", "--timeout", "-1s"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runAudit(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%s: exit code %d, want 2; stderr %q", name, code, stderr.String())
		}
	}
}

func TestAuditExitsOneWhenTheClusterCannotBeRead(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := runAudit(context.Background(), []string{"--bootstrap", "127.0.0.1:1", "--timeout", "500ms"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "reading the cluster") {
		t.Fatalf("exit code %d, stderr %q; want 1 and the read error", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
}
