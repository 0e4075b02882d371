package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/produce"
)

// auditFindings runs the preflight audit over a weak topic (RF=1,
// min.insync.replicas=1, unclean leader election on) and a hardened one
// (RF=3, min.insync.replicas=2, unclean off). The weak topic must fail
// exactly the four topic rules it breaks, the hardened one none; the broker
// rules must pass, since both clusters run with the checklist's defaults.
// The kafkaguard audit command must print the same findings and exit 1 for
// the weak topic, 0 for the hardened one.
func auditFindings(t *testing.T, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := newAdmin(t, c)
	weak, good := uniqueName("audit-weak"), uniqueName("audit-good")
	createTopic(ctx, t, c, adm, weak, 1, 1, map[string]string{"min.insync.replicas": "1", "unclean.leader.election.enable": "true"})
	createTopic(ctx, t, c, adm, good, 3, 3, hardened)

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

	t.Run("kafkaguard audit command", func(t *testing.T) {
		bin := buildCLI(ctx, t)
		for _, tt := range tests[:2] {
			cmd := exec.CommandContext(ctx, bin, "audit", "--bootstrap", strings.Join(c.Bootstrap(), ","), "--topic", tt.topics[0], "--json")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			wantExit := 0
			if len(tt.fails) > 0 {
				wantExit = 1
			}
			var ee *exec.ExitError
			switch {
			case err == nil && wantExit != 0, errors.As(err, &ee) && ee.ExitCode() != wantExit, err != nil && !errors.As(err, &ee):
				t.Errorf("kafkaguard audit %s: %v, want exit status %d\nstderr: %s", tt.name, err, wantExit, stderr.String())
				continue
			}
			var rep struct {
				Passed bool
				Checks []produce.Check
			}
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("kafkaguard audit --json printed %q: %v", stdout.String(), err)
			}
			var failed []string
			for _, ch := range rep.Checks {
				if !ch.Pass {
					failed = append(failed, ch.Rule)
				}
			}
			slices.Sort(failed)
			if !slices.Equal(failed, tt.fails) || rep.Passed != (len(tt.fails) == 0) {
				t.Errorf("kafkaguard audit %s: passed=%v failed %q, want %q", tt.name, rep.Passed, failed, tt.fails)
			}
		}
	})
}

// buildCLI builds cmd/kafkaguard into a temporary directory.
func buildCLI(ctx context.Context, t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the source tree")
	}
	bin := filepath.Join(t.TempDir(), "kafkaguard")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kafkaguard")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kafkaguard: %v\n%s", err, out)
	}
	return bin
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}
