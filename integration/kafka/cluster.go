package kafkacluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrUnavailable is returned by [Start] when the machine lacks what kafka.sh
// needs (java or, before the first fetch, mvn). Suites skip on it.
var ErrUnavailable = errors.New("kafkacluster: java or mvn not available")

// ErrNoSuchNode is returned for a node id outside 1..[Cluster.Nodes].
var ErrNoSuchNode = errors.New("kafkacluster: no such node")

// ErrStopped is returned by methods called after [Cluster.Stop].
var ErrStopped = errors.New("kafkacluster: cluster stopped")

// exitUnavailable is kafka.sh's exit status for a missing prerequisite.
const exitUnavailable = 69

// stderrTail bounds how much of the script's stderr an error message carries.
const stderrTail = 8 << 10

// ScriptError reports a kafka.sh run that failed. Stderr holds the end of
// what the script printed, which includes the broker log tails on a failed
// start.
type ScriptError struct {
	Args   []string // arguments after the script path
	Stderr string
	Err    error // the *exec.ExitError, or the context's error
}

func (e *ScriptError) Error() string {
	msg := fmt.Sprintf("kafkacluster: kafka.sh %s: %v", strings.Join(e.Args, " "), e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += "\n" + s
	}
	return msg
}

func (e *ScriptError) Unwrap() error { return e.Err }

// Opt configures [Start].
type Opt interface{ apply(*config) }

type optFunc func(*config)

func (f optFunc) apply(c *config) { f(c) }

type config struct {
	dir           string
	basePort      int
	script        string
	stopWait      time.Duration
	brokerConfigs []string // KEY=VALUE
}

// Dir sets the run dir holding the nodes' data, logs and pid files; it
// is kept after [Cluster.Stop] so logs can be read. Without it Start uses a
// new temporary directory that Stop removes.
func Dir(dir string) Opt { return optFunc(func(c *config) { c.dir = dir }) }

// BasePort sets node 1's client port; node i listens on base+i-1 and its
// controller on base+100+i-1. The default is 19092.
func BasePort(port int) Opt { return optFunc(func(c *config) { c.basePort = port }) }

// Script sets the path of kafka.sh. The default is $KAFKAGUARD_KAFKA_SH,
// else the kafka.sh beside this package's source.
func Script(path string) Opt { return optFunc(func(c *config) { c.script = path }) }

// BrokerConfig adds a broker setting to every node's server.properties,
// such as BrokerConfig("min.insync.replicas", "2"). It applies when Start
// formats a new cluster (kafka.sh start --config).
func BrokerConfig(key, value string) Opt {
	return optFunc(func(c *config) { c.brokerConfigs = append(c.brokerConfigs, key+"="+value) })
}

// StopTimeout bounds [Cluster.Stop] and [Cluster.Kill], which take no
// context. The default is two minutes.
func StopTimeout(d time.Duration) Opt {
	return optFunc(func(c *config) { c.stopWait = d })
}

// Cluster is a running Apache Kafka cluster started by [Start]. It is safe
// for concurrent use; its methods run one at a time.
type Cluster struct {
	mu        sync.Mutex
	cfg       config
	ownDir    bool
	nodes     int
	bootstrap []string
	stopped   bool
}

// Start formats and starts a KRaft cluster of nodes (1 or 3) combined
// broker+controller nodes on 127.0.0.1, fetching Kafka first when the cache
// is empty, and returns once every broker answers. If Start fails, nodes it
// launched are stopped.
func Start(ctx context.Context, nodes int, opts ...Opt) (*Cluster, error) {
	cfg := config{basePort: 19092, stopWait: 2 * time.Minute}
	for _, o := range opts {
		o.apply(&cfg)
	}
	for _, kv := range cfg.brokerConfigs {
		if k, _, _ := strings.Cut(kv, "="); k == "" || strings.ContainsAny(kv, "\n\r") {
			return nil, fmt.Errorf("kafkacluster: broker config %q: want a key and a one-line value", kv)
		}
	}
	if nodes != 1 && nodes != 3 {
		return nil, fmt.Errorf("kafkacluster: nodes must be 1 or 3, got %d", nodes)
	}
	if cfg.basePort < 1024 || cfg.basePort+102 > 65535 {
		return nil, fmt.Errorf("kafkacluster: base port must be in 1024..65433, got %d", cfg.basePort)
	}
	if cfg.stopWait <= 0 {
		return nil, fmt.Errorf("kafkacluster: stop timeout must be positive, got %v", cfg.stopWait)
	}
	script, err := findScript(cfg.script)
	if err != nil {
		return nil, err
	}
	cfg.script = script

	c := &Cluster{cfg: cfg, nodes: nodes}
	if c.cfg.dir == "" {
		dir, err := os.MkdirTemp("", "kafkaguard-kafka-")
		if err != nil {
			return nil, fmt.Errorf("kafkacluster: run dir: %w", err)
		}
		c.cfg.dir, c.ownDir = dir, true
	}

	args := []string{"start", "--nodes", strconv.Itoa(nodes), "--base-port", strconv.Itoa(cfg.basePort)}
	for _, kv := range cfg.brokerConfigs {
		args = append(args, "--config", kv)
	}
	out, err := c.run(ctx, args...)
	if err == nil {
		c.bootstrap, err = parseReady(out)
	}
	if err == nil {
		return c, nil
	}
	var se *ScriptError
	if errors.As(err, &se) && (exitCode(se.Err) == exitUnavailable || errors.Is(se.Err, exec.ErrNotFound)) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// kafka.sh stops the nodes itself when they fail to start, and launches
	// none when it refuses (say, another cluster runs in the dir). Nodes are
	// left over only when the script was cancelled or said nothing; then,
	// or when the dir is Start's own, stop them.
	if c.ownDir || ctx.Err() != nil || se == nil {
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}
	return nil, err
}

// Bootstrap returns the brokers' addresses, "127.0.0.1:port", node 1 first.
func (c *Cluster) Bootstrap() []string {
	return append([]string(nil), c.bootstrap...)
}

// Nodes returns the number of nodes; their ids are 1..Nodes.
func (c *Cluster) Nodes() int { return c.nodes }

// Dir returns the run dir; node i's log is Dir()/node-i/logs/server.log.
func (c *Cluster) Dir() string { return c.cfg.dir }

// Kill sends SIGKILL to node id and returns once the process is gone. Killing
// a dead node does nothing.
func (c *Cluster) Kill(id int) error {
	if err := c.checkNode(id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.stopWait)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	_, err := c.run(ctx, "kill", strconv.Itoa(id))
	return err
}

// Pause freezes node id with SIGSTOP: the process keeps its sockets and state
// but stops answering clients, fetching from leaders, heartbeating and voting
// in the controller quorum, as a stalled machine does. [Cluster.Resume]
// continues it; Kill and Stop work on a paused node.
func (c *Cluster) Pause(id int) error { return c.signal("pause", id) }

// Resume continues a node frozen by [Cluster.Pause].
func (c *Cluster) Resume(id int) error { return c.signal("resume", id) }

func (c *Cluster) signal(cmd string, id int) error {
	if err := c.checkNode(id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.stopWait)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	_, err := c.run(ctx, cmd, strconv.Itoa(id))
	return err
}

// Restart starts node id again on its existing data and returns once it
// answers as a registered, unfenced broker. A running node is left as is.
func (c *Cluster) Restart(ctx context.Context, id int) error {
	if err := c.checkNode(id); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	_, err := c.run(ctx, "restart", strconv.Itoa(id))
	return err
}

// Stop stops every node (SIGTERM, then SIGKILL) and, when Start made the run
// dir itself, removes it. Calling Stop again does nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.stopWait)
	defer cancel()
	cmd := "stop"
	if c.ownDir {
		cmd = "clean"
	}
	if _, err := c.run(ctx, cmd); err != nil {
		return err
	}
	c.stopped = true
	return nil
}

func (c *Cluster) checkNode(id int) error {
	if id < 1 || id > c.nodes {
		return fmt.Errorf("%w: %d (nodes are 1..%d)", ErrNoSuchNode, id, c.nodes)
	}
	return nil
}

// run executes kafka.sh --dir DIR args... and returns its stdout.
func (c *Cluster) run(ctx context.Context, args ...string) (string, error) {
	full := append([]string{c.cfg.script, "--dir", c.cfg.dir}, args...)
	cmd := exec.CommandContext(ctx, "bash", full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// A helper JVM the script started may hold the pipes after bash is
	// killed on cancellation; do not wait for it long.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		errOut := stderr.String()
		if len(errOut) > stderrTail {
			errOut = "..." + errOut[len(errOut)-stderrTail:]
		}
		return stdout.String(), &ScriptError{Args: args, Stderr: errOut, Err: err}
	}
	return stdout.String(), nil
}

// parseReady finds kafka.sh's "ready bootstrap=a,b,c" line.
func parseReady(out string) ([]string, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ready bootstrap=")
		if !ok {
			continue
		}
		addrs := strings.Split(rest, ",")
		for _, a := range addrs {
			if _, port, found := strings.Cut(a, ":"); !found || port == "" || a == "" {
				return nil, fmt.Errorf("kafkacluster: bad address %q in kafka.sh ready line %q", a, line)
			}
		}
		return addrs, nil
	}
	return nil, fmt.Errorf("kafkacluster: kafka.sh start printed no ready line (stdout %q)", out)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func findScript(path string) (string, error) {
	if path == "" {
		path = os.Getenv("KAFKAGUARD_KAFKA_SH")
	}
	if path == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return "", errors.New("kafkacluster: cannot locate kafka.sh; set KAFKAGUARD_KAFKA_SH or use Script")
		}
		path = filepath.Join(filepath.Dir(file), "kafka.sh")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("kafkacluster: kafka.sh: %w (set KAFKAGUARD_KAFKA_SH or use Script)", err)
	}
	return path, nil
}
