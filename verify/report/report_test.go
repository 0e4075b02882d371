package report

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// samplePage is a hand-built page: a clean run with a kill and an
// isolation, a failed run with anomalies and odd text, and a run that could
// not be carried out.
func samplePage() Page {
	ms := time.Millisecond
	var samples []Sample
	var hw, read []Point
	for i := range 40 {
		at := time.Duration(i) * 100 * ms
		s := Sample{At: at, Sent: 100, Acked: 98, P50: 3 * ms, P99: 12 * ms}
		if i >= 12 && i < 16 { // a failover: nothing acknowledged
			s.Acked, s.P50, s.P99 = 0, 0, 0
		}
		if i == 16 {
			s.Acked, s.P50, s.P99 = 400, 450*ms, 900*ms
		}
		samples = append(samples, s)
		hw = append(hw, Point{At: at, Value: float64(i % 7)})
	}
	for i := range 10 {
		read = append(read, Point{At: 4*time.Second + time.Duration(i)*100*ms, Value: float64(4000 - 400*i)})
	}
	clean := Run{
		Name: "NoLoss kill-leader", Seed: "42", Replay: "kafkaguard verify --preset NoLoss --fault kill-leader",
		Verdict: "ok", Interval: 100 * ms,
		Facts: []Fact{{"topic", "kafkaguard-verify-noloss"}, {"acked", "4000"}},
		Faults: []FaultSpan{
			{Kind: "kill", Brokers: []int32{2}, Start: 1200 * ms, End: 2500 * ms},
			{Kind: "isolate", Brokers: []int32{3}, Start: 2600 * ms, End: 3100 * ms},
			{Kind: "latency", Start: 3300 * ms, End: 3300 * ms},
		},
		Samples: samples,
		Lag: []Series{
			{Name: "acked above the high watermark", Note: "acknowledged, not yet readable", Points: hw},
			{Name: "read-back lag", Points: read},
		},
		Anomalies: []Anomaly{
			{Name: "lost", Status: StatusOK},
			{Name: "unacked-present", Count: 3, Status: StatusInfo, Note: "outcome unknown, allowed",
				Examples: Table{Columns: []string{"value"}, Rows: [][]string{{"k1:7"}, {"k2:9"}}}},
		},
	}
	failed := Run{
		Name: `LeaderAck <script>alert("x")</script>`, Verdict: "FAIL: lost & duplicated", Failed: true,
		Faults: []FaultSpan{
			{Kind: "pause-replication", Brokers: []int32{1, 2}, Start: 500 * ms, End: 1500 * ms},
			{Kind: `<b>kill</b>`, Brokers: []int32{3}, Start: 1400 * ms, End: 2000 * ms},
		},
		Samples: samples[:25],
		Anomalies: []Anomaly{
			{Name: "lost-write", Count: 378, Status: StatusViolation,
				Examples: Table{Columns: []string{"value", "partition", "offset", "at"},
					Rows: [][]string{{"k0:115", "1", "344", "1.42s"}, {`<img src=x onerror=alert(1)>`, "1", "345", "1.43s"}}}},
			{Name: "duplicate", Count: 2, Status: StatusAllowed, Note: "allowed by acks=1",
				Examples: Table{Rows: [][]string{{"k4:1"}}}},
		},
	}
	broken := Run{Name: "StrictOrder isolate-leader", Verdict: "ERROR", Failed: true,
		Error: "verify: create topic: NOT_ENOUGH_REPLICAS <3>"}
	return Page{Command: "kafkaguard verify --report out", Created: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC),
		Runs: []Run{clean, failed, broken}}
}

func render(t *testing.T, p Page) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, p); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestWriteShowsEachRunsSectionChartsAndAnomalyExamples(t *testing.T) {
	out := render(t, samplePage())
	for _, want := range []string{
		`<section class="run" id="run-1">`, `<section class="run failed" id="run-2">`, `<section class="run failed" id="run-3">`,
		"Faults over time", "Produce throughput", "Ack latency p50 / p99", "Lag",
		"NoLoss kill-leader", `<code>42</code>`, `kafkaguard verify --preset NoLoss --fault kill-leader`,
		"kafkaguard-verify-noloss",
		`<td class="anomaly">lost-write</td><td class="num">378</td>`, "k0:115", "<th>offset</th>", "1.42s",
		`<tr class="info"><td class="anomaly">unacked-present</td>`, "k2:9", "allowed by acks=1",
		"acknowledged, not yet readable",
		"could not be carried out: verify: create topic: NOT_ENOUGH_REPLICAS &lt;3&gt;",
		// the timeline's lanes and kinds are text of the SVG
		">broker 1</text>", ">broker 3</text>", ">cluster</text>", ">kill</text>", ">isolate</text>", ">pause-replication</text>",
		// legends of the line charts
		">acknowledged</text>", ">p99</text>", ">read-back lag</text>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Two runs with charts: a timeline each; throughput and latency each;
	// lag for the first only.
	if n := strings.Count(out, "<svg "); n != 2+2+2+1 {
		t.Errorf("page has %d <svg> elements, want 7", n)
	}
	if n := strings.Count(out, "<?xml"); n != 0 {
		t.Errorf("page has %d XML preludes inside HTML", n)
	}
	if sections := strings.Count(out, `<section class="run`); sections != 3 {
		t.Errorf("%d run sections, want 3", sections)
	}
}

func TestWriteEscapesEveryTextOfTheInput(t *testing.T) {
	out := render(t, samplePage())
	for _, bad := range []string{`<script>alert`, `<img src=x`, `<b>kill</b>`, "lost & duplicated"} {
		if strings.Contains(out, bad) {
			t.Errorf("page contains unescaped %q", bad)
		}
	}
	for _, want := range []string{
		`LeaderAck &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`, // HTML, by html/template
		`&lt;img src=x onerror=alert(1)&gt;`,
		`&lt;b&gt;kill&lt;/b&gt;`, // SVG text, by gonum
		"lost &amp; duplicated",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks escaped %q", want)
		}
	}
}

func TestWriteFetchesNothing(t *testing.T) {
	out := render(t, samplePage())
	for _, bad := range []string{"<script", "<link", "@import", "url(", "src=\"http", "href=\"http", "@font-face"} {
		if strings.Contains(out, bad) {
			t.Errorf("page contains %q: it must open without a network", bad)
		}
	}
}

func TestWriteRefusesAPageWithoutRuns(t *testing.T) {
	if err := Write(&bytes.Buffer{}, Page{}); !errors.Is(err, ErrNoRuns) {
		t.Errorf("err = %v, want ErrNoRuns", err)
	}
}

func TestWriteDirCreatesTheDirectoryAndIndexHTML(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path, err := WriteDir(dir, samplePage())
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "index.html") {
		t.Errorf("path = %q", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("<!DOCTYPE html>")) || !bytes.Contains(b, []byte("</html>")) {
		t.Errorf("index.html is not a whole page (%d bytes)", len(b))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want index.html alone", len(entries))
	}
}

func TestWriteDirNamesAFileInTheWay(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := WriteDir(file, samplePage())
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("err = %v, want one naming %s", err, file)
	}
}
