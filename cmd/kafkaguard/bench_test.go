package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchQuickPrintsTheTableOrJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bench", "--quick", "--duration", "10ms", "--dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "CLAIM") || !strings.Contains(stdout.String(), "fetch: zero-copy beats copying") {
		t.Errorf("table:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "disk: sequential 4 KiB writes") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}

	stdout.Reset()
	if code := run(context.Background(), []string{"bench", "--quick", "--duration=10ms", "--json", "--dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("--json: exit %d, stderr %q", code, stderr.String())
	}
	var rep struct {
		Rows []struct {
			Claim string  `json:"claim"`
			Ratio float64 `json:"ratio"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || len(rep.Rows) != 10 {
		t.Fatalf("--json: %v, %d rows:\n%s", err, len(rep.Rows), stdout.String())
	}
}
