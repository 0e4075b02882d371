package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/kafkatest"
	"github.com/kafkaguard/kafkaguard/retry"
)

func TestRetryJobRejectsBadUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no bootstrap", []string{"--topic", "t"}, "--bootstrap and --topic are required"},
		{"no topic", []string{"--bootstrap", "127.0.0.1:1"}, "--bootstrap and --topic are required"},
		{"unknown action", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--action", "ftp://x"}, "--action must be"},
		{"empty exec", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--action", "exec:  "}, "needs a command"},
		{"key order with republish", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--key-order"}, "--key-order cannot be kept"},
		{"bad max attempts", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--action", "exec:true", "--max-attempts", "0"}, "--max-attempts must be at least 1, got 0"},
		{"bad jitter", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--action", "exec:true", "--backoff-jitter", "1.5"}, "--backoff-jitter must be in [0, 1), got 1.5"},
		{"stray argument", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "extra"}, "unexpected arguments"},
		{"bad log format", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--log-format", "xml"}, `invalid value "xml" for flag --log-format: want text or json`},
		{"bad header mode", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--header-mode", "java"}, `--header-mode must be kafkaguard or spring, got "java"`},
		{"spring with key order", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--action", "exec:true", "--header-mode", "spring", "--key-order"}, "--key-order needs --header-mode kafkaguard"},
		{"bad log level", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--log-level", "loud"}, `invalid value "loud" for flag --log-level`},
		{"exactly once with key order", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--action", "exec:true", "--exactly-once", "--key-order"}, "--key-order cannot be combined with --exactly-once"},
		{"instance without exactly once", []string{"--bootstrap", "127.0.0.1:1", "--topic", "t", "--instance", "a"}, "--instance needs --exactly-once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), append([]string{"retry-job"}, tt.args...), &stdout, &stderr); code != 2 {
				t.Fatalf("exit code %d, want 2; stderr %q", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
				t.Errorf("stderr %q, want it to mention %q; stdout %q", stderr.String(), tt.want, stdout.String())
			}
		})
	}
}

// startRetryJob runs the command until the returned stop is called and
// returns its ready line.
func startRetryJob(t *testing.T, args ...string) (ready string, stop func() int) {
	t.Helper()
	r, stop := startRetryJobLogs(t, args...)
	return r.line, stop
}

// retryJobStart is a started retry job's ready line and its stderr so far.
type retryJobStart struct {
	line   string
	stderr *testkit.LockedBuffer
}

// startRetryJobLogs is startRetryJob that also returns the job's stderr.
func startRetryJobLogs(t *testing.T, args ...string) (ready retryJobStart, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr testkit.LockedBuffer
	done := make(chan int, 1)
	go func() {
		code := run(ctx, append([]string{"retry-job"}, args...), pw, &stderr)
		pw.Close()
		done <- code
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case ready.line = <-lines:
	case code := <-done:
		t.Fatalf("retry-job exited with %d: %s", code, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("no ready line")
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("retry-job did not stop: %s", stderr.String())
			}
		})
		return code
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("retry-job's stderr:\n%s", stderr.String())
		}
	})
	ready.stderr = &stderr
	return ready, stop
}

// clusterWithTopics starts a cluster with the named one-partition topics and
// returns it with a client.
func clusterWithTopics(t *testing.T, names ...string) (*kafkatest.Cluster, *kgo.Client) {
	t.Helper()
	c := kafkatest.NewCluster(t)
	ctx := context.Background()
	for _, name := range names {
		if err := c.CreateTopic(ctx, name, 1, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c, cl
}

func setupRetryTopics(t *testing.T, topic string) (*kafkatest.Cluster, *kgo.Client, *retry.Parker) {
	t.Helper()
	c, cl := clusterWithTopics(t, topic, topic+retry.RetrySuffix, topic+retry.DeadLetterSuffix)
	p, err := retry.NewParker(cl, retry.RetryBackoff(retry.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2}))
	if err != nil {
		t.Fatal(err)
	}
	return c, cl, p
}

func TestRetryJobExecActionRetriesUntilExitZeroAndServesMetrics(t *testing.T) {
	t.Parallel()
	c, _, p := setupRetryTopics(t, "cli")
	ctx := context.Background()
	for i, v := range []string{"a", "b", "c"} {
		r := &kgo.Record{Topic: "cli", Partition: 0, Offset: int64(i), Key: []byte(v), Value: []byte(v)}
		if err := p.Park(ctx, r, errors.New("consumer failed")); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	// The command fails the first retry of every record and succeeds after.
	script := filepath.Join(dir, "handle.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
v=$(cat)
if [ "$KAFKAGUARD_ATTEMPT" -lt 3 ]; then echo "not yet $v" >&2; exit 1; fi
echo "$v" >> "`+filepath.Join(dir, "done")+`"
`), 0o755); err != nil {
		t.Fatal(err)
	}
	ready, stop := startRetryJob(t, "--bootstrap", strings.Join(c.Bootstrap(), ","), "--topic", "cli",
		"--action", "exec:"+script, "--metrics", "127.0.0.1:0", "--backoff-initial", "10ms", "--backoff-max", "50ms", "--log-level", "warn")
	if !strings.HasPrefix(ready, "ready retry_topic=cli.retry dlq_topic=cli.dlq group=kafkaguard-retry-cli.retry action=exec metrics=http://") {
		t.Fatalf("ready line %q", ready)
	}
	metricsURL := ready[strings.Index(ready, "metrics=")+len("metrics="):]
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "done"))
		if strings.Count(string(b), "\n") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("done file %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The script writes its line before it exits, and the job counts the
	// success once it has seen the exit: the counters may lag the file.
	wants := []string{
		`kafkaguard_retry_retried_total{topic="cli"} 6`,
		`kafkaguard_retry_succeeded_total{topic="cli"} 3`,
		`kafkaguard_retry_parked_total{topic="cli"} 3`, // the re-parks; the first parks were another process's
	}
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(string(body), want+"\n") {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range missing {
		t.Errorf("/metrics lacks %q", want)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0", code)
	}
}

func TestRetryJobRepublishSendsTheRecordBackToItsTopic(t *testing.T) {
	t.Parallel()
	c, _, p := setupRetryTopics(t, "back")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: "back", Partition: 0, Offset: 7, Key: []byte("k"), Value: []byte("again"),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("x")}}}
	if err := p.Park(ctx, r, errors.New("consumer failed")); err != nil {
		t.Fatal(err)
	}
	ready, stop := startRetryJob(t, "--bootstrap", strings.Join(c.Bootstrap(), ","), "--topic", "back", "--log-level", "warn",
		"--metrics", "127.0.0.1:0")
	got := pollRepublished(ctx, t, c, "back")
	if len(got) != 1 || string(got[0].Value) != "again" || string(got[0].Key) != "k" {
		t.Fatalf("republished %v", got)
	}
	m, err := retry.ParseMarker(got[0])
	if err != nil || m.Kind != retry.KindRepublished || m.Offset != 7 || m.Attempts != 1 || len(m.Headers) != 1 {
		t.Errorf("republished record %+v (%v): want its origin, attempt count and own header", m, err)
	}
	metricsURL := ready[strings.Index(ready, "metrics=")+len("metrics="):]
	testkit.WaitFor(t, 10*time.Second, "the republished record counted as acked", func() bool {
		return testkit.Scrape(t, metricsURL, "kafkaguard_produce_")[`kafkaguard_produce_acked_total{topic="back"}`] == "1"
	})
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// pollRepublished returns the records of the first fetch of topic from its
// start, failing t if none comes before ctx ends.
func pollRepublished(ctx context.Context, t *testing.T, c *kafkatest.Cluster, topic string, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cons, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	fs := cons.PollFetches(ctx)
	if err := ctx.Err(); err != nil {
		t.Fatal("nothing was republished")
	}
	return fs.Records()
}

// TestRetryJobExactlyOnceRepublishesInItsTransaction: with --exactly-once the
// republished record is written by the job's transaction, which a
// read_committed consumer reads once, and the ready line names the
// transactional id.
func TestRetryJobExactlyOnceRepublishesInItsTransaction(t *testing.T) {
	t.Parallel()
	c, _, p := setupRetryTopics(t, "eos")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: "eos", Partition: 0, Offset: 3, Key: []byte("k"), Value: []byte("once")}
	if err := p.Park(ctx, r, errors.New("consumer failed")); err != nil {
		t.Fatal(err)
	}
	ready, stop := startRetryJob(t, "--bootstrap", strings.Join(c.Bootstrap(), ","), "--topic", "eos", "--log-level", "warn",
		"--exactly-once", "--instance", "i1", "--metrics", "127.0.0.1:0")
	if !strings.Contains(ready, " action=republish exactly_once=kafkaguard-retry-eos.retry/i1 metrics=http://") {
		t.Errorf("ready line %q", ready)
	}
	if got := pollRepublished(ctx, t, c, "eos", kgo.FetchIsolationLevel(kgo.ReadCommitted())); len(got) != 1 || string(got[0].Value) != "once" {
		t.Fatalf("republished %v", got)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	committed := testkit.CommittedOffsets(ctx, t, c.Bootstrap(), retry.DefaultGroup("eos.retry"), "eos.retry")
	if committed[0] < 1 {
		t.Errorf("the marker's offset was not committed: %v", committed)
	}
}

// TestRetryJobRefusesToStartWhenItsTopicsAreMissing: a retry job whose retry
// and dead-letter topics do not exist says so and exits 1 before it prints
// ready, instead of printing ready and failing later.
func TestRetryJobRefusesToStartWhenItsTopicsAreMissing(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.NoAutoCreateTopics())
	if err := c.CreateTopic(context.Background(), "miss", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr testkit.LockedBuffer
	code := run(ctx, []string{"retry-job", "--bootstrap", strings.Join(c.Bootstrap(), ","), "--topic", "miss",
		"--action", "exec:true", "--log-level", "warn"}, &stdout, &stderr)
	if code != 1 || stdout.String() != "" {
		t.Fatalf("exit code %d, stdout %q, want 1 and no ready line; stderr %q", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"miss.retry", "miss.dlq", "do not exist", "--create-topics"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q does not mention %q", stderr.String(), want)
		}
	}
}

// TestRetryJobCreateTopicsCreatesNoLossTopicsThenServesHealthAndReadiness:
// with --create-topics the missing retry and dead-letter topics are created
// with TOPIC's partitions and the no-loss configs before the ready line;
// /healthz and /readyz answer beside /metrics; --log-format json logs JSON.
func TestRetryJobCreateTopicsCreatesNoLossTopicsThenServesHealthAndReadiness(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t, kafkatest.Brokers(3), kafkatest.NoAutoCreateTopics())
	ctx := context.Background()
	if err := c.CreateTopic(ctx, "mk", 2, 3, nil); err != nil {
		t.Fatal(err)
	}
	ready, stop := startRetryJobLogs(t, "--bootstrap", strings.Join(c.Bootstrap(), ","), "--topic", "mk",
		"--create-topics", "--metrics", "127.0.0.1:0", "--log-format", "json")
	if !strings.HasPrefix(ready.line, "ready retry_topic=mk.retry dlq_topic=mk.dlq ") {
		t.Fatalf("ready line %q", ready.line)
	}
	base := strings.TrimSuffix(ready.line[strings.Index(ready.line, "metrics=")+len("metrics="):], "/metrics")
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, want 200", path, resp.Status)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, "mk.retry", "mk.dlq")
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, "mk.retry", "mk.dlq")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mk.retry", "mk.dlq"} {
		d := details[name]
		if d.Err != nil || len(d.Partitions) != 2 || d.Partitions.NumReplicas() != 3 {
			t.Errorf("%s: %d partitions, %d replicas (%v), want 2 and 3", name, len(d.Partitions), d.Partitions.NumReplicas(), d.Err)
		}
		rc, err := cfgs.On(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, cv := range rc.Configs {
			got[cv.Key] = cv.MaybeValue()
		}
		if got["min.insync.replicas"] != "2" || got["unclean.leader.election.enable"] != "false" {
			t.Errorf("%s: min.insync.replicas=%q unclean.leader.election.enable=%q, want 2 and false",
				name, got["min.insync.replicas"], got["unclean.leader.election.enable"])
		}
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	var created int
	for _, line := range strings.Split(strings.TrimSpace(ready.stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", line, err)
		}
		if rec["msg"] == "retry-job: topic created" {
			created++
		}
	}
	if created != 2 {
		t.Errorf("%d topic-created log lines, want 2:\n%s", created, ready.stderr.String())
	}
}

// TestRetryJobReadyzAnswers503UntilReady: /readyz follows the ready flag,
// /healthz does not.
func TestRetryJobReadyzAnswers503UntilReady(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	srv := httptest.NewServer(retryJobMux(prometheus.NewRegistry(), &ready))
	defer srv.Close()
	status := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, step := range []struct {
		ready          bool
		health, readyz int
	}{{false, 200, 503}, {true, 200, 200}, {false, 200, 503}} {
		ready.Store(step.ready)
		if h, r := status("/healthz"), status("/readyz"); h != step.health || r != step.readyz {
			t.Errorf("ready=%v: /healthz %d, /readyz %d, want %d and %d", step.ready, h, r, step.health, step.readyz)
		}
	}
}

func TestRetryJobSpringHeaderModeDeadLettersToTheDLTWithSpringHeaders(t *testing.T) {
	t.Parallel()
	c, cl := clusterWithTopics(t, "sp", "sp-retry-0", "sp-dlt")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// As Spring's recoverer writes it after the main listener's failure.
	rec := &kgo.Record{Topic: "sp-retry-0", Key: []byte("k"), Value: []byte("v"), Headers: []kgo.RecordHeader{
		{Key: "kafka_dlt-original-topic", Value: []byte("sp")},
		{Key: "kafka_dlt-original-partition", Value: []byte{0, 0, 0, 0}},
		{Key: "kafka_dlt-original-offset", Value: []byte{0, 0, 0, 0, 0, 0, 0, 9}},
		{Key: "kafka_dlt-exception-message", Value: []byte("boom")},
		{Key: "retry_topic-original-timestamp", Value: []byte{0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00}},
		{Key: "retry_topic-attempts", Value: []byte{0, 0, 0, 2}},
		{Key: "retry_topic-backoff-timestamp", Value: []byte{0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00}},
	}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ready, stop := startRetryJob(t, "--bootstrap", strings.Join(c.Bootstrap(), ","), "--topic", "sp", "--retry-topic", "sp-retry-0",
		"--header-mode", "spring", "--action", "exec:false", "--max-attempts", "2", "--log-level", "warn")
	if !strings.HasPrefix(ready, "ready retry_topic=sp-retry-0 dlq_topic=sp-dlt ") {
		t.Fatalf("ready line %q", ready)
	}
	var dl []*kgo.Record
	testkit.WaitFor(t, 30*time.Second, "a dead letter on sp-dlt", func() bool {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		dl = testkit.ReadAll(rctx, t, c.Bootstrap(), "sp-dlt")
		return len(dl) > 0
	})
	hs := map[string][]byte{}
	for _, h := range dl[0].Headers {
		hs[h.Key] = h.Value
	}
	if string(hs["kafka_dlt-original-topic"]) != "sp" || !bytes.Equal(hs["kafka_dlt-original-offset"], []byte{0, 0, 0, 0, 0, 0, 0, 9}) ||
		!bytes.Equal(hs["retry_topic-attempts"], []byte{0, 0, 0, 3}) || !strings.Contains(string(hs["kafka_dlt-exception-message"]), "exec action false") {
		t.Errorf("dead letter headers %q", dl[0].Headers)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	// The DLQ tool finds Spring's dead-letter topic by its Spring name.
	code, stdout, stderr := runDLQ("list", "--bootstrap", strings.Join(c.Bootstrap(), ","), "--topic", "sp", "--header-mode", "spring")
	if code != 0 || !strings.HasPrefix(stdout, "sp-dlt: 1 dead letters, 1 errors\n") || !strings.Contains(stdout, "exec action false") {
		t.Errorf("dlq list: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
}
