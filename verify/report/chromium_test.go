package report

import (
	"bytes"
	"context"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium returns a function running headless Chromium on a page with
// extra arguments, skipping the test when Chromium is not installed
// (.ci/run installs it and counts a skip as a failure).
func chromium(t *testing.T) func(args ...string) []byte {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("chromium is not on PATH (Debian/Ubuntu: apt-get install chromium); CI installs it")
	}
	return func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		// The flags that work in a sandbox without a network: no background
		// connections, a fresh profile.
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir()}
		cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.String())
		}
		return stdout.Bytes()
	}
}

func TestReportRendersInHeadlessChromium(t *testing.T) {
	run := chromium(t)
	path, err := WriteDir(t.TempDir(), samplePage())
	if err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.ToSlash(path)

	dom := string(run("--dump-dom", url))
	if !strings.Contains(dom, "</html>") {
		t.Fatalf("no DOM dumped:\n%.2000s", dom)
	}
	count := func(s string) int { return strings.Count(dom, s) }
	checks := []struct {
		what      string
		got, want int
	}{
		{"run sections", count(`<section class="run`), 3},
		{"fault timelines with an SVG", count("<figure class=\"chart timeline\"><figcaption>Faults over time</figcaption>\n<svg"), 2},
		{"throughput charts", count("<figcaption>Produce throughput</figcaption>\n<svg"), 2},
		{"latency charts", count("<figcaption>Ack latency p50 / p99</figcaption>\n<svg"), 2},
		{"lag charts", count("<figcaption>Lag</figcaption>\n<svg"), 1},
		{"anomaly tables", count(`<table class="anomalies">`), 2}, // the run that could not be carried out has none
		{"anomaly example rows", count(`<tr class="example">`), 5},
		{"violation rows", count(`<tr class="violation">`), 1},
		{"script elements", count("<script"), 0}, // the run named <script> stayed text
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("rendered DOM has %d %s, want %d", c.got, c.what, c.want)
		}
	}
	for _, want := range []string{"k0:115", "&lt;img src=x onerror=alert(1)&gt;", "broker 2", "pause-replication",
		"LeaderAck &lt;script&gt;"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}

	shot := filepath.Join(t.TempDir(), "report.png")
	run("--hide-scrollbars", "--window-size=1100,1400", "--screenshot="+shot, url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// The first run's timeline draws its first fault kind (kill) in the
	// first fault colour: if the SVG did not render, the colour is nowhere.
	kill := kindColours()[0]
	found := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) == kill {
				found++
			}
		}
	}
	if b.Dx() != 1100 || found < 500 {
		t.Errorf("screenshot %v has %d pixels of the kill bar's colour, want a bar of at least 500", b, found)
	}
}
