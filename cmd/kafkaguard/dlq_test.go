package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/retry"
)

func runDLQ(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"dlq"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestDLQRejectsBadUsage(t *testing.T) {
	t.Parallel()
	b := []string{"--bootstrap", "127.0.0.1:1", "--topic", "t"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "Usage:"},
		{"unknown command", []string{"lst"}, `unknown dlq command "lst"`},
		{"no bootstrap", []string{"list", "--topic", "t"}, "--bootstrap is required"},
		{"no topic", []string{"list", "--bootstrap", "127.0.0.1:1"}, "--topic or --dlq-topic is required"},
		{"bad header mode", append([]string{"list", "--header-mode", "java"}, b...), "--header-mode must be kafkaguard or spring"},
		{"reversed offsets", append([]string{"list", "--from-offset", "5", "--to-offset", "2"}, b...), "--to-offset (2) must be at least --from-offset (5)"},
		{"negative partition", append([]string{"list", "--partition", "-2"}, b...), "--partition must be at least -1, got -2"},
		{"show without offset", append([]string{"show"}, b...), "--offset is required"},
		{"replay without selection", append([]string{"replay"}, b...), "select the dead letters to replay"},
		{"replay all and a selection", append([]string{"replay", "--all", "--key", "k"}, b...), "not both"},
		{"replay to nowhere", append([]string{"replay", "--all", "--to", "elsewhere"}, b...), `--to must be source or retry, got "elsewhere"`},
		{"retry topic to source", append([]string{"replay", "--all", "--retry-topic", "x"}, b...), "--retry-topic goes with --to retry"},
		{"stray argument", append([]string{"list", "extra"}, b...), "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runDLQ(tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and stderr mentioning %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

func TestDLQListsShowsAndReplaysOnce(t *testing.T) {
	t.Parallel()
	c, cl, _ := setupRetryTopics(t, "dq")
	ctx := context.Background()
	p, err := retry.NewParker(cl, retry.MaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range []string{"db down", "db down", "bad json"} {
		r := &kgo.Record{Topic: "dq", Offset: int64(10 + i), Key: []byte{'a' + byte(i)}, Value: []byte("v"),
			Timestamp: time.UnixMilli(1_700_000_000_000), Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t")}}}
		if err := p.Park(ctx, r, errors.New(e)); err != nil {
			t.Fatal(err)
		}
	}
	b := []string{"--bootstrap", strings.Join(c.Bootstrap(), ","), "--topic", "dq"}

	code, stdout, stderr := runDLQ(append([]string{"list"}, b...)...)
	if code != 0 || !strings.HasPrefix(stdout, "dq.dlq: 3 dead letters, 2 errors\n") ||
		!regexp.MustCompile(`\n2 +2 +0 +0 +0 +\S+ +\S+ +db down\n1 +1 +0 +0 +0 +\S+ +\S+ +bad json\n$`).MatchString(stdout) {
		t.Errorf("list: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	code, stdout, _ = runDLQ(append([]string{"list", "--json", "--error", "json"}, b...)...)
	var listed struct {
		Topic  string
		Count  int
		Groups []struct {
			Error string
			Count int
			ByAge map[string]int `json:"by_age"`
		}
	}
	if err := json.Unmarshal([]byte(stdout), &listed); code != 0 || err != nil || listed.Topic != "dq.dlq" || listed.Count != 1 ||
		len(listed.Groups) != 1 || listed.Groups[0].Error != "bad json" || listed.Groups[0].ByAge["<1h"] != 1 {
		t.Errorf("list --json: exit %d, %v, %+v from %s", code, err, listed, stdout)
	}

	code, stdout, stderr = runDLQ(append([]string{"show", "--partition", "0", "--offset", "2"}, b...)...)
	for _, want := range []string{"dead letter   dq.dlq/0@2\n", "original      dq/0@12, timestamp 2023-11-14T22:13:20Z\n",
		"key           c\n", "header        trace=t\n", "attempts      1\n", "reason        max attempts\n", "history       1 failed attempts\n", "  #1  "} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("show: exit %d, stderr %q, stdout lacks %q:\n%s", code, stderr, want, stdout)
		}
	}
	code, stdout, _ = runDLQ(append([]string{"show", "--offset", "1", "--json"}, b...)...)
	var shown struct {
		DeadLetter string `json:"dead_letter"`
		Original   struct {
			Topic  string
			Offset int64
		}
		Key      string
		Attempts int
		Reason   string
		History  []struct {
			Attempt int
			Error   string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &shown); code != 0 || err != nil || shown.DeadLetter != "dq.dlq/0@1" || shown.Original.Topic != "dq" ||
		shown.Original.Offset != 11 || shown.Key != "b" || shown.Attempts != 1 || shown.Reason != retry.ReasonMaxAttempts ||
		len(shown.History) != 1 || shown.History[0].Error != "db down" {
		t.Errorf("show --json: exit %d, %v, %+v from %s", code, err, shown, stdout)
	}
	if code, _, stderr := runDLQ(append([]string{"show", "--offset", "9"}, b...)...); code != 1 || !strings.Contains(stderr, "no such dead letter") {
		t.Errorf("show of a missing offset: exit %d, stderr %q; want 1", code, stderr)
	}

	// A dry run writes nothing; the replay writes the two db errors; the
	// second replay finds them and writes nothing.
	replay := append([]string{"replay", "--error", "db"}, b...)
	code, stdout, stderr = runDLQ(append(replay, "--dry-run")...)
	if code != 0 || !strings.Contains(stdout, "dry run, nothing written to source: 2 selected, 0 written, 2 would be written") {
		t.Errorf("dry run: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	code, stdout, stderr = runDLQ(replay...)
	if code != 0 || !strings.Contains(stdout, "replayed to source: 2 selected, 2 written, 0 would be written, 0 already replayed") ||
		!strings.Contains(stdout, "written          dq.dlq/0@0 -> dq/0@") || !strings.Contains(stderr, "replay: 2/2 dead letters") {
		t.Errorf("replay: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	code, stdout, stderr = runDLQ(append(replay, "--json")...)
	var rep struct {
		Written         int
		AlreadyReplayed int `json:"already_replayed"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); code != 0 || err != nil || rep.AlreadyReplayed != 2 || rep.Written != 0 {
		t.Errorf("second replay: exit %d, %v, stderr %q, stdout:\n%s", code, err, stderr, stdout)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got := testkit.ReadAll(rctx, t, c.Bootstrap(), "dq")
	if len(got) != 2 {
		t.Fatalf("source topic holds %d records after a dry run and two replays, want 2", len(got))
	}
	for _, r := range got {
		if string(r.Value) != "v" || len(r.Headers) != 2 || r.Headers[1].Key != retry.HeaderReplayedFrom {
			t.Errorf("replayed record %q=%q headers %q", r.Key, r.Value, r.Headers)
		}
	}
}
