// Package cluster runs the bundled Kafka cluster in one process: an in-process controller (this
// package's Controller) and N broker nodes (internal/broker/server), each with its own port,
// data directory and replica fetchers talking to the others over TCP with the Kafka protocol. It
// also injects faults and serves them as a JSON control API over HTTP (ControlHandler).
//
// # Faults and what each models
//
// A broker does not know it is faulty. It reaches the world only through what the cluster gives
// it (edge.go, link.go): a listener, a dialer for its replica fetchers, a link to the controller
// and a clock. Every fault but a kill or a power loss is a property of those links or of that
// clock, and each applies to one broker (or one link), so any subset of brokers can be faulted.
//
//   - Kill: the broker process dies (kill -9, an OOM kill, a crash). Its listener, connections
//     and fetchers vanish at once and its logs are dropped without any flush, fsync or file
//     write; what it had written stays in its files, as the OS page cache keeps a killed
//     process's writes. The controller notices when the session times out.
//   - PowerLoss: the machine loses power (or the kernel panics). The broker is killed, and then
//     every file it wrote loses the bytes no fsync had covered, and files whose creation no
//     directory fsync made durable disappear (log.Disk). With Kafka's default flush policy
//     (flush.messages never; durability from replication) a power loss of every replica of a
//     partition at once can lose acknowledged records; flush.messages=1 makes every append
//     fsync first, and then nothing acknowledged is lost. The controller's metadata is not
//     affected: it models a KRaft quorum on other machines.
//   - Restart: a killed or power-lost broker starts again on its address and data directory,
//     recovers its logs from what is on disk, and catches up. Its links start without faults.
//   - Isolate / Heal: a network partition between the broker and the rest of the cluster
//     (brokers, both ways, and controller); clients still reach it.
//   - CutLink / HealLink: a one-way partition, as a firewall rule on one broker's outgoing
//     connections: from cannot reach to (dials refused, connections dropped, nothing read after
//     the cut), while to still reaches from.
//   - CutController / ReconnectController: only the broker's link to the controller is cut,
//     both ways (no heartbeats, calls refused, no metadata): it is fenced after the session
//     timeout while it still serves clients and replicates.
//   - SetLatency: a slow network to the broker: every message it receives arrives late by the
//     latency plus a random part below the jitter.
//   - SetControllerLatency: a slow path between the broker and the controller only: its calls
//     (heartbeats, ISR changes) and the metadata images back each arrive late, while clients
//     and the other brokers reach it at full speed. An ISR change its partitions propose stays
//     pending that much longer.
//   - Pause / Resume: a stopped process (SIGSTOP, a long GC pause, a frozen VM): it accepts
//     nothing, reads and sends nothing on its connections (they stay open), reaches neither the
//     controller nor the other brokers, and its clock stops, so its heartbeats, ISR checks and
//     fetcher waits do not fire until it resumes. The controller fences it after the session
//     timeout; on resume it catches up and rejoins.
//   - PauseReplication / ResumeReplication: the broker's own links to the other brokers, which
//     only its replica fetchers use, are cut (a stalled or slow follower): it stays in ISRs
//     until replica.lag.time.max.ms passes.
//   - FailProduces: the partition leader answers the next produce requests for the partition
//     with a Kafka error without appending (a broker-side refusal, e.g. NOT_ENOUGH_REPLICAS):
//     its listener takes the partition out of the requests and puts the error in the answers.
//   - HoldISRChanges (tests only): the broker's AlterISR calls wait on its link to the
//     controller, so an ISR change stays pending (in flight) for as long as a test needs.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// Config configures a cluster.
type Config struct {
	// Brokers is the number of broker nodes (default 1). Node ids are 0..Brokers-1.
	Brokers int
	// Host is the address brokers listen on (default 127.0.0.1).
	Host string
	// Port is broker 0's port; broker i listens on Port+i. 0 picks free ports.
	Port int
	// DataDir holds cluster.json and one directory per broker (broker-0, ...). "" uses a
	// temporary directory that Close removes.
	DataDir string
	// SessionTimeout is broker.session.timeout.ms (default 3s).
	SessionTimeout time.Duration
	// ReplicaLagMax is replica.lag.time.max.ms (default 10s).
	ReplicaLagMax time.Duration
	// ReplicaFetchMaxWait is replica.fetch.wait.max.ms (default 500ms).
	ReplicaFetchMaxWait time.Duration
	// HeartbeatInterval is how often brokers renew their session (default SessionTimeout/6).
	HeartbeatInterval time.Duration
	// Defaults are broker-level topic config defaults, e.g. {"min.insync.replicas": "2"}.
	Defaults meta.Defaults
	// OffsetsPartitions is offsets.topic.num.partitions (default 4).
	OffsetsPartitions int32
	// DisableAutoCreateTopics turns auto.create.topics.enable off (Kafka's default is on).
	DisableAutoCreateTopics bool
	// DefaultPartitions is num.partitions for auto-created topics (default 1).
	DefaultPartitions int32
	// MaxRequestBytes is socket.request.max.bytes (default 100 MiB).
	MaxRequestBytes int32
	// GroupMinSessionTimeout is group.min.session.timeout.ms (default 6s, as Kafka).
	GroupMinSessionTimeout time.Duration
	// SyncEveryAppend fsyncs every append, whatever the topics' flush.messages.
	SyncEveryAppend bool
	// HWCheckpointInterval is replica.high.watermark.checkpoint.interval.ms (default 5s).
	HWCheckpointInterval time.Duration
	// DisableZeroCopy makes every broker copy fetched record batches through its memory instead
	// of sending them from the log files with sendfile(2) (server.Config.DisableZeroCopy).
	DisableZeroCopy bool
	// TLS, if set, makes every broker's listener speak TLS only, and the brokers' replica
	// fetchers connect to each other with TLS (server.Config.TLS). TLS lies beneath the edge:
	// the faults see the Kafka frames, not the encrypted bytes.
	TLS *server.TLS
	// SASL, if set, makes every broker's listener authenticate its clients
	// (server.Config.SASL). Unless SASL.InterBroker names one of its users, the brokers
	// authenticate to each other as a user of their own with a random password.
	SASL *server.SASL
	// UnsafeHWOnCommittedISR re-creates in every broker the acknowledged-write loss of issue 11
	// item 1 (partition.Config.UnsafeHWOnCommittedISR). For tests only.
	UnsafeHWOnCommittedISR bool
	Logger                 *slog.Logger
}

// interBrokerUser is the user the brokers authenticate to each other as when Config.SASL names
// none.
const interBrokerUser = "kafkaguard-inter-broker"

// brokerSASL returns the brokers' SASL configuration: cfg with an inter-broker user.
func brokerSASL(cfg *server.SASL) *server.SASL {
	if cfg == nil {
		return nil
	}
	out := *cfg
	out.Users = maps.Clone(cfg.Users)
	if out.Users == nil {
		out.Users = map[string]string{}
	}
	if _, ok := out.Users[out.InterBroker]; out.InterBroker == "" || !ok {
		out.InterBroker = interBrokerUser
		out.Users[interBrokerUser] = rand.Text()
	}
	return &out
}

type node struct {
	id   int32
	addr string
	dir  string
	disk *log.Disk      // what of dir is on stable storage; survives restarts
	b    *server.Broker // nil while killed
	edge *edge          // its links to the world and the faults on them; survives restarts
}

// Cluster is a running in-process cluster. Its methods are safe for concurrent use.
type Cluster struct {
	cfg   Config
	lg    *slog.Logger
	ctrl  *Controller
	temp  string
	mu    sync.Mutex
	nodes []*node
	holds *isrHolds
	net   *network
}

// Start starts the controller and every broker, creates the consumer offsets topic, and returns
// once every broker accepts connections and knows the cluster's metadata.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Brokers <= 0 {
		cfg.Brokers = 1
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 3 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = cfg.SessionTimeout / 6
	}
	if cfg.OffsetsPartitions <= 0 {
		cfg.OffsetsPartitions = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TLS != nil && (cfg.TLS.Server == nil || cfg.TLS.Client == nil) {
		return nil, errors.New("cluster: Config.TLS needs both its server and client configurations (server.NewTLS)")
	}
	cfg.SASL = brokerSASL(cfg.SASL)
	c := &Cluster{cfg: cfg, lg: cfg.Logger, holds: &isrHolds{by: map[int32]*isrHold{}}}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "kafkaguard-cluster-")
		if err != nil {
			return nil, fmt.Errorf("cluster: temp dir: %w", err)
		}
		c.temp, c.cfg.DataDir = dir, dir
	}
	ctrl, err := NewController(ControllerConfig{Dir: c.cfg.DataDir, SessionTimeout: cfg.SessionTimeout, Defaults: cfg.Defaults, Logger: cfg.Logger})
	if err != nil {
		c.removeTemp()
		return nil, err
	}
	c.ctrl = ctrl
	c.net = newNetwork(cfg.Brokers, ctrl.Image)
	for i := 0; i < cfg.Brokers; i++ {
		port := 0
		if cfg.Port > 0 {
			port = cfg.Port + i
		}
		n := &node{id: int32(i), addr: net.JoinHostPort(cfg.Host, strconv.Itoa(port)), dir: filepath.Join(c.cfg.DataDir, fmt.Sprintf("broker-%d", i)), disk: log.NewDisk(), edge: c.net.edges[i]}
		n.edge.tls = cfg.TLS
		n.edge.ctrl = &controllerLink{e: n.edge, ctrl: ctrl, to: ctrl.For(n.id), holds: c.holds}
		c.nodes = append(c.nodes, n)
		if err := c.startNode(ctx, n); err != nil {
			c.Close()
			return nil, err
		}
	}
	// On a starved machine a broker can miss its session while starting; it registers again by
	// itself, so creating the offsets topic is retried until every broker is live.
	for {
		err := ctrl.EnsureOffsetsTopic(cfg.OffsetsPartitions, cfg.Brokers)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			c.Close()
			return nil, fmt.Errorf("cluster: create %s: %w", meta.OffsetsTopic, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.WaitConverged(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) startNode(ctx context.Context, n *node) error {
	ln, err := n.edge.listen(n.addr)
	if err != nil {
		return fmt.Errorf("cluster: broker %d: listen %s: %w", n.id, n.addr, err)
	}
	b, err := server.Start(ctx, server.Config{
		ID: n.id, DataDir: n.dir, Listener: ln, Dialer: dialer{n.edge}, Controller: n.edge.ctrl, Clock: &n.edge.gate,
		Logger:                   c.lg,
		Defaults:                 c.cfg.Defaults,
		MaxRequestBytes:          c.cfg.MaxRequestBytes,
		ReplicaLagMax:            c.cfg.ReplicaLagMax,
		ReplicaFetchMaxWait:      c.cfg.ReplicaFetchMaxWait,
		HeartbeatInterval:        c.cfg.HeartbeatInterval,
		AutoCreateTopics:         !c.cfg.DisableAutoCreateTopics,
		DefaultPartitions:        c.cfg.DefaultPartitions,
		DefaultReplicationFactor: int16(max(1, min(3, c.cfg.Brokers))),
		SyncEveryAppend:          c.cfg.SyncEveryAppend,
		Disk:                     n.disk,
		HWCheckpointInterval:     c.cfg.HWCheckpointInterval,
		DisableZeroCopy:          c.cfg.DisableZeroCopy,
		UnsafeHWOnCommittedISR:   c.cfg.UnsafeHWOnCommittedISR,
		TLS:                      c.cfg.TLS,
		SASL:                     c.cfg.SASL,
		Group: group.Config{
			OffsetsPartitions: c.cfg.OffsetsPartitions,
			MinSessionTimeout: c.cfg.GroupMinSessionTimeout,
		},
	})
	if err != nil {
		return err
	}
	n.b = b
	n.addr = b.Addr() // keep the port across restarts
	return nil
}

// Dial connects to the broker at addr as the brokers connect to each other: with their TLS and
// authenticated as their own user when the cluster has TLS and SASL. It is how the cluster's
// own tooling (kafkatest's CreateTopic) reaches a secured cluster.
func (c *Cluster) Dial(ctx context.Context, addr, clientID string) (*wire.Client, error) {
	var d wire.Dialer = &net.Dialer{Timeout: 5 * time.Second}
	if c.cfg.TLS != nil {
		d = &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: c.cfg.TLS.Client}
	}
	cl, err := wire.Dial(ctx, d, addr, clientID)
	if err != nil {
		return nil, err
	}
	if m := server.InterBrokerMechanism(c.cfg.SASL); m != nil {
		if err := cl.Authenticate(ctx, m); err != nil {
			_ = cl.Close()
			return nil, fmt.Errorf("cluster: authenticate to %s: %w", addr, err)
		}
	}
	return cl, nil
}

// WaitConverged waits until every running, reachable broker has applied the controller's newest
// metadata image, so every broker answers Metadata with the same view.
func (c *Cluster) WaitConverged(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		want := c.ctrl.Image().Version
		ok := true
		c.mu.Lock()
		for _, n := range c.nodes {
			if n.b != nil && n.edge.ctrl.up() && n.b.Image().Version < want {
				ok = false
			}
		}
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: brokers did not converge on metadata version %d: %w", want, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Bootstrap returns every broker's host:port.
func (c *Cluster) Bootstrap() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

// Controller returns the cluster's controller.
func (c *Cluster) Controller() *Controller { return c.ctrl }

// ErrUnknownBroker is returned for a broker id the cluster does not have.
var ErrUnknownBroker = errors.New("cluster: unknown broker")

// ErrBrokerState is returned when a fault does not apply to the broker's state (killing a dead
// broker, restarting a live one).
var ErrBrokerState = errors.New("cluster: broker is not in a state for that")

func (c *Cluster) node(id int32) (*node, error) {
	if id < 0 || int(id) >= len(c.nodes) {
		return nil, fmt.Errorf("%w %d", ErrUnknownBroker, id)
	}
	return c.nodes[id], nil
}

// Kill stops broker id abruptly: its listener, connections and fetchers vanish at once and its
// data directory stays. The controller notices only when the session times out, as with a real
// crash.
func (c *Cluster) Kill(id int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if n.b == nil {
		return fmt.Errorf("%w: broker %d is already dead", ErrBrokerState, id)
	}
	c.lg.Warn("fault: killing broker", "broker", id)
	n.b.Kill()
	n.b = nil
	n.edge.resume() // a killed process is no longer stopped
	return nil
}

// PowerLoss cuts the power of the given brokers at once: each running one is killed (as Kill),
// and then each one's files lose every byte that no fsync had covered, and the files whose
// creation no directory fsync made durable are removed (see log.Disk). The brokers stay down
// until Restart. A broker that is already dead loses power too (the unsynced writes it left in
// the page cache are lost). Unknown ids fail before anything happens.
func (c *Cluster) PowerLoss(ids ...int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	nodes := make([]*node, 0, len(ids))
	for _, id := range ids {
		n, err := c.node(id)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if n.b != nil {
			n.b.Kill()
			n.b = nil
		}
		n.edge.resume()
	}
	var errs []error
	for _, n := range nodes {
		lost, removed, err := n.disk.PowerLoss()
		c.lg.Warn("fault: power loss", "broker", n.id, "bytesLost", lost, "filesRemoved", removed)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Restart starts a killed broker again on its address and data directory; it recovers its logs,
// registers, truncates diverged partitions against their leaders and catches up.
func (c *Cluster) Restart(ctx context.Context, id int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if n.b != nil {
		return fmt.Errorf("%w: broker %d is running", ErrBrokerState, id)
	}
	c.lg.Warn("fault: restarting broker", "broker", id)
	c.net.reset(id)
	return c.startNode(ctx, n)
}

// Isolate cuts broker id off from the other brokers and the controller; clients still reach it.
// A leader isolated this way keeps accepting acks=1 writes that the rest of the cluster never
// sees — the loss acks=all prevents.
func (c *Cluster) Isolate(id int32) error { return c.setIsolated(id, true) }

// Heal reconnects an isolated broker.
func (c *Cluster) Heal(id int32) error { return c.setIsolated(id, false) }

func (c *Cluster) setIsolated(id int32, on bool) error {
	return c.setEdgeFlag(id, "isolation", func(e *edge) *bool { return &e.isolated }, on)
}

// setEdgeFlag turns one of the link faults of a running broker on or off.
func (c *Cluster) setEdgeFlag(id int32, fault string, flag func(*edge) *bool, on bool) error {
	return c.onLiveNode(id, func(n *node) {
		c.lg.Warn("fault: "+fault, "broker", id, "on", on)
		c.net.change(func() { *flag(n.edge) = on })
	})
}

// onLiveNode runs fn on a running broker under the cluster lock.
func (c *Cluster) onLiveNode(id int32, fn func(n *node)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if n.b == nil {
		return fmt.Errorf("%w: broker %d is dead", ErrBrokerState, id)
	}
	fn(n)
	return nil
}

// PauseReplication cuts broker id's own links to the other brokers, which only its replica
// fetchers use (a stalled or slow follower): it stays in ISRs until the lag bound passes, then
// leaves them.
func (c *Cluster) PauseReplication(id int32) error { return c.setNoFetch(id, true) }

// ResumeReplication restores broker id's links to the other brokers.
func (c *Cluster) ResumeReplication(id int32) error { return c.setNoFetch(id, false) }

func (c *Cluster) setNoFetch(id int32, on bool) error {
	return c.setEdgeFlag(id, "replication paused", func(e *edge) *bool { return &e.noFetch }, on)
}

// Pause freezes broker id as SIGSTOP freezes a process: it accepts nothing, reads and sends
// nothing on its connections (which stay open), calls nothing on the controller and receives
// nothing from it, and its timers (heartbeats, ISR checks, fetcher waits) do not fire. The
// controller fences it once its session times out. Resume thaws it.
func (c *Cluster) Pause(id int32) error {
	return c.onLiveNode(id, func(n *node) {
		c.lg.Warn("fault: pausing broker", "broker", id)
		n.edge.pause()
	})
}

// Resume thaws a paused broker: what waited on its connections moves, overdue timers fire, and
// it learns the newest metadata; a broker fenced meanwhile registers again and rejoins.
func (c *Cluster) Resume(id int32) error {
	return c.onLiveNode(id, func(n *node) {
		c.lg.Warn("fault: resuming broker", "broker", id)
		n.edge.resume()
	})
}

// CutLink makes broker from unable to reach broker to, one way, as a firewall rule on from's
// outgoing connections would: from's dials to to are refused and its connections to to are
// dropped, while to still reaches from. (Brokers connect to each other only to replicate, so
// from's fetches from to fail while to's fetches from from go on.)
func (c *Cluster) CutLink(from, to int32) error { return c.setLink(from, to, true) }

// HealLink undoes CutLink.
func (c *Cluster) HealLink(from, to int32) error { return c.setLink(from, to, false) }

func (c *Cluster) setLink(from, to int32, cut bool) error {
	if _, err := c.node(to); err != nil {
		return err
	}
	if from == to {
		return fmt.Errorf("%w: a broker cannot be cut from itself", ErrBrokerState)
	}
	return c.onLiveNode(from, func(*node) {
		c.lg.Warn("fault: one-way link", "from", from, "to", to, "cut", cut)
		c.net.change(func() {
			if cut {
				c.net.blocked[[2]int32{from, to}] = true
			} else {
				delete(c.net.blocked, [2]int32{from, to})
			}
		})
	})
}

// CutController cuts broker id's link to the controller, both ways, and nothing else: its
// heartbeats and controller calls fail and it receives no metadata, so the controller fences it
// after the session timeout, while it still serves clients and replicates with the other
// brokers. ReconnectController restores the link.
func (c *Cluster) CutController(id int32) error { return c.setCtrlCut(id, true) }

// ReconnectController restores broker id's link to the controller; the broker catches up with
// the newest metadata and, if it was fenced, registers again.
func (c *Cluster) ReconnectController(id int32) error { return c.setCtrlCut(id, false) }

func (c *Cluster) setCtrlCut(id int32, on bool) error {
	return c.setEdgeFlag(id, "controller link cut", func(e *edge) *bool { return &e.ctrlCut }, on)
}

// SetLatency adds latency to every message broker id receives — each request from a client or
// another broker, each response to its own requests, each controller answer and metadata image —
// plus a random part below jitter, so a round trip through it takes at least latency longer.
// Zero removes it.
func (c *Cluster) SetLatency(id int32, latency, jitter time.Duration) error {
	return c.setLatency(id, "latency", latency, jitter, func(e *edge) (l, j *atomic.Int64) { return &e.latency, &e.jitter })
}

// SetControllerLatency adds latency, plus a random part below jitter, to every message on broker
// id's link to the controller, both ways: each call it makes (a heartbeat, an ISR change, a
// topic creation) reaches the controller that much later, and each metadata image reaches it
// that much later; clients and the other brokers are not slowed. It adds to SetLatency's. Zero
// removes it.
func (c *Cluster) SetControllerLatency(id int32, latency, jitter time.Duration) error {
	return c.setLatency(id, "controller latency", latency, jitter, func(e *edge) (l, j *atomic.Int64) { return &e.ctrlLatency, &e.ctrlJitter })
}

// setLatency stores latency and jitter in the fields of broker id's edge that which names.
func (c *Cluster) setLatency(id int32, fault string, latency, jitter time.Duration, which func(*edge) (l, j *atomic.Int64)) error {
	if latency < 0 || jitter < 0 {
		return errors.New("cluster: latency and jitter must not be negative")
	}
	return c.onLiveNode(id, func(n *node) {
		c.lg.Warn("fault: "+fault, "broker", id, "latency", latency, "jitter", jitter)
		l, j := which(n.edge)
		l.Store(int64(latency))
		j.Store(int64(jitter))
	})
}

// FailProduces makes the current leader of topic/partition answer the next n produce requests
// for it with err, after delay, without appending them: its listener takes the partition out of
// those requests before the broker reads them and puts the error in the answer, so the broker
// never sees the batches (a leader refusing a write for a moment: NOT_ENOUGH_REPLICAS while its
// ISR is short, or not being the leader briefly). The connection's later requests wait behind the
// refused one, as behind any request. Requests already read are not affected; n <= 0 disarms
// it. It returns the leader's id.
func (c *Cluster) FailProduces(topic string, partition int32, n int, err *kerr.Error, delay time.Duration) (int32, error) {
	if err == nil {
		return -1, errors.New("cluster: FailProduces needs an error")
	}
	st, ok := c.ctrl.Image().Partition(topic, partition)
	if !ok {
		return -1, fmt.Errorf("%w: %s-%d", ErrUnknownPartition, topic, partition)
	}
	if st.Leader < 0 {
		return -1, fmt.Errorf("%w: %s-%d has no leader", ErrBrokerState, topic, partition)
	}
	return st.Leader, c.onLiveNode(st.Leader, func(nd *node) {
		c.lg.Warn("fault: fail produce", "broker", st.Leader, "topic", topic, "partition", partition, "count", n, "error", err.Message, "delay", delay)
		nd.edge.produce.arm(topic, partition, n, err, delay)
	})
}

// BrokerInfo describes one broker and the faults on it for the control API.
type BrokerInfo struct {
	ID       int32  `json:"id"`
	Address  string `json:"address"`
	Alive    bool   `json:"alive"`
	Fenced   bool   `json:"fenced"`
	Isolated bool   `json:"isolated"`
	// Paused is whether its replication is paused (PauseReplication).
	Paused bool `json:"replication_paused"`
	// Frozen is whether the broker process is paused (Pause).
	Frozen        bool  `json:"paused"`
	ControllerCut bool  `json:"controller_cut"`
	LatencyMs     int64 `json:"latency_ms"`
	JitterMs      int64 `json:"jitter_ms"`
	// ControllerLatencyMs and ControllerJitterMs are its controller link's own
	// (SetControllerLatency).
	ControllerLatencyMs int64 `json:"controller_latency_ms"`
	ControllerJitterMs  int64 `json:"controller_jitter_ms"`
}

// Link is a one-way cut between two brokers: From cannot reach To (CutLink).
type Link struct {
	From int32 `json:"from"`
	To   int32 `json:"to"`
}

// CutLinks lists the one-way cuts between brokers, ordered by From, then To.
func (c *Cluster) CutLinks() []Link {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	out := []Link{}
	for k := range c.net.blocked {
		out = append(out, Link{From: k[0], To: k[1]})
	}
	slices.SortFunc(out, func(a, b Link) int {
		if a.From != b.From {
			return int(a.From - b.From)
		}
		return int(a.To - b.To)
	})
	return out
}

// Brokers lists the brokers: Alive is whether the process runs; Fenced whether the controller
// has declared it dead.
func (c *Cluster) Brokers() []BrokerInfo {
	img := c.ctrl.Image()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]BrokerInfo, len(c.nodes))
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	for i, n := range c.nodes {
		bk, ok := img.Broker(n.id)
		e := n.edge
		out[i] = BrokerInfo{ID: n.id, Address: n.addr, Alive: n.b != nil, Fenced: !ok || !bk.Alive, Isolated: e.isolated, Paused: e.noFetch,
			Frozen: e.gate.closed(), ControllerCut: e.ctrlCut,
			LatencyMs: time.Duration(e.latency.Load()).Milliseconds(), JitterMs: time.Duration(e.jitter.Load()).Milliseconds(),
			ControllerLatencyMs: time.Duration(e.ctrlLatency.Load()).Milliseconds(),
			ControllerJitterMs:  time.Duration(e.ctrlJitter.Load()).Milliseconds()}
	}
	return out
}

// PartitionInfo is a partition's replication state.
type PartitionInfo struct {
	Leader      int32   `json:"leader"`
	ISR         []int32 `json:"isr"`
	Replicas    []int32 `json:"replicas"`
	HW          int64   `json:"hw"`
	LeaderEpoch int32   `json:"leader_epoch"`
}

// ErrUnknownPartition is returned for a partition the cluster does not have.
var ErrUnknownPartition = errors.New("cluster: unknown topic or partition")

// Partition reports a partition's leader, ISR and replicas as the controller has them, and the
// high watermark as its leader has it (-1 when offline).
func (c *Cluster) Partition(topic string, p int32) (PartitionInfo, error) {
	st, ok := c.ctrl.Image().Partition(topic, p)
	if !ok {
		return PartitionInfo{}, fmt.Errorf("%w: %s-%d", ErrUnknownPartition, topic, p)
	}
	info := PartitionInfo{Leader: st.Leader, ISR: slices.Clone(st.ISR), Replicas: slices.Clone(st.Replicas), HW: -1, LeaderEpoch: st.LeaderEpoch}
	if info.ISR == nil {
		info.ISR = []int32{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.Leader >= 0 && int(st.Leader) < len(c.nodes) && c.nodes[st.Leader].b != nil {
		if rs, ok := c.nodes[st.Leader].b.PartitionState(topic, p); ok {
			info.HW = rs.HW
		}
	}
	return info, nil
}

// ReplicaState reports broker id's own replica of a partition (its log end, high watermark and
// view of leadership), for tests that compare replicas.
func (c *Cluster) ReplicaState(id int32, topic string, p int32) (ReplicaInfo, error) {
	var info ReplicaInfo
	found := false
	err := c.onLiveNode(id, func(n *node) {
		var st partition.State
		if st, found = n.b.PartitionState(topic, p); found {
			info = ReplicaInfo{LEO: st.LEO, HW: st.HW, Leader: st.Leader, LeaderEpoch: st.LeaderEpoch, LogStart: st.LogStart}
		}
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: broker %d has no replica of %s-%d", ErrUnknownPartition, id, topic, p)
	}
	return info, err
}

// ReplicaInfo is one broker's replica of a partition.
type ReplicaInfo struct {
	LEO         int64 `json:"leo"`
	HW          int64 `json:"hw"`
	LogStart    int64 `json:"log_start"`
	Leader      int32 `json:"leader"`
	LeaderEpoch int32 `json:"leader_epoch"`
}

// Close stops every broker and the controller, and removes a temporary data directory.
func (c *Cluster) Close() error {
	// Paused brokers are thawed first, so that closing them waits for every goroutine they run
	// (one frozen at the gate could otherwise write into the data directory after Close).
	if c.net != nil {
		for _, e := range c.net.edges {
			e.resume()
		}
	}
	c.mu.Lock()
	var errs []error
	for _, n := range c.nodes {
		if n.b != nil {
			errs = append(errs, n.b.Close())
			n.b = nil
		}
	}
	c.mu.Unlock()
	if c.ctrl != nil {
		c.ctrl.Close()
	}
	c.removeTemp()
	return errors.Join(errs...)
}

func (c *Cluster) removeTemp() {
	if c.temp != "" {
		_ = os.RemoveAll(c.temp)
	}
}
