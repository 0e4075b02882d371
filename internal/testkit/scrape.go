package testkit

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
