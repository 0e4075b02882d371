package integration

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/produce"
)

// auditFindings runs the preflight audit over a weak topic (RF=1,
// min.insync.replicas=1, unclean leader election on) and a hardened one
// (RF=3, min.insync.replicas=2, unclean off). The weak topic must fail
// exactly the four topic rules it breaks, the hardened one none; the broker
// rules must pass, since both clusters run with the checklist's defaults.
func auditFindings(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := newAdmin(t, c)
	weak, good := uniqueName("audit-weak"), uniqueName("audit-good")
	createTopic(ctx, t, adm, weak, 1, 1, map[string]string{"min.insync.replicas": "1", "unclean.leader.election.enable": "true"})
	createTopic(ctx, t, adm, good, 3, 3, hardened)

	tests := []struct {
		name   string
		topics []string
		fails  []string // failed rules, sorted
	}{
		{"weak topic", []string{weak}, sorted(produce.RuleReplicationFactor, produce.RuleMinInsyncReplicas,
			produce.RuleMinInsyncBelowRF, produce.RuleUncleanElection)},
		{"hardened topic", []string{good}, nil},
		{"missing topic", []string{uniqueName("audit-missing")}, []string{produce.RuleTopicExists}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := produce.Audit(ctx, adm, tt.topics)
			if err != nil {
				t.Fatalf("audit: %v", err)
			}
			var text bytes.Buffer
			if err := rep.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			t.Logf("audit of %v:\n%s", tt.topics, text.String())
			var failed []string
			for _, ch := range rep.Failures() {
				if ch.Resource != "topic "+tt.topics[0] {
					t.Errorf("broker-side check failed: %+v", ch)
					continue
				}
				failed = append(failed, ch.Rule)
			}
			slices.Sort(failed)
			if !slices.Equal(failed, tt.fails) {
				t.Errorf("failed rules %q, want %q", failed, tt.fails)
			}
			if got := rep.Passed(); got != (len(tt.fails) == 0) {
				t.Errorf("Passed() = %v with failures %q", got, failed)
			}
			if err := rep.Err(); (err != nil) != (len(tt.fails) > 0) || (err != nil && !errors.Is(err, produce.ErrAuditFailed)) {
				t.Errorf("Err() = %v", err)
			}
		})
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}
