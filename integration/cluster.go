package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	kafkacluster "github.com/kafkaguard/kafkaguard/integration/kafka"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// Target names, as given in KAFKAGUARD_TARGET.
const (
	TargetBundled = "bundled" // kafkaguard's own broker, in-process (package kafkatest)
	TargetReal    = "real"    // Apache Kafka
)

// Environment variables read by [FromEnv].
const (
	EnvTarget     = "KAFKAGUARD_TARGET"      // bundled (default) or real
	EnvBootstrap  = "KAFKA_BOOTSTRAP"        // real: use this running cluster instead of starting one
	EnvKillCmd    = "KAFKAGUARD_KILL_CMD"    // shell command SIGKILLing broker {id}
	EnvRestartCmd = "KAFKAGUARD_RESTART_CMD" // shell command restarting broker {id}, returning once it answers
	EnvPauseCmd   = "KAFKAGUARD_PAUSE_CMD"   // shell command stopping broker {id} from replicating
	EnvResumeCmd  = "KAFKAGUARD_RESUME_CMD"  // shell command undoing the pause of broker {id}
)

// ErrUnsupported is returned by a fault method the cluster cannot perform,
// such as Kill on an external cluster without a kill command. Scenarios that
// need the fault skip with the error's message.
var ErrUnsupported = errors.New("integration: fault not supported by this cluster")

// ErrUnavailable is returned by [FromEnv] when the machine cannot run the
// requested cluster (no java or mvn for real Kafka).
var ErrUnavailable = errors.New("integration: cluster unavailable on this machine")

// Cluster is a running Kafka cluster of at least one broker that the suite
// talks to over the Kafka protocol only, plus the faults a scenario may
// inject. Broker ids are those the cluster reports in Metadata (0..n-1 for
// the bundled broker, 1..n for kafka.sh's Apache Kafka nodes); scenarios
// find leaders through Metadata, never by assuming an id.
type Cluster interface {
	// Target is TargetBundled or TargetReal.
	Target() string
	// Describe says what the cluster is, for the log: kind, version, bootstrap.
	Describe() string
	// Bootstrap returns the seed brokers.
	Bootstrap() []string
	// Kill stops broker id abruptly, as SIGKILL does; its data stays.
	Kill(ctx context.Context, id int32) error
	// Restart starts a killed broker again on its data and returns once it
	// answers clients.
	Restart(ctx context.Context, id int32) error
	// PauseReplication stops broker id from copying records from leaders.
	// The bundled broker stops only its replica fetchers; Apache Kafka has no
	// such switch, so its node is frozen with SIGSTOP, which also stops it
	// answering clients and voting in the controller quorum.
	PauseReplication(ctx context.Context, id int32) error
	// ResumeReplication undoes PauseReplication.
	ResumeReplication(ctx context.Context, id int32) error
	// Close stops a cluster the suite started; an external one is left
	// running.
	Close() error
}

// FromEnv returns the cluster the suite runs against, chosen by
// KAFKAGUARD_TARGET:
//
//   - bundled (or unset): a 3-broker kafkaguard cluster started in-process;
//   - real with KAFKA_BOOTSTRAP set: that running Apache Kafka cluster, with
//     faults injected by the shell commands in KAFKAGUARD_KILL_CMD,
//     KAFKAGUARD_RESTART_CMD, KAFKAGUARD_PAUSE_CMD and KAFKAGUARD_RESUME_CMD,
//     in which {id} stands for the broker id (a fault whose command is unset
//     returns ErrUnsupported);
//   - real without KAFKA_BOOTSTRAP: a 3-node Apache Kafka cluster started with
//     integration/kafka/kafka.sh (fetched from Maven Central on first use).
//
// Both started clusters use the broker default min.insync.replicas=2, as the
// no-loss checklist asks; scenarios set what they test per topic.
func FromEnv(ctx context.Context) (Cluster, error) {
	switch target := os.Getenv(EnvTarget); target {
	case "", TargetBundled:
		return StartBundled(ctx)
	case TargetReal:
		if bs := os.Getenv(EnvBootstrap); bs != "" {
			return External(bs, Commands{
				Kill:    os.Getenv(EnvKillCmd),
				Restart: os.Getenv(EnvRestartCmd),
				Pause:   os.Getenv(EnvPauseCmd),
				Resume:  os.Getenv(EnvResumeCmd),
			})
		}
		return StartReal(ctx)
	default:
		return nil, fmt.Errorf("integration: %s=%q: want %q or %q", EnvTarget, target, TargetBundled, TargetReal)
	}
}

// bundled is kafkaguard's own cluster, in this process.
type bundled struct{ c *kafkatest.Cluster }

// StartBundled starts a 3-broker bundled cluster with automatic topic
// creation off and broker defaults min.insync.replicas=2,
// unclean.leader.election.enable=false, replica.lag.time.max.ms=5000 and
// (with 3 brokers) default.replication.factor=3, like the real cluster
// StartReal starts. Broker failure detection stays faster than Kafka's
// (1 s session timeout against kafka.sh's 6 s).
func StartBundled(ctx context.Context) (Cluster, error) {
	c, err := kafkatest.Start(ctx,
		kafkatest.Brokers(3),
		kafkatest.NoAutoCreateTopics(),
		// As kafka.sh's replica.lag.time.max.ms, so a follower paused for a
		// scenario's few seconds stays in the ISR on both targets.
		kafkatest.ReplicaLagMax(5*time.Second),
		kafkatest.BrokerConfig("min.insync.replicas", "2"),
		kafkatest.BrokerConfig("unclean.leader.election.enable", "false"),
	)
	if err != nil {
		return nil, fmt.Errorf("integration: start bundled cluster: %w", err)
	}
	return bundled{c}, nil
}

func (b bundled) Target() string { return TargetBundled }
func (b bundled) Describe() string {
	return "kafkaguard bundled broker, 3 brokers in-process, bootstrap=" + strings.Join(b.c.Bootstrap(), ",")
}
func (b bundled) Bootstrap() []string                         { return b.c.Bootstrap() }
func (b bundled) Kill(_ context.Context, id int32) error      { return b.c.Kill(id) }
func (b bundled) Restart(ctx context.Context, id int32) error { return b.c.Restart(ctx, id) }
func (b bundled) PauseReplication(_ context.Context, id int32) error {
	return b.c.PauseReplication(id)
}
func (b bundled) ResumeReplication(_ context.Context, id int32) error {
	return b.c.ResumeReplication(id)
}
func (b bundled) Close() error { return b.c.Close() }

// real is an Apache Kafka cluster started with kafka.sh.
type real struct{ c *kafkacluster.Cluster }

// StartReal starts a 3-node Apache Kafka cluster with kafka.sh, with broker
// default min.insync.replicas=2. It returns an error matching ErrUnavailable
// when java or mvn is missing.
func StartReal(ctx context.Context) (Cluster, error) {
	c, err := kafkacluster.Start(ctx, 3, kafkacluster.BrokerConfig("min.insync.replicas", "2"))
	if errors.Is(err, kafkacluster.ErrUnavailable) {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err != nil {
		return nil, fmt.Errorf("integration: start Apache Kafka: %w", err)
	}
	return real{c}, nil
}

func (r real) Target() string { return TargetReal }
func (r real) Describe() string {
	return "Apache Kafka " + kafkaVersion() + " (kafka.sh), 3 KRaft nodes, run dir " + r.c.Dir() +
		", bootstrap=" + strings.Join(r.c.Bootstrap(), ",")
}
func (r real) Bootstrap() []string                         { return r.c.Bootstrap() }
func (r real) Kill(_ context.Context, id int32) error      { return r.c.Kill(int(id)) }
func (r real) Restart(ctx context.Context, id int32) error { return r.c.Restart(ctx, int(id)) }
func (r real) PauseReplication(_ context.Context, id int32) error {
	return r.c.Pause(int(id))
}
func (r real) ResumeReplication(_ context.Context, id int32) error {
	return r.c.Resume(int(id))
}
func (r real) Close() error { return r.c.Stop() }

func kafkaVersion() string {
	if v := os.Getenv("KAFKA_VERSION"); v != "" {
		return v
	}
	return "4.4.0"
}

// Commands are shell commands that inject faults into an external cluster;
// "{id}" in a command is replaced by the broker id. An empty command makes
// its fault return ErrUnsupported.
type Commands struct {
	Kill, Restart, Pause, Resume string
}

// external is a running cluster given by its bootstrap servers.
type external struct {
	bootstrap []string
	cmds      Commands
	mu        sync.Mutex // one fault command at a time
}

// External returns a Cluster for a running Apache Kafka cluster at the
// comma-separated bootstrap addresses, with faults injected by cmds. Close
// leaves the cluster running.
func External(bootstrap string, cmds Commands) (Cluster, error) {
	var addrs []string
	for _, a := range strings.Split(bootstrap, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, port, ok := strings.Cut(a, ":"); !ok || port == "" {
			return nil, fmt.Errorf("integration: %s: address %q is not host:port", EnvBootstrap, a)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("integration: %s is empty", EnvBootstrap)
	}
	return &external{bootstrap: addrs, cmds: cmds}, nil
}

func (e *external) Target() string { return TargetReal }
func (e *external) Describe() string {
	have := func(s string) string {
		if s == "" {
			return "no"
		}
		return "yes"
	}
	return fmt.Sprintf("external Apache Kafka at %s=%s (kill cmd: %s, restart cmd: %s, pause cmd: %s)",
		EnvBootstrap, strings.Join(e.bootstrap, ","), have(e.cmds.Kill), have(e.cmds.Restart), have(e.cmds.Pause))
}
func (e *external) Bootstrap() []string { return slices.Clone(e.bootstrap) }
func (e *external) Kill(ctx context.Context, id int32) error {
	return e.run(ctx, "kill", EnvKillCmd, e.cmds.Kill, id)
}
func (e *external) Restart(ctx context.Context, id int32) error {
	return e.run(ctx, "restart", EnvRestartCmd, e.cmds.Restart, id)
}
func (e *external) PauseReplication(ctx context.Context, id int32) error {
	return e.run(ctx, "pause", EnvPauseCmd, e.cmds.Pause, id)
}
func (e *external) ResumeReplication(ctx context.Context, id int32) error {
	return e.run(ctx, "resume", EnvResumeCmd, e.cmds.Resume, id)
}
func (e *external) Close() error { return nil }

// commandTimeout bounds one fault command; a restart of a Kafka node takes
// about 10 s on a 2-core machine.
const commandTimeout = 3 * time.Minute

func (e *external) run(ctx context.Context, fault, env, cmd string, id int32) error {
	if cmd == "" {
		return fmt.Errorf("%w: %s broker %d: set %s", ErrUnsupported, fault, id, env)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	line := strings.ReplaceAll(cmd, "{id}", strconv.Itoa(int(id)))
	c := exec.CommandContext(ctx, "sh", "-c", line)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	c.WaitDelay = 5 * time.Second
	if err := c.Run(); err != nil {
		return fmt.Errorf("integration: %s broker %d: %q: %w\n%s", fault, id, line, err, strings.TrimSpace(out.String()))
	}
	return nil
}
