package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func recs(vals ...string) []*kgo.Record {
	out := make([]*kgo.Record, len(vals))
	for i, v := range vals {
		out[i] = &kgo.Record{Value: []byte(v), Offset: int64(i)}
	}
	return out
}

func set(vals ...string) map[string]bool {
	m := map[string]bool{}
	for _, v := range vals {
		m[v] = true
	}
	return m
}

func TestCheckFindsLostDuplicatedAndReorderedRecords(t *testing.T) {
	tests := []struct {
		name                         string
		acked                        map[string]bool
		read                         map[int32][]*kgo.Record
		lost, dup, reordered, garble int
		unacked                      int
	}{
		{"everything once in order", set("a:000000", "a:000001", "b:000000"),
			map[int32][]*kgo.Record{0: recs("a:000000", "a:000001"), 1: recs("b:000000")}, 0, 0, 0, 0, 0},
		{"acked record missing", set("a:000000", "a:000001"),
			map[int32][]*kgo.Record{0: recs("a:000000")}, 1, 0, 0, 0, 0},
		{"record read twice", set("a:000000", "a:000001"),
			map[int32][]*kgo.Record{0: recs("a:000000", "a:000001", "a:000001")}, 0, 1, 0, 0, 0},
		{"key out of order", set("a:000000", "a:000001"),
			map[int32][]*kgo.Record{0: recs("a:000001", "a:000000")}, 0, 0, 1, 0, 0},
		{"unacknowledged record written", set("a:000000"),
			map[int32][]*kgo.Record{0: recs("a:000000", "a:000001")}, 0, 0, 0, 0, 1},
		{"garbage value", set(),
			map[int32][]*kgo.Record{0: recs("nonsense")}, 0, 0, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := check(tt.acked, tt.read)
			if len(v.Lost) != tt.lost || len(v.Duplicated) != tt.dup || len(v.Reordered) != tt.reordered ||
				len(v.Malformed) != tt.garble || v.Unacked != tt.unacked {
				t.Fatalf("check = %v, want lost=%d duplicated=%d reordered=%d malformed=%d unacked=%d",
					v, tt.lost, tt.dup, tt.reordered, tt.garble, tt.unacked)
			}
			if v.clean() != (tt.lost+tt.dup+tt.reordered+tt.garble == 0) {
				t.Errorf("clean() = %v for %v", v.clean(), v)
			}
		})
	}
}

func TestExternalRejectsBadBootstrap(t *testing.T) {
	for _, bs := range []string{"", " , ", "localhost", "127.0.0.1:"} {
		if _, err := External(bs, Commands{}); err == nil {
			t.Errorf("External(%q) succeeded, want an error", bs)
		}
	}
	c, err := External(" 127.0.0.1:1 ,127.0.0.1:2", Commands{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Bootstrap(); !slices.Equal(got, []string{"127.0.0.1:1", "127.0.0.1:2"}) {
		t.Errorf("Bootstrap() = %q", got)
	}
}

func TestExternalRunsFaultCommandsWithTheBrokerID(t *testing.T) {
	log := filepath.Join(t.TempDir(), "faults.log")
	cmd := func(fault string) string { return "echo " + fault + " {id} >>" + log }
	c, err := External("127.0.0.1:9092", Commands{Kill: cmd("kill"), Restart: cmd("restart"), Pause: cmd("pause")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, f := range []func() error{
		func() error { return c.Kill(ctx, 3) },
		func() error { return c.Restart(ctx, 3) },
		func() error { return c.PauseReplication(ctx, 1) },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.ResumeReplication(ctx, 1); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), EnvResumeCmd) {
		t.Errorf("resume without a command = %v, want ErrUnsupported naming %s", err, EnvResumeCmd)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "kill 3\nrestart 3\npause 1\n"; got != want {
		t.Errorf("commands ran as %q, want %q", got, want)
	}
}

func TestExternalFaultCommandFailureCarriesOutput(t *testing.T) {
	c, err := External("127.0.0.1:9092", Commands{Kill: "echo no such node {id} >&2; exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Kill(context.Background(), 7)
	if err == nil || !strings.Contains(err.Error(), "no such node 7") {
		t.Fatalf("Kill = %v, want the command's output", err)
	}
}

func TestFromEnvRejectsUnknownTarget(t *testing.T) {
	t.Setenv(EnvTarget, "staging")
	if _, err := FromEnv(context.Background()); err == nil || !strings.Contains(err.Error(), "staging") {
		t.Fatalf("FromEnv = %v, want an error naming the target", err)
	}
}

// TestTransactionalCopyReaderSeesAbortedCopiesReadUncommitted shows that the transactional copy
// scenario can fail: its copier crashes abort transactions whose records are already in the
// output, and a reader at read_uncommitted, in place of read_committed, counts them as records
// copied twice.
func TestTransactionalCopyReaderSeesAbortedCopiesReadUncommitted(t *testing.T) {
	t.Parallel()
	res := copyTransactionally(t, ownBundled(t), kgo.ReadUncommitted())
	if len(res.dups) == 0 {
		t.Fatalf("read_uncommitted saw no record twice through 9 copier crashes (%d records read): the aborted copies were not seen", res.read)
	}
	t.Logf("read_uncommitted: %d records seen twice, e.g. %v", len(res.dups), firstN(res.dups, 3))
}
