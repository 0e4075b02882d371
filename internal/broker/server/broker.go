// Package server is one node of the bundled broker: it accepts Kafka protocol connections, decodes
// each request with kmsg, dispatches it by API key to a handler (one file per API, named by key:
// 00_produce.go, 01_fetch.go, ...), and encodes the answer. It owns this node's partition replicas,
// the replica fetchers that copy data from leaders on other nodes over the Kafka Fetch API, and
// this node's share of the consumer-group coordinator.
//
// Fetch is zero-copy: record batches go from the segment files to the socket with sendfile(2),
// never through the broker's memory (sendfile.go; Config.DisableZeroCopy turns it off, and TLS
// connections, Config.TLS, copy them).
//
// A node knows nothing of faults: it reaches the world only through its Config's Listener,
// Dialer, Controller and Clock, and whoever runs it (internal/broker/cluster) puts faults there.
//
// Bad input never takes a node down: a malformed, oversized, truncated or unknown request closes
// that one connection with a log line, and the node keeps serving every other connection.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
	"github.com/kafkaguard/kafkaguard/internal/broker/txn"
)

// Config configures one broker node.
type Config struct {
	ID         int32
	ListenAddr string // host:port; port 0 picks a free one
	DataDir    string // this node's log directory
	Controller Controller
	Logger     *slog.Logger

	// Listener, if set, is what the node serves on (ListenAddr is then not used); the node
	// closes it when it stops. Together with Dialer, Controller and Clock it is all of the
	// node's contact with the world, which is where whoever runs the node puts faults.
	Listener net.Listener
	// Dialer connects the node's replica fetchers to the leaders (default: a net.Dialer, or a
	// tls.Dialer with TLS.Client when TLS is set). A Dialer given here makes TLS connections
	// itself when TLS is set.
	Dialer Dialer
	// TLS, if set, makes the node speak TLS only: on the listener it opens on ListenAddr (a
	// Listener given instead must terminate TLS itself, with TLS.Server: the cluster's edge
	// does so beneath its faults) and on its replica fetchers' connections. Fetch responses on
	// TLS connections are copied, not sent with sendfile(2), which cannot encrypt (as Kafka
	// disables zero-copy transfer with SSL).
	TLS *TLS
	// SASL, if set, makes the listener authenticate every connection, and the node's replica
	// fetchers authenticate to the leaders as SASL.InterBroker.
	SASL *SASL
	// Clock paces the node's periodic work (default: the wall clock).
	Clock Clock

	// Defaults are broker-level topic config defaults (e.g. min.insync.replicas).
	Defaults meta.Defaults
	// MaxRequestBytes bounds a request frame (Kafka's socket.request.max.bytes, 100 MiB).
	MaxRequestBytes int32
	// ReplicaLagMax is replica.lag.time.max.ms: a follower that has not caught up for this long
	// leaves the ISR.
	ReplicaLagMax time.Duration
	// ReplicaFetchMaxWait is replica.fetch.wait.max.ms.
	ReplicaFetchMaxWait time.Duration
	// HeartbeatInterval is how often the node renews its controller session.
	HeartbeatInterval time.Duration
	// AutoCreateTopics is auto.create.topics.enable (Kafka's default: true).
	AutoCreateTopics bool
	// DefaultPartitions is num.partitions for auto-created topics.
	DefaultPartitions int32
	// DefaultReplicationFactor is default.replication.factor. A topic created with it while
	// fewer brokers are live fails INVALID_REPLICATION_FACTOR, as in Kafka.
	DefaultReplicationFactor int16
	// Group configures the consumer-group coordinator.
	Group group.Config
	// SyncEveryAppend fsyncs each append (durability otherwise comes from replication), whatever
	// the topics' flush.messages.
	SyncEveryAppend bool
	// Disk, if set, records which bytes of the node's files are on stable storage, so that a
	// power loss can be simulated between a Kill and the next Start (log.Disk.PowerLoss). It
	// outlives the node.
	Disk *log.Disk
	// HWCheckpointInterval is replica.high.watermark.checkpoint.interval.ms: how often the
	// replicas' high watermarks are written to replication-offset-checkpoint (default 5s).
	HWCheckpointInterval time.Duration
	// DisableZeroCopy makes Fetch copy record batches out of the log and into the response,
	// instead of sending them from the log files to the socket with sendfile(2).
	DisableZeroCopy bool
	// SendStallTimeout bounds how long sending a zero-copy Fetch response may make no progress
	// (a client that stopped reading): then the connection is closed and the segment files the
	// response pins are released. Default 60 s, Kafka's file.delete.delay.ms: how long Kafka
	// keeps a deleted segment's file for the reads still using it.
	SendStallTimeout time.Duration
	// UnsafeHWOnCommittedISR re-creates, in every replica, the acknowledged-write loss of issue 11
	// item 1 (partition.Config.UnsafeHWOnCommittedISR). For tests only.
	UnsafeHWOnCommittedISR bool
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{Timeout: 5 * time.Second}
		if c.TLS != nil {
			c.Dialer = &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: c.TLS.Client}
		}
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 100 << 20
	}
	if c.ReplicaLagMax <= 0 {
		c.ReplicaLagMax = 10 * time.Second
	}
	if c.ReplicaFetchMaxWait <= 0 {
		c.ReplicaFetchMaxWait = 500 * time.Millisecond
	}
	if c.SendStallTimeout <= 0 {
		c.SendStallTimeout = time.Minute
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 250 * time.Millisecond
	}
	if c.DefaultPartitions <= 0 {
		c.DefaultPartitions = 1
	}
	if c.DefaultReplicationFactor <= 0 {
		c.DefaultReplicationFactor = 1
	}
	if c.HWCheckpointInterval <= 0 {
		c.HWCheckpointInterval = 5 * time.Second
	}
}

type tp struct {
	topic     string
	partition int32
}

// Broker is one running broker node. Its methods are safe for concurrent use.
type Broker struct {
	cfg Config
	lg  *slog.Logger
	ln  net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	image   atomic.Pointer[meta.Image]
	imageCh chan struct{}
	pending atomic.Pointer[meta.Image]
	// applying is the image apply is installing (then the current one): the brokers it says
	// are live are the ones that may join an ISR.
	applying atomic.Pointer[meta.Image]
	applied  chan struct{} // closed when the first image has been applied

	mu       sync.RWMutex
	replicas map[tp]*partition.Replica
	loaded   map[int32]bool // offsets partitions the group coordinator owns
	// txnLoaded are the __transaction_state partitions the transaction coordinator owns.
	txnLoaded map[int32]bool

	connMu sync.Mutex
	conns  map[net.Conn]struct{}

	groups   *group.Coordinator
	txns     *txn.Coordinator
	fetchers *fetcherManager

	// hwAtStart are the high watermarks read from the checkpoint at Start; a replica opened
	// later starts from its entry (capped at its log end).
	hwAtStart map[tp]int64
	// lastHWs is what the last checkpoint write wrote (owned by its writer, checkpointMu).
	checkpointMu sync.Mutex
	lastHWs      map[tp]int64

	zc zeroCopy // sendfile state (sendfile.go)

	sasl      *sasl.Server // nil without Config.SASL
	saslUsers *saslUsers

	hooks atomic.Pointer[testHooks] // nil except in this package's tests (conn.go)
}

// Start opens the node's data dir, listens, registers with the controller and serves until Close
// or Kill. It returns once the node accepts connections.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	cfg.setDefaults()
	ln := cfg.Listener
	fail := func(err error) (*Broker, error) {
		if ln != nil {
			_ = ln.Close()
		}
		return nil, err
	}
	if cfg.Controller == nil {
		return fail(errors.New("server: Config.Controller is required"))
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fail(fmt.Errorf("server: data dir: %w", err))
	}
	hws, err := readHWCheckpoint(filepath.Join(cfg.DataDir, hwCheckpointName))
	if err != nil {
		cfg.Logger.Warn("ignoring unreadable high-watermark checkpoint", "broker", cfg.ID, "err", err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			return nil, fmt.Errorf("server: broker %d: listen %s: %w", cfg.ID, cfg.ListenAddr, err)
		}
		if cfg.TLS != nil {
			ln = tls.NewListener(ln, cfg.TLS.Server)
		}
	}
	bctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg: cfg, lg: cfg.Logger.With("broker", cfg.ID), ln: ln,
		ctx: bctx, cancel: cancel,
		imageCh:   make(chan struct{}, 1),
		applied:   make(chan struct{}),
		replicas:  map[tp]*partition.Replica{},
		loaded:    map[int32]bool{},
		txnLoaded: map[int32]bool{},
		conns:     map[net.Conn]struct{}{},
		hwAtStart: hws,
	}
	if err := b.startSASL(); err != nil {
		cancel()
		return fail(err)
	}
	gcfg := cfg.Group
	if gcfg.Clock == nil {
		gcfg.Clock = cfg.Clock // a frozen node's group timers wait, as its other timers do
	}
	b.groups = group.NewCoordinator(gcfg, b.lg.With("component", "group"))
	b.txns = b.newTxnCoordinator()
	b.fetchers = newFetcherManager(b)

	b.wg.Add(1)
	go b.applyLoop()
	host, port := b.hostPort()
	if err := cfg.Controller.Register(ctx, meta.Broker{ID: cfg.ID, Host: host, Port: port, Alive: true}, b); err != nil {
		b.shutdown(false)
		return nil, fmt.Errorf("server: broker %d: register: %w", cfg.ID, err)
	}
	b.wg.Add(4)
	go b.every(txnAbortInterval, b.abortTimedOutTxns)
	go b.every(b.cfg.HeartbeatInterval, b.heartbeat)
	go b.maintenanceLoop()
	go b.every(b.cfg.HWCheckpointInterval, b.checkpointHWs)
	select {
	case <-b.applied:
	case <-ctx.Done():
		b.shutdown(false)
		return nil, ctx.Err()
	}
	// Connections are served only once the node knows the cluster's metadata; until then they
	// wait in the listen backlog.
	b.wg.Add(1)
	go b.acceptLoop()
	b.lg.Info("broker started", "addr", b.Addr(), "data", cfg.DataDir)
	return b, nil
}

// ID returns the node id.
func (b *Broker) ID() int32 { return b.cfg.ID }

// Addr returns the host:port clients connect to.
func (b *Broker) Addr() string { return b.ln.Addr().String() }

func (b *Broker) hostPort() (string, int32) {
	host, ps, _ := net.SplitHostPort(b.Addr())
	port, _ := strconv.Atoi(ps)
	return host, int32(port)
}

// Image returns the newest metadata image this node has applied. Handlers never see nil: the
// node accepts connections only after its first image (see Start).
func (b *Broker) Image() *meta.Image { return b.image.Load() }

// OnImage implements Listener: the newest image wins; images are applied in order on one
// goroutine.
func (b *Broker) OnImage(img *meta.Image) {
	for {
		cur := b.pending.Load()
		if cur != nil && cur.Version >= img.Version {
			return
		}
		if b.pending.CompareAndSwap(cur, img) {
			break
		}
	}
	select {
	case b.imageCh <- struct{}{}:
	default:
	}
}

func (b *Broker) applyLoop() {
	defer b.wg.Done()
	first := true
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.imageCh:
		}
		img := b.pending.Load()
		if cur := b.image.Load(); img == nil || (cur != nil && cur.Version >= img.Version) {
			continue
		}
		b.apply(img)
		b.image.Store(img)
		if first {
			close(b.applied)
			first = false
		}
	}
}

// apply makes this node's replicas match the image: open new ones, give each its role, drop the
// ones of deleted topics, and move group coordination with offsets-partition leadership.
func (b *Broker) apply(img *meta.Image) {
	b.applying.Store(img)
	self := b.cfg.ID
	seen := map[tp]bool{}
	for name, t := range img.Topics {
		for i, st := range t.Partitions {
			if !st.IsReplica(self) {
				continue
			}
			key := tp{name, int32(i)}
			seen[key] = true
			r, err := b.openReplica(t, int32(i))
			if err != nil {
				b.lg.Error("cannot open replica", "topic", name, "partition", i, "err", err)
				continue
			}
			r.SetConfig(int(b.cfg.Defaults.Int(t, meta.ConfigMinISR)), int(b.cfg.Defaults.Int(t, meta.ConfigMaxMessageBytes)))
			r.Log().SetFlushMessages(b.cfg.Defaults.Int(t, meta.ConfigFlushMessages))
			becameFollower := r.Apply(st)
			switch {
			case st.Leader == self || st.Leader == meta.NoLeader:
				b.fetchers.remove(key)
			case becameFollower:
				b.fetchers.add(key, st.Leader, true)
			default:
				b.fetchers.add(key, st.Leader, false)
			}
		}
	}
	b.mu.Lock()
	var gone []*partition.Replica
	for key, r := range b.replicas {
		if !seen[key] {
			gone = append(gone, r)
			delete(b.replicas, key)
			b.fetchers.remove(key)
		}
	}
	b.mu.Unlock()
	for _, r := range gone {
		if err := r.Log().Delete(); err != nil {
			b.lg.Warn("deleting replica", "err", err)
		}
	}
	b.applyGroups(img)
	b.applyTxns(img)
}

func (b *Broker) openReplica(t *meta.Topic, p int32) (*partition.Replica, error) {
	key := tp{t.Name, p}
	b.mu.RLock()
	r := b.replicas[key]
	b.mu.RUnlock()
	if r != nil {
		return r, nil
	}
	d := b.cfg.Defaults
	dir := filepath.Join(b.cfg.DataDir, fmt.Sprintf("%s-%d", t.Name, p))
	r, err := partition.Open(dir, partition.Config{
		BrokerID: b.cfg.ID, Topic: t.Name, Partition: p,
		MinISR:          int(d.Int(t, meta.ConfigMinISR)),
		MaxMessageBytes: int(d.Int(t, meta.ConfigMaxMessageBytes)),
		ReplicaLagMax:   b.cfg.ReplicaLagMax,
		Logger:          b.lg,
		HighWatermark:   b.hwAtStart[key],
		Log: log.Config{
			SegmentBytes:       d.Int(t, meta.ConfigSegmentBytes),
			IndexIntervalBytes: int(d.Int(t, meta.ConfigIndexInterval)),
			RetentionMs:        d.Int(t, meta.ConfigRetentionMs),
			RetentionBytes:     d.Int(t, meta.ConfigRetentionBytes),
			SyncEveryAppend:    b.cfg.SyncEveryAppend,
			FlushMessages:      d.Int(t, meta.ConfigFlushMessages),
			Disk:               b.cfg.Disk,
		},
		AlterISR: func(ctx context.Context, leaderEpoch, partEpoch int32, isr []int32) error {
			return b.cfg.Controller.AlterISR(ctx, t.Name, p, leaderEpoch, partEpoch, isr)
		},
		IsrEligible:            b.isrEligible,
		UnsafeHWOnCommittedISR: b.cfg.UnsafeHWOnCommittedISR,
		VerifyTransactions:     true,
	})
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.replicas[key] = r
	b.mu.Unlock()
	return r, nil
}

// replica returns this node's replica of topic-partition, or nil.
func (b *Broker) replica(topic string, p int32) *partition.Replica {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.replicas[tp{topic, p}]
}

// PartitionState reports this node's view of a partition it holds.
func (b *Broker) PartitionState(topic string, p int32) (partition.State, bool) {
	r := b.replica(topic, p)
	if r == nil {
		return partition.State{}, false
	}
	return r.State(), true
}

// every calls fn every d (by the node's clock) until the node stops; it runs as one of b.wg's
// goroutines.
func (b *Broker) every(d time.Duration, fn func()) {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.cfg.Clock.After(d):
		}
		fn()
	}
}

// heartbeat renews the node's controller session, registering again if it was lost.
func (b *Broker) heartbeat() {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.HeartbeatInterval*4)
	err := b.cfg.Controller.Heartbeat(ctx)
	cancel()
	if err != nil && b.ctx.Err() == nil {
		b.lg.Warn("controller heartbeat failed; registering again", "err", err)
		host, port := b.hostPort()
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.HeartbeatInterval*4)
		if err := b.cfg.Controller.Register(ctx, meta.Broker{ID: b.cfg.ID, Host: host, Port: port, Alive: true}, b); err != nil {
			b.lg.Warn("register failed", "err", err)
		}
		cancel()
	}
}

// maintenanceLoop shrinks ISRs of led partitions whose followers lag, and applies retention.
func (b *Broker) maintenanceLoop() {
	defer b.wg.Done()
	every := max(b.cfg.ReplicaLagMax/4, 20*time.Millisecond)
	lastRetention := time.Now()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.cfg.Clock.After(every):
		}
		b.mu.RLock()
		rs := make([]*partition.Replica, 0, len(b.replicas))
		for _, r := range b.replicas {
			rs = append(rs, r)
		}
		b.mu.RUnlock()
		retention := time.Since(lastRetention) > time.Minute
		for _, r := range rs {
			r.CheckISR()
			if retention {
				if _, err := r.ApplyRetention(time.Now()); err != nil {
					b.lg.Warn("retention", "err", err)
				}
			}
		}
		if retention {
			lastRetention = time.Now()
		}
	}
}

// Close stops the node cleanly: connections closed, fetchers stopped, high watermarks
// checkpointed, logs synced and closed.
func (b *Broker) Close() error { return b.shutdown(true) }

// Kill stops the node as kill -9 would: listener, connections and fetchers gone at once, and
// the logs dropped without flushing, fsyncing or writing any file. What the node had written
// stays in its files, as the OS keeps a killed process's writes; a power loss
// (log.Disk.PowerLoss) is what takes the unsynced bytes away.
func (b *Broker) Kill() { b.shutdown(false) }

func (b *Broker) shutdown(clean bool) error {
	b.cancel()
	_ = b.ln.Close()
	b.connMu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.connMu.Unlock()
	b.fetchers.stopAll()
	b.groups.Close()
	b.txns.Close()
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	if clean {
		errs = append(errs, b.checkpointHWsLocked())
	}
	for _, r := range b.replicas {
		if clean {
			errs = append(errs, r.Close())
		} else {
			r.Abandon()
		}
	}
	b.replicas = map[tp]*partition.Replica{}
	return errors.Join(errs...)
}

// isrEligible reports whether broker id may join an ISR: the metadata being applied has it
// registered and not fenced (Kafka's isReplicaIsrEligible).
func (b *Broker) isrEligible(id int32) bool {
	img := b.applying.Load()
	if img == nil {
		return true
	}
	bk, ok := img.Broker(id)
	return ok && bk.Alive
}
