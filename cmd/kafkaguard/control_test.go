package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// startBrokerInProcess runs "kafkaguard broker args..." in this process
// until the test ends and returns its ready line.
func startBrokerInProcess(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := runBroker(ctx, append([]string{"--port", "0"}, args...), pw, &stderr)
		pw.Close()
		done <- code
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("broker exited with %d: %s", code, stderr.String())
		}
	})
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, br) }()
	return strings.TrimSpace(line)
}

func controlURL(t *testing.T, ready string) string {
	t.Helper()
	for _, f := range strings.Fields(ready) {
		if v, ok := strings.CutPrefix(f, "control="); ok {
			return v
		}
	}
	t.Fatalf("no control URL in %q", ready)
	return ""
}

func getStatus(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestBrokerControlAPIIsLoopbackUnlessGuardedByAToken(t *testing.T) {
	t.Setenv(envControlToken, "")
	// No host: loopback, no token needed.
	ready := startBrokerInProcess(t, "--control", ":0")
	base := controlURL(t, ready)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("--control :0 listens on %s, want 127.0.0.1", base)
	}
	if code := getStatus(t, base+"/cluster", ""); code != http.StatusOK {
		t.Fatalf("loopback without a token: %d", code)
	}

	// Elsewhere without a token: refused before anything starts.
	for _, addr := range []string{"0.0.0.0:0", "[::]:0"} {
		code, _, stderr := runCLI(t, "broker", "--port", "0", "--control", addr)
		if code != 2 || !strings.Contains(stderr, "not a loopback address") || !strings.Contains(stderr, "--control-token-file") {
			t.Errorf("--control %s without a token: exit code %d, stderr %q; want 2 naming --control-token-file", addr, code, stderr)
		}
	}
	code, _, stderr := runCLI(t, "broker", "--control-token-file", writeTemp(t, "tok", "x\n"))
	if code != 2 || !strings.Contains(stderr, "--control-token-file needs --control") {
		t.Errorf("token without --control: exit code %d, stderr %q", code, stderr)
	}

	// Elsewhere with a token: every route needs it.
	ready = startBrokerInProcess(t, "--control", "0.0.0.0:0", "--control-token-file", writeTemp(t, "tok", "s3cret\n"))
	base = strings.Replace(controlURL(t, ready), "0.0.0.0", "127.0.0.1", 1)
	for _, path := range []string{"/cluster", "/partitions/x/0", "/nowhere"} {
		if code := getStatus(t, base+path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
		if code := getStatus(t, base+path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, code)
		}
	}
	if code := getStatus(t, base+"/cluster", "s3cret"); code != http.StatusOK {
		t.Errorf("GET /cluster with the token: %d, want 200", code)
	}
	// The token from the environment works the same way.
	t.Setenv(envControlToken, "from-env")
	ready = startBrokerInProcess(t, "--control", "0.0.0.0:0")
	base = strings.Replace(controlURL(t, ready), "0.0.0.0", "127.0.0.1", 1)
	if getStatus(t, base+"/cluster", "") != http.StatusUnauthorized || getStatus(t, base+"/cluster", "from-env") != http.StatusOK {
		t.Errorf("$%s does not guard the API", envControlToken)
	}
}

func TestVerifySendsTheControlToken(t *testing.T) {
	t.Setenv(envControlToken, "")
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3))
	srv := httptest.NewServer(cluster.RequireBearer("s3cret", c.ControlHandler()))
	defer srv.Close()
	args := []string{"--bootstrap", strings.Join(c.Bootstrap(), ","), "--control", srv.URL,
		"--preset", "NoLoss", "--fault", "kill-leader", "--records", "200", "--keys", "2"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := runVerify(ctx, args, &stdout, &stderr); code != 1 || !strings.Contains(stdout.String(), "401 Unauthorized") {
		t.Fatalf("without the token: exit code %d, want 1 and a 401\nstdout:\n%s", code, stdout.String())
	}
	stdout.Reset()
	if code := runVerify(ctx, append(args, "--control-token-file", writeTemp(t, "tok", "s3cret\n")), &stdout, &stderr); code != 0 {
		t.Fatalf("with the token: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
}
