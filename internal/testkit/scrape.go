package testkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Scrape gets a Prometheus /metrics page (text format) and returns its
// samples whose name starts with prefix, as "name{labels}" → value text,
// exactly as the page spells them.
func Scrape(tb testing.TB, url, prefix string) map[string]string {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			name, value, _ := strings.Cut(line, " ")
			out[name] = value
		}
	}
	return out
}

// ServeMetrics serves reg's /metrics page over HTTP until the test ends and
// returns its URL.
func ServeMetrics(tb testing.TB, reg *prometheus.Registry) string {
	tb.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	tb.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}
