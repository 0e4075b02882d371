package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// ClusterFaults returns a [FaultInjector] acting on a bundled cluster
// started with the kafkatest package. It supports every operation of
// [Ops]: it also implements [PowerLosser], [Pauser], [LinkCutter],
// [ControllerCutter], [Delayer] and [ControllerDelayer].
func ClusterFaults(c *kafkatest.Cluster) FaultInjector { return clusterFaults{c} }

type clusterFaults struct{ c *kafkatest.Cluster }

func (f clusterFaults) Kill(_ context.Context, id int32) error { return f.c.Kill(id) }
func (f clusterFaults) Restart(ctx context.Context, id int32) error {
	return f.c.Restart(ctx, id)
}
func (f clusterFaults) Isolate(_ context.Context, id int32) error { return f.c.Isolate(id) }
func (f clusterFaults) Heal(_ context.Context, id int32) error    { return f.c.Heal(id) }
func (f clusterFaults) PauseReplication(_ context.Context, id int32) error {
	return f.c.PauseReplication(id)
}
func (f clusterFaults) ResumeReplication(_ context.Context, id int32) error {
	return f.c.ResumeReplication(id)
}
func (f clusterFaults) PowerLoss(_ context.Context, ids ...int32) error {
	return f.c.PowerLoss(ids...)
}
func (f clusterFaults) Pause(_ context.Context, id int32) error  { return f.c.Pause(id) }
func (f clusterFaults) Resume(_ context.Context, id int32) error { return f.c.Resume(id) }
func (f clusterFaults) CutLink(_ context.Context, from, to int32) error {
	return f.c.CutLink(from, to)
}
func (f clusterFaults) HealLink(_ context.Context, from, to int32) error {
	return f.c.HealLink(from, to)
}
func (f clusterFaults) CutController(_ context.Context, id int32) error {
	return f.c.CutController(id)
}
func (f clusterFaults) ReconnectController(_ context.Context, id int32) error {
	return f.c.ReconnectController(id)
}
func (f clusterFaults) SetLatency(_ context.Context, id int32, latency, jitter time.Duration) error {
	return f.c.SetLatency(id, latency, jitter)
}
func (f clusterFaults) SetControllerLatency(_ context.Context, id int32, latency, jitter time.Duration) error {
	return f.c.SetControllerLatency(id, latency, jitter)
}
func (f clusterFaults) replicas(_ context.Context, topic string, p int32) ([]int32, error) {
	info, err := f.c.Partition(topic, p)
	return info.Replicas, err
}
func (f clusterFaults) Leader(_ context.Context, topic string, p int32) (int32, error) {
	info, err := f.c.Partition(topic, p)
	if err != nil {
		return -1, err
	}
	return info.Leader, nil
}

// ControlFaults returns a [FaultInjector] speaking the bundled cluster's
// JSON control API at base, such as "http://127.0.0.1:9644" (printed by
// "kafkaguard broker --control"). A nil client means http.DefaultClient.
// Like [ClusterFaults] it supports every operation of [Ops].
func ControlFaults(base string, client *http.Client) FaultInjector {
	if client == nil {
		client = http.DefaultClient
	}
	return &controlFaults{base: strings.TrimRight(base, "/"), client: client}
}

// ControlClient returns an HTTP client for [ControlFaults] that sends
// "Authorization: Bearer token" with every request, for a control API
// started with a token ("kafkaguard broker --control-token-file").
func ControlClient(token string) *http.Client {
	return &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
}

// bearer adds the Authorization header to each request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

type controlFaults struct {
	base   string
	client *http.Client
}

func (f *controlFaults) post(ctx context.Context, id int32, action string) error {
	return f.postQuery(ctx, id, action, nil)
}

func (f *controlFaults) postQuery(ctx context.Context, id int32, action string, q url.Values) error {
	path := "/brokers/" + strconv.Itoa(int(id)) + "/" + action
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return f.do(ctx, http.MethodPost, path, nil)
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (f *controlFaults) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, f.base+path, nil)
	if err != nil {
		return fmt.Errorf("verify: control API: %w", err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("verify: control API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("verify: control API: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return fmt.Errorf("verify: control API: %s %s: %s: %s", method, path, resp.Status, msg)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("verify: control API: %s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}

func (f *controlFaults) Kill(ctx context.Context, id int32) error { return f.post(ctx, id, "kill") }
func (f *controlFaults) Restart(ctx context.Context, id int32) error {
	return f.post(ctx, id, "restart")
}
func (f *controlFaults) Isolate(ctx context.Context, id int32) error {
	return f.post(ctx, id, "isolate")
}
func (f *controlFaults) Heal(ctx context.Context, id int32) error { return f.post(ctx, id, "heal") }

// PowerLoss posts power-loss for each broker in turn; each is down (and cut)
// before the next one's turn.
func (f *controlFaults) PowerLoss(ctx context.Context, ids ...int32) error {
	for _, id := range ids {
		if err := f.post(ctx, id, string(OpPowerLoss)); err != nil {
			return err
		}
	}
	return nil
}
func (f *controlFaults) PauseReplication(ctx context.Context, id int32) error {
	return f.post(ctx, id, "pause-replication")
}
func (f *controlFaults) ResumeReplication(ctx context.Context, id int32) error {
	return f.post(ctx, id, "resume-replication")
}
func (f *controlFaults) Pause(ctx context.Context, id int32) error  { return f.post(ctx, id, "pause") }
func (f *controlFaults) Resume(ctx context.Context, id int32) error { return f.post(ctx, id, "resume") }
func (f *controlFaults) CutLink(ctx context.Context, from, to int32) error {
	return f.postQuery(ctx, from, "cut-link", url.Values{"to": {strconv.Itoa(int(to))}})
}
func (f *controlFaults) HealLink(ctx context.Context, from, to int32) error {
	return f.postQuery(ctx, from, "heal-link", url.Values{"to": {strconv.Itoa(int(to))}})
}
func (f *controlFaults) CutController(ctx context.Context, id int32) error {
	return f.post(ctx, id, "cut-controller")
}
func (f *controlFaults) ReconnectController(ctx context.Context, id int32) error {
	return f.post(ctx, id, "reconnect-controller")
}
func (f *controlFaults) SetLatency(ctx context.Context, id int32, latency, jitter time.Duration) error {
	return f.postQuery(ctx, id, "latency", url.Values{"latency": {latency.String()}, "jitter": {jitter.String()}})
}
func (f *controlFaults) SetControllerLatency(ctx context.Context, id int32, latency, jitter time.Duration) error {
	return f.postQuery(ctx, id, "controller-latency", url.Values{"latency": {latency.String()}, "jitter": {jitter.String()}})
}
func (f *controlFaults) replicas(ctx context.Context, topic string, p int32) ([]int32, error) {
	var info struct {
		Replicas []int32 `json:"replicas"`
	}
	err := f.do(ctx, http.MethodGet, "/partitions/"+url.PathEscape(topic)+"/"+strconv.Itoa(int(p)), &info)
	return info.Replicas, err
}
func (f *controlFaults) Leader(ctx context.Context, topic string, p int32) (int32, error) {
	var info struct {
		Leader *int32 `json:"leader"`
	}
	path := "/partitions/" + url.PathEscape(topic) + "/" + strconv.Itoa(int(p))
	if err := f.do(ctx, http.MethodGet, path, &info); err != nil {
		return -1, err
	}
	if info.Leader == nil {
		return -1, fmt.Errorf("verify: control API: GET %s: no leader in the answer", path)
	}
	return *info.Leader, nil
}

// ExecFaults is a [FaultInjector] for any cluster, such as real Apache
// Kafka: it carries out each operation by running a shell command (sh -c)
// and finds leaders with a Metadata request. An operation whose command is
// empty is unsupported ([Limited]); it implements [Pauser] too, for PauseCmd
// and ResumeCmd.
//
// In each command, "{broker}" is replaced by the broker's node id (the id
// the cluster's metadata names), which is also in the environment as
// KAFKAGUARD_BROKER; for example "systemctl kill kafka@{broker}",
// "docker kill kafka-{broker}" or, for a cluster started with
// integration/kafka/kafka.sh (node ids 1..N), "kafka.sh pause {broker}".
type ExecFaults struct {
	Bootstrap []string // Bootstrap lists the cluster's seed brokers, for Metadata.
	// ClientOpts connect the Metadata client to a secured cluster (TLS,
	// SASL), as Config.ClientOpts.
	ClientOpts []kgo.Opt
	KillCmd    string // KillCmd stops a broker abruptly; empty means Kill is unsupported.
	RestartCmd string // RestartCmd starts a killed broker again; empty means Restart is unsupported.
	// PauseCmd freezes a broker's process (SIGSTOP): it answers nothing but
	// keeps its connections and state. Empty means Pause is unsupported.
	PauseCmd string
	// ResumeCmd thaws a paused broker (SIGCONT); empty means Resume is
	// unsupported.
	ResumeCmd string
	// IsolateCmd cuts a broker off from the other brokers and the
	// controller while clients still reach it (a network partition), and
	// HealCmd reconnects it; empty means unsupported.
	IsolateCmd, HealCmd string
	// PauseReplicationCmd stops a broker's replica fetchers and
	// ResumeReplicationCmd starts them again; empty means unsupported.
	PauseReplicationCmd, ResumeReplicationCmd string

	// Timeout bounds each command; zero means two minutes.
	Timeout time.Duration

	mu sync.Mutex
	cl *kgo.Client // for Leader, made on first use
}

// execLeaderTimeout bounds one Leader lookup of ExecFaults: a paused
// broker accepts the request and never answers, and the caller asks again.
const execLeaderTimeout = 3 * time.Second

// Close releases the metadata client Leader made, if any.
func (f *ExecFaults) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cl != nil {
		f.cl.Close()
		f.cl = nil
	}
	return nil
}

// cmd returns the command template of op; "" if it has none.
func (f *ExecFaults) cmd(op Op) string {
	switch op {
	case OpKill:
		return f.KillCmd
	case OpRestart:
		return f.RestartCmd
	case OpPause:
		return f.PauseCmd
	case OpResume:
		return f.ResumeCmd
	case OpIsolate:
		return f.IsolateCmd
	case OpHeal:
		return f.HealCmd
	case OpPauseReplication:
		return f.PauseReplicationCmd
	case OpResumeReplication:
		return f.ResumeReplicationCmd
	}
	return ""
}

// Supports implements [Limited]: the operations whose commands are set.
func (f *ExecFaults) Supports(op Op) bool { return f.cmd(op) != "" }

// Kill runs KillCmd for the broker.
func (f *ExecFaults) Kill(ctx context.Context, id int32) error { return f.run(ctx, OpKill, id) }

// Restart runs RestartCmd for the broker.
func (f *ExecFaults) Restart(ctx context.Context, id int32) error { return f.run(ctx, OpRestart, id) }

// Pause runs PauseCmd for the broker.
func (f *ExecFaults) Pause(ctx context.Context, id int32) error { return f.run(ctx, OpPause, id) }

// Resume runs ResumeCmd for the broker.
func (f *ExecFaults) Resume(ctx context.Context, id int32) error { return f.run(ctx, OpResume, id) }

// Isolate runs IsolateCmd for the broker.
func (f *ExecFaults) Isolate(ctx context.Context, id int32) error { return f.run(ctx, OpIsolate, id) }

// Heal runs HealCmd for the broker.
func (f *ExecFaults) Heal(ctx context.Context, id int32) error { return f.run(ctx, OpHeal, id) }

// PauseReplication runs PauseReplicationCmd for the broker.
func (f *ExecFaults) PauseReplication(ctx context.Context, id int32) error {
	return f.run(ctx, OpPauseReplication, id)
}

// ResumeReplication runs ResumeReplicationCmd for the broker.
func (f *ExecFaults) ResumeReplication(ctx context.Context, id int32) error {
	return f.run(ctx, OpResumeReplication, id)
}

func unsupported(op Op) error { return fmt.Errorf("%w: %s", ErrUnsupported, op) }

// Leader asks the cluster for the partition's leader with a Metadata
// request, through a client made on first use (see Close). Each lookup
// waits at most three seconds, so that a paused broker that took the
// request does not hold the caller.
func (f *ExecFaults) Leader(ctx context.Context, topic string, p int32) (int32, error) {
	f.mu.Lock()
	if f.cl == nil {
		if len(f.Bootstrap) == 0 {
			f.mu.Unlock()
			return -1, errors.New("verify: ExecFaults: no bootstrap brokers")
		}
		opts := append([]kgo.Opt{kgo.SeedBrokers(f.Bootstrap...), kgo.MetadataMinAge(100 * time.Millisecond)}, f.ClientOpts...)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			f.mu.Unlock()
			return -1, fmt.Errorf("verify: ExecFaults: %w", err)
		}
		f.cl = cl
	}
	cl := f.cl
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, execLeaderTimeout)
	defer cancel()
	return leaderOf(ctx, kadm.NewClient(cl), topic, p)
}

// leaderOf reads a partition's leader from metadata.
func leaderOf(ctx context.Context, adm *kadm.Client, topic string, p int32) (int32, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return -1, fmt.Errorf("verify: metadata: %w", err)
	}
	td, ok := md.Topics[topic]
	if !ok {
		return -1, fmt.Errorf("verify: metadata: topic %q missing", topic)
	}
	if td.Err != nil {
		return -1, fmt.Errorf("verify: metadata: topic %q: %w", topic, td.Err)
	}
	pd, ok := td.Partitions[p]
	if !ok {
		return -1, fmt.Errorf("verify: metadata: partition %s/%d missing", topic, p)
	}
	return pd.Leader, nil
}

func (f *ExecFaults) run(ctx context.Context, op Op, id int32) error {
	tmpl := f.cmd(op)
	if tmpl == "" {
		return unsupported(op)
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bid := strconv.Itoa(int(id))
	cmdline := strings.ReplaceAll(tmpl, "{broker}", bid)
	cmd := exec.CommandContext(ctx, "sh", "-c", cmdline)
	cmd.Env = append(os.Environ(), "KAFKAGUARD_BROKER="+bid)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A restart command may leave a broker running in the background with
	// our output pipe open; stop reading shortly after the shell exits.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 500 {
			msg = msg[len(msg)-500:]
		}
		return fmt.Errorf("verify: %s broker %d: %q: %w: %s", op, id, cmdline, err, msg)
	}
	return nil
}
