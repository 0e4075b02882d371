package kafkacluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fakeScript writes a stand-in for kafka.sh that appends its arguments to a
// log and runs startBody for `start`; every other command succeeds, and
// `clean` removes the run dir like the real one. It returns the script path
// and a function reading the logged calls (without "--dir DIR").
func fakeScript(t *testing.T, startBody string) (string, func() []string) {
	t.Helper()
	tmp := t.TempDir()
	logPath := filepath.Join(tmp, "calls.log")
	script := filepath.Join(tmp, "kafka.sh")
	body := `#!/usr/bin/env bash
echo "${*:3}" >>'` + logPath + `'
dir=$2 cmd=$3
case $cmd in
start) ` + startBody + ` ;;
clean) rm -rf "$dir" ;;
esac
exit 0
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	calls := func() []string {
		b, err := os.ReadFile(logPath)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	return script, calls
}

const readyThree = `echo "kafka.sh: fetching"; echo "ready bootstrap=127.0.0.1:20092,127.0.0.1:20093,127.0.0.1:20094"`

func TestStartPassesShapeAndParsesBootstrap(t *testing.T) {
	tests := []struct {
		name     string
		nodes    int
		port     int
		ready    string
		wantArgs string
		want     []string
	}{
		{"one node default port", 1, 0, `echo "ready bootstrap=127.0.0.1:19092"`,
			"start --nodes 1 --base-port 19092", []string{"127.0.0.1:19092"}},
		{"three nodes custom port", 3, 20092, readyThree,
			"start --nodes 3 --base-port 20092", []string{"127.0.0.1:20092", "127.0.0.1:20093", "127.0.0.1:20094"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script, calls := fakeScript(t, tt.ready)
			opts := []Opt{Script(script), Dir(t.TempDir())}
			if tt.port != 0 {
				opts = append(opts, BasePort(tt.port))
			}
			c, err := Start(context.Background(), tt.nodes, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Bootstrap(); !slices.Equal(got, tt.want) {
				t.Errorf("Bootstrap() = %v, want %v", got, tt.want)
			}
			if c.Nodes() != tt.nodes {
				t.Errorf("Nodes() = %d, want %d", c.Nodes(), tt.nodes)
			}
			if got := calls(); !slices.Equal(got, []string{tt.wantArgs}) {
				t.Errorf("script calls = %q, want [%q]", got, tt.wantArgs)
			}
		})
	}
}

func TestStartRejectsBadArgumentsWithoutRunningScript(t *testing.T) {
	tests := []struct {
		name  string
		nodes int
		opts  []Opt
	}{
		{"zero nodes", 0, nil},
		{"two nodes", 2, nil},
		{"four nodes", 4, nil},
		{"privileged port", 1, []Opt{BasePort(80)}},
		{"port range overflows", 3, []Opt{BasePort(65500)}},
		{"zero stop timeout", 1, []Opt{StopTimeout(0)}},
		{"broker config without key", 1, []Opt{BrokerConfig("", "2")}},
		{"broker config spanning lines", 1, []Opt{BrokerConfig("a", "1\nb=2")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script, calls := fakeScript(t, readyThree)
			opts := append([]Opt{Script(script), Dir(t.TempDir())}, tt.opts...)
			if _, err := Start(context.Background(), tt.nodes, opts...); err == nil {
				t.Fatal("Start succeeded, want an error")
			}
			if got := calls(); got != nil {
				t.Errorf("script ran: %q", got)
			}
		})
	}
}

func TestStartPassesBrokerConfigsAndFaultsNameTheNode(t *testing.T) {
	script, calls := fakeScript(t, readyThree)
	c, err := Start(context.Background(), 3, Script(script), Dir(t.TempDir()),
		BrokerConfig("min.insync.replicas", "2"), BrokerConfig("log.flush.interval.messages", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(2); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(2); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(4); !errors.Is(err, ErrNoSuchNode) {
		t.Errorf("Pause(4) = %v, want ErrNoSuchNode", err)
	}
	want := []string{
		"start --nodes 3 --base-port 19092 --config min.insync.replicas=2 --config log.flush.interval.messages=1",
		"pause 2",
		"resume 2",
	}
	if got := calls(); !slices.Equal(got, want) {
		t.Errorf("script calls = %q, want %q", got, want)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(1); !errors.Is(err, ErrStopped) {
		t.Errorf("Resume after Stop = %v, want ErrStopped", err)
	}
}

func TestStartMissingScriptIsClearError(t *testing.T) {
	_, err := Start(context.Background(), 1, Script(filepath.Join(t.TempDir(), "nope.sh")))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want one matching os.ErrNotExist", err)
	}
}

func TestStartFailureCarriesStderrAndStopsOnlyWhatItOwns(t *testing.T) {
	const fail = `echo "---- node 2: tail of server.log ----" >&2; echo "FATAL boom" >&2; exit 1`
	tests := []struct {
		name      string
		ownDir    bool
		wantCalls []string
	}{
		// kafka.sh already stopped its nodes; another cluster may live in a
		// caller's dir, so Start must not stop it.
		{"caller's dir is left alone", false, []string{"start --nodes 3 --base-port 19092"}},
		{"own temp dir is cleaned", true, []string{"start --nodes 3 --base-port 19092", "clean"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script, calls := fakeScript(t, fail)
			opts := []Opt{Script(script)}
			if !tt.ownDir {
				opts = append(opts, Dir(t.TempDir()))
			}
			_, err := Start(context.Background(), 3, opts...)
			var se *ScriptError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *ScriptError", err)
			}
			if !strings.Contains(se.Stderr, "FATAL boom") || !strings.Contains(err.Error(), "FATAL boom") {
				t.Errorf("error lacks the broker log tail: %v", err)
			}
			if errors.Is(err, ErrUnavailable) {
				t.Errorf("a broker failure must not read as ErrUnavailable: %v", err)
			}
			if got := calls(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("script calls = %q, want %q", got, tt.wantCalls)
			}
		})
	}
}

func TestStartReportsUnavailableOnExit69(t *testing.T) {
	script, _ := fakeScript(t, `echo "kafka.sh: unavailable: java not found" >&2; exit 69`)
	_, err := Start(context.Background(), 1, Script(script), Dir(t.TempDir()))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "java not found") {
		t.Errorf("err = %v, want the script's reason", err)
	}
}

func TestStartWithoutReadyLineFailsAndStops(t *testing.T) {
	script, calls := fakeScript(t, `echo "started, maybe"`)
	_, err := Start(context.Background(), 1, Script(script), Dir(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "no ready line") {
		t.Fatalf("err = %v, want a missing ready line error", err)
	}
	if got := calls(); !slices.Contains(got, "stop") {
		t.Errorf("script calls = %q, want a stop after the failed start", got)
	}
}

func TestStartCancelledStopsLaunchedNodes(t *testing.T) {
	script, calls := fakeScript(t, `exec sleep 60`)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Start(ctx, 3, Script(script), Dir(t.TempDir()))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if got := calls(); !slices.Contains(got, "stop") {
		t.Errorf("script calls = %q, want a stop after the cancelled start", got)
	}
}

func TestFaultsRunScriptAndValidateNodeIDs(t *testing.T) {
	script, calls := fakeScript(t, readyThree)
	c, err := Start(context.Background(), 3, Script(script), Dir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Kill(2); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, 3); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{0, -1, 4} {
		if err := c.Kill(id); !errors.Is(err, ErrNoSuchNode) {
			t.Errorf("Kill(%d) = %v, want ErrNoSuchNode", id, err)
		}
		if err := c.Restart(ctx, id); !errors.Is(err, ErrNoSuchNode) {
			t.Errorf("Restart(%d) = %v, want ErrNoSuchNode", id, err)
		}
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop() = %v, want nil", err)
	}
	if err := c.Kill(1); !errors.Is(err, ErrStopped) {
		t.Errorf("Kill after Stop = %v, want ErrStopped", err)
	}
	if err := c.Restart(ctx, 1); !errors.Is(err, ErrStopped) {
		t.Errorf("Restart after Stop = %v, want ErrStopped", err)
	}
	want := []string{"start --nodes 3 --base-port 19092", "kill 2", "restart 3", "stop"}
	if got := calls(); !slices.Equal(got, want) {
		t.Errorf("script calls = %q, want %q", got, want)
	}
}

func TestStopCleansOwnDirOnly(t *testing.T) {
	script, calls := fakeScript(t, readyThree)
	c, err := Start(context.Background(), 3, Script(script))
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Dir()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := calls(); !slices.Equal(got, []string{"start --nodes 3 --base-port 19092", "clean"}) {
		t.Errorf("script calls = %q, want start then clean", got)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("own run dir %s still exists after Stop (stat: %v)", dir, err)
	}
}

func TestParseReady(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []string
		wantErr bool
	}{
		{"single", "ready bootstrap=127.0.0.1:19092\n", []string{"127.0.0.1:19092"}, false},
		{"after notes", "x\nready bootstrap=a:1,b:2\n", []string{"a:1", "b:2"}, false},
		{"no line", "starting\n", nil, true},
		{"empty list", "ready bootstrap=\n", nil, true},
		{"missing port", "ready bootstrap=127.0.0.1\n", nil, true},
		{"empty entry", "ready bootstrap=a:1,,b:2\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReady(tt.out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseReady(%q) err = %v, wantErr %v", tt.out, err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("parseReady(%q) = %q, want %q", tt.out, got, tt.want)
			}
		})
	}
}

// TestRealKafkaRecordSurvivesSIGKILLAndRestart runs the real kafka.sh: it
// fetches Kafka (about 30-60 s the first time) and starts a one-node
// cluster. Set KAFKAGUARD_REAL_KAFKA=1 to run it.
func TestRealKafkaRecordSurvivesSIGKILLAndRestart(t *testing.T) {
	if os.Getenv("KAFKAGUARD_REAL_KAFKA") != "1" {
		t.Skip("set KAFKAGUARD_REAL_KAFKA=1 to start real Apache Kafka")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Start(ctx, 1, BasePort(29092))
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	}()

	const topic = "kafkacluster-survives"
	createTopic(ctx, t, c, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	if err := c.Kill(1); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	fs := cons.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Value) != "kept" || recs[0].Offset != 0 {
		t.Fatalf("after SIGKILL and restart read %v, want the one acked record at offset 0", recs)
	}
}

func createTopic(ctx context.Context, t *testing.T, c *Cluster, topic string) {
	t.Helper()
	out, err := runScript(ctx, c, "topics", "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1")
	if err != nil {
		t.Fatalf("create topic: %v\n%s", err, out)
	}
}

func runScript(ctx context.Context, c *Cluster, args ...string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.run(ctx, args...)
}
