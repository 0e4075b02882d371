package fastbench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestRunQuickProducesEveryComparison runs the whole bench in its quickest mode and checks the
// shape of the report and its table, not the timings.
func TestRunQuickProducesEveryComparison(t *testing.T) {
	var steps []string
	rep, err := Run(context.Background(), Config{Dir: t.TempDir(), Quick: true, Duration: 20e6,
		Progress: func(s string) { steps = append(steps, s) }})
	if err != nil {
		t.Fatal(err)
	}
	wantPrefixes := []string{
		"disk: sequential beats random",
		"produce: batching beats one record per request",
		"compression: gzip", "compression: snappy", "compression: lz4", "compression: zstd",
		"offset lookup: index beats scan, 256 KiB log", "offset lookup: index beats scan, 1 MiB log", "offset lookup: index beats scan, 4 MiB log",
		"fetch: zero-copy beats copying",
	}
	if len(rep.Rows) != len(wantPrefixes) {
		t.Fatalf("%d rows, want %d: %+v", len(rep.Rows), len(wantPrefixes), rep.Rows)
	}
	for i, row := range rep.Rows {
		if !strings.HasPrefix(row.Claim, wantPrefixes[i]) {
			t.Errorf("row %d claim %q, want it to start with %q", i, row.Claim, wantPrefixes[i])
		}
		for _, s := range []Side{row.Claimed, row.Opposite} {
			if s.Name == "" || s.Unit == "" || !(s.Value > 0) {
				t.Errorf("row %q: side %+v not measured", row.Claim, s)
			}
		}
		if !(row.Ratio > 0) {
			t.Errorf("row %q: ratio %v", row.Claim, row.Ratio)
		}
	}
	if !strings.HasPrefix(rep.Rows[0].Note, "O_DIRECT") && !strings.HasPrefix(rep.Rows[0].Note, "buffered (O_DIRECT") {
		t.Errorf("disk note %q does not say whether O_DIRECT was used", rep.Rows[0].Note)
	}
	if len(steps) < len(rep.Rows) {
		t.Errorf("progress reported %d steps for %d rows: %q", len(steps), len(rep.Rows), steps)
	}

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	// Title, blank, header, one line per row, blank, summary.
	if len(lines) != len(rep.Rows)+5 || !strings.HasPrefix(lines[2], "CLAIM") || !strings.Contains(lines[len(lines)-1], "comparisons held") {
		t.Fatalf("table:\n%s", table.String())
	}
	for i, row := range rep.Rows {
		if !strings.HasPrefix(lines[3+i], row.Claim) || !strings.Contains(lines[3+i], formatRatio(row.Ratio)) {
			t.Errorf("table line %q, want row %q with ratio %s", lines[3+i], row.Claim, formatRatio(row.Ratio))
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil || len(back.Rows) != len(rep.Rows) || back.Rows[0].Claimed != rep.Rows[0].Claimed {
		t.Fatalf("JSON round trip: %v\n%s", err, js)
	}
}
