package retry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/retry"
)

func actionMarker() *retry.Marker {
	return &retry.Marker{Kind: retry.KindMarker, Origin: retry.Origin{Topic: "orders", Partition: 2, Offset: 17},
		Key: []byte("k/1"), Value: []byte("payload"), Attempts: 1}
}

func TestHTTPPostSucceedsOnlyOn2xx(t *testing.T) {
	t.Parallel()
	status := http.StatusNoContent
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.WriteHeader(status)
		_, _ = w.Write([]byte("busy"))
	}))
	defer srv.Close()
	h := retry.HTTPPost(srv.URL, nil)
	if err := h(context.Background(), actionMarker()); err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || body != "payload" || got.Header.Get(retry.HTTPHeaderTopic) != "orders" ||
		got.Header.Get(retry.HTTPHeaderPartition) != "2" || got.Header.Get(retry.HTTPHeaderOffset) != "17" ||
		got.Header.Get(retry.HTTPHeaderAttempt) != "2" || got.Header.Get(retry.HTTPHeaderKey) != base64.StdEncoding.EncodeToString([]byte("k/1")) {
		t.Errorf("request %s %v body %q", got.Method, got.Header, body)
	}
	for _, s := range []int{http.StatusInternalServerError, http.StatusBadRequest, http.StatusMovedPermanently} {
		status = s
		if err := h(context.Background(), actionMarker()); err == nil || !strings.Contains(err.Error(), "busy") {
			t.Errorf("status %d: %v, want a failed attempt with the body", s, err)
		}
	}
	if err := retry.HTTPPost("http://127.0.0.1:1/", nil)(context.Background(), actionMarker()); err == nil || retry.IsPermanent(err) {
		t.Errorf("unreachable server: %v, want a retryable error", err)
	}
}

func TestExecSucceedsOnExitZeroWithTheValueOnStdin(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	script := `cat > "$OUT"; echo "$KAFKAGUARD_TOPIC $KAFKAGUARD_PARTITION $KAFKAGUARD_OFFSET $KAFKAGUARD_ATTEMPT $KAFKAGUARD_KEY" >> "$OUT"`
	t.Setenv("OUT", out)
	if err := retry.Exec("sh", "-c", script)(context.Background(), actionMarker()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "payloadorders 2 17 2 " + base64.StdEncoding.EncodeToString([]byte("k/1")) + "\n"; string(b) != want {
		t.Errorf("the command saw %q, want %q", b, want)
	}
	err = retry.Exec("sh", "-c", "echo 'no such order' >&2; exit 3")(context.Background(), actionMarker())
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "no such order") {
		t.Errorf("failing command: %v", err)
	}
	if err := retry.Exec("/nonexistent/cmd")(context.Background(), actionMarker()); err == nil {
		t.Error("a missing command succeeded")
	}
}

func TestRepublishedRecordParkedAgainContinuesItsAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "rep", 1)
	ctx := context.Background()
	h, err := retry.Republish(e.cl)
	if err != nil {
		t.Fatal(err)
	}
	m := actionMarker()
	m.Topic, m.Partition = e.topic, 0
	m.Attempts = 2
	m.History = []retry.Attempt{{Attempt: 1, At: time.Now(), Error: "a"}, {Attempt: 2, At: time.Now(), Error: "b"}}
	m.Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}}
	if err := h(ctx, m); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, e.c, e.topic)
	if len(recs) != 1 || string(recs[0].Value) != "payload" || string(recs[0].Key) != "k/1" {
		t.Fatalf("republished %v", recs)
	}
	// The consumer fails it again: with MaxAttempts 3 this is the last attempt.
	p, err := retry.NewParker(e.cl, retry.MaxAttempts(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Park(ctx, recs[0], errors.New("c")); err != nil {
		t.Fatal(err)
	}
	dl := readAll(t, e.c, e.topic+retry.DeadLetterSuffix)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	d, err := retry.ParseMarker(dl[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.Origin != m.Origin || d.Attempts != 3 || len(d.History) != 3 || d.LastError() != "c" || len(d.Headers) != 1 {
		t.Errorf("dead letter %+v: want the original origin, 3 attempts and the original header only", d)
	}
	if _, err := retry.Republish(nil); !errors.Is(err, retry.ErrInvalidOption) {
		t.Errorf("Republish(nil): %v", err)
	}
}
