package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/sasl"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
)

// ControllerConfig configures the controller.
type ControllerConfig struct {
	// Dir holds the controller's metadata file (cluster.json); "" keeps metadata in memory only.
	Dir string
	// SessionTimeout is how long a broker may go without a heartbeat before it is declared dead
	// (Kafka's broker.session.timeout.ms).
	SessionTimeout time.Duration
	// Defaults are the broker-level topic config defaults (unclean.leader.election.enable is read
	// from a topic's config, falling back to these).
	Defaults meta.Defaults
	Logger   *slog.Logger
	Now      func() time.Time
}

// Controller is the cluster's single in-process controller: it owns the metadata image, assigns
// replicas, runs leader elections from the ISR, applies ISR changes proposed by leaders, detects
// dead brokers by their session, and publishes every change to the live brokers. A broker reaches
// it through For (the cluster puts a link with its faults in between); the exported methods are
// the administrative calls any broker may make. All state is guarded by one mutex; it is never on
// the produce/fetch path.
type Controller struct {
	cfg ControllerConfig
	lg  *slog.Logger

	mu        sync.Mutex
	img       *meta.Image
	nextPID   int64
	listeners map[int32]server.Listener
	lastHB    map[int32]time.Time

	stop chan struct{}
	done chan struct{}
}

type persisted struct {
	Image          *meta.Image `json:"image"`
	NextProducerID int64       `json:"next_producer_id"`
}

// NewController loads the metadata file in cfg.Dir if there is one, and starts the session
// monitor. Close stops it.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Controller{
		cfg: cfg, lg: cfg.Logger.With("component", "controller"),
		listeners: map[int32]server.Listener{},
		lastHB:    map[int32]time.Time{},
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		nextPID:   1000,
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	if c.img == nil {
		var id [16]byte
		_, _ = rand.Read(id[:])
		c.img = &meta.Image{Version: 1, ClusterID: base64.RawURLEncoding.EncodeToString(id[:]), Topics: map[string]*meta.Topic{}}
	}
	c.img.Seal()
	// Brokers from a previous run get one session to come back before they count as dead.
	now := cfg.Now()
	for i := range c.img.Brokers {
		c.lastHB[c.img.Brokers[i].ID] = now
	}
	go c.monitor()
	return c, nil
}

func (c *Controller) path() string { return filepath.Join(c.cfg.Dir, "cluster.json") }

func (c *Controller) load() error {
	if c.cfg.Dir == "" {
		return nil
	}
	data, err := os.ReadFile(c.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: read metadata: %w", err)
	}
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("cluster: metadata file %s is corrupt: %w", c.path(), err)
	}
	c.img, c.nextPID = p.Image, max(p.NextProducerID, 1000)
	if c.img.Topics == nil {
		c.img.Topics = map[string]*meta.Topic{}
	}
	return nil
}

// saveLocked writes the metadata file atomically (write, fsync, rename).
func (c *Controller) saveLocked() error {
	if c.cfg.Dir == "" {
		return nil
	}
	data, err := json.MarshalIndent(persisted{Image: c.img, NextProducerID: c.nextPID}, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.cfg.Dir, 0o755); err != nil {
		return err
	}
	tmp := c.path() + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, c.path())
}

// Close stops the session monitor.
func (c *Controller) Close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// Image returns the current metadata image (immutable).
func (c *Controller) Image() *meta.Image {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.img
}

// change clones the image, lets fn modify the clone, and publishes it. fn returning an error
// aborts the change.
func (c *Controller) changeLocked(fn func(img *meta.Image) error) error {
	next := c.img.Clone()
	if err := fn(next); err != nil {
		return err
	}
	next.Version = c.img.Version + 1
	next.Seal()
	c.img = next
	if err := c.saveLocked(); err != nil {
		c.lg.Error("cannot persist cluster metadata", "err", err)
	}
	for _, l := range c.listeners {
		l.OnImage(next)
	}
	return nil
}

// For returns the controller as broker id reaches it: the calls it takes are that broker's (its
// heartbeats, the ISR changes of the partitions it leads).
func (c *Controller) For(id int32) server.Controller { return session{c, id} }

// session is the controller as one broker reaches it.
type session struct {
	c  *Controller
	id int32
}

func (s session) Register(_ context.Context, b meta.Broker, l server.Listener) error {
	b.ID = s.id
	return s.c.register(b, l)
}
func (s session) Heartbeat(context.Context) error { return s.c.heartbeat(s.id) }
func (s session) CreateTopics(ctx context.Context, specs []server.TopicSpec, validateOnly bool) []error {
	return s.c.CreateTopics(ctx, specs, validateOnly)
}
func (s session) DeleteTopics(ctx context.Context, names []string) []error {
	return s.c.DeleteTopics(ctx, names)
}
func (s session) CreatePartitions(ctx context.Context, topic string, count int32, validateOnly bool) error {
	return s.c.CreatePartitions(ctx, topic, count, validateOnly)
}
func (s session) AlterISR(_ context.Context, topic string, p, leaderEpoch, partEpoch int32, isr []int32) error {
	return s.c.alterISR(s.id, topic, p, leaderEpoch, partEpoch, isr)
}
func (s session) AllocateProducerID(ctx context.Context) (int64, error) {
	return s.c.AllocateProducerID(ctx)
}
func (s session) AlterScramCredentials(ctx context.Context, changes []server.ScramChange) []error {
	return s.c.AlterScramCredentials(ctx, changes)
}

// register announces a (re)started broker. A broker that registers with a different listener than
// the one on record is a new incarnation (restarted): its old incarnation is fenced first, so
// leadership it held moves through a proper election, as Kafka does on a broker epoch change.
func (c *Controller) register(b meta.Broker, l server.Listener) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.listeners[b.ID]; ok && old != l {
		if bk, ok := c.img.Broker(b.ID); ok && bk.Alive {
			c.fenceLocked(b.ID, "restarted")
		}
	}
	c.listeners[b.ID] = l
	c.lastHB[b.ID] = c.cfg.Now()
	err := c.changeLocked(func(img *meta.Image) error {
		b.Alive = true
		i := slices.IndexFunc(img.Brokers, func(x meta.Broker) bool { return x.ID == b.ID })
		if i < 0 {
			img.Brokers = append(img.Brokers, b)
			sort.Slice(img.Brokers, func(i, j int) bool { return img.Brokers[i].ID < img.Brokers[j].ID })
		} else {
			img.Brokers[i] = b
		}
		if img.ControllerID == 0 && len(img.Brokers) == 1 {
			img.ControllerID = b.ID
		}
		c.electOfflineLocked(img)
		return nil
	})
	if err != nil {
		return err
	}
	c.lg.Info("broker registered", "broker", b.ID, "addr", fmt.Sprintf("%s:%d", b.Host, b.Port))
	// The new listener gets the current image even when nothing changed.
	l.OnImage(c.img)
	return nil
}

// heartbeat renews broker id's session.
func (c *Controller) heartbeat(id int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	bk, ok := c.img.Broker(id)
	if !ok || !bk.Alive {
		return fmt.Errorf("cluster: broker %d is fenced; it must register again", id)
	}
	c.lastHB[id] = c.cfg.Now()
	return nil
}

func (c *Controller) monitor() {
	defer close(c.done)
	every := max(c.cfg.SessionTimeout/8, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	lastTick := c.cfg.Now()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		now := c.cfg.Now()
		stalled := now.Sub(lastTick) > c.cfg.SessionTimeout/2
		lastTick = now
		if stalled {
			// The controller itself did not run for a long while (the whole process was starved
			// or paused): the brokers' silence says nothing about them, so every live broker gets
			// a fresh session instead of being fenced all at once.
			c.lg.Warn("controller stalled; renewing broker sessions", "tick_interval", every)
			for _, bk := range c.img.Brokers {
				if bk.Alive {
					c.lastHB[bk.ID] = now
				}
			}
			c.mu.Unlock()
			continue
		}
		for _, bk := range c.img.Brokers {
			if bk.Alive && now.Sub(c.lastHB[bk.ID]) > c.cfg.SessionTimeout {
				c.fenceLocked(bk.ID, "session timed out")
			}
		}
		c.mu.Unlock()
	}
}

// fenceLocked declares a broker dead: it leaves every ISR it is in (unless it is the last
// member), and partitions it led elect a new leader from the remaining ISR.
func (c *Controller) fenceLocked(id int32, why string) {
	c.lg.Warn("broker fenced", "broker", id, "reason", why)
	_ = c.changeLocked(func(img *meta.Image) error {
		for i := range img.Brokers {
			if img.Brokers[i].ID == id {
				img.Brokers[i].Alive = false
			}
		}
		for _, t := range img.Topics {
			for p := range t.Partitions {
				c.removeFromPartitionLocked(img, t, int32(p), id)
			}
		}
		return nil
	})
}

func alive(img *meta.Image, id int32) bool {
	bk, ok := img.Broker(id)
	return ok && bk.Alive
}

func (c *Controller) removeFromPartitionLocked(img *meta.Image, t *meta.Topic, p int32, dead int32) {
	st := &t.Partitions[p]
	if !st.IsReplica(dead) {
		return
	}
	if st.InISR(dead) && len(st.ISR) > 1 {
		st.ISR = slices.DeleteFunc(st.ISR, func(x int32) bool { return x == dead })
		st.Epoch++
	}
	if st.Leader != dead {
		return
	}
	c.electLocked(img, t, p, "leader died")
}

// electLocked picks a leader for partition p from its live ISR (in replica order); with none,
// the partition goes offline unless the topic allows unclean election. The controller does not
// know log end offsets, and need not: every ISR member has every acknowledged record, because a
// leader counts a follower it proposes for the ISR toward its high watermark from the proposal
// on (partition's maximal ISR), so any live member is a leader that loses nothing. The cluster
// and partition tests check that the new leader's log reaches the old high watermark.
func (c *Controller) electLocked(img *meta.Image, t *meta.Topic, p int32, why string) {
	st := &t.Partitions[p]
	old := st.Leader
	st.Leader = meta.NoLeader
	for _, r := range st.Replicas {
		if st.InISR(r) && alive(img, r) {
			st.Leader = r
			break
		}
	}
	if st.Leader == meta.NoLeader && c.cfg.Defaults.Bool(t, meta.ConfigUncleanElection) {
		for _, r := range st.Replicas {
			if alive(img, r) {
				st.Leader, st.ISR = r, []int32{r}
				c.lg.Warn("unclean leader election: records not on the new leader are lost", "topic", t.Name, "partition", p, "leader", r)
				break
			}
		}
	}
	if st.Leader == old {
		return
	}
	st.LeaderEpoch++
	st.Epoch++
	if st.Leader == meta.NoLeader {
		c.lg.Warn("partition offline: no live in-sync replica", "topic", t.Name, "partition", p, "isr", st.ISR, "reason", why)
		return
	}
	c.lg.Info("leader elected", "topic", t.Name, "partition", p, "leader", st.Leader, "leader_epoch", st.LeaderEpoch, "isr", st.ISR, "reason", why)
}

// electOfflineLocked elects leaders for offline partitions that now have a live ISR member.
func (c *Controller) electOfflineLocked(img *meta.Image) {
	for _, t := range img.Topics {
		for p := range t.Partitions {
			if t.Partitions[p].Leader == meta.NoLeader {
				c.electLocked(img, t, int32(p), "replica returned")
			}
		}
	}
}

// alterISR applies an ISR change proposed by broker leader (the session it came through), which
// must lead the partition.
func (c *Controller) alterISR(leader int32, topic string, p, leaderEpoch, partEpoch int32, isr []int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changeLocked(func(img *meta.Image) error {
		t := img.Topic(topic)
		if t == nil || p < 0 || int(p) >= len(t.Partitions) {
			return fmt.Errorf("cluster: AlterISR %s-%d: %w", topic, p, kerr.UnknownTopicOrPartition)
		}
		st := &t.Partitions[p]
		if st.Leader != leader || st.LeaderEpoch != leaderEpoch {
			return fmt.Errorf("cluster: AlterISR %s-%d from broker %d epoch %d, but the leader is %d epoch %d: %w", topic, p, leader, leaderEpoch, st.Leader, st.LeaderEpoch, kerr.FencedLeaderEpoch)
		}
		if st.Epoch != partEpoch {
			return fmt.Errorf("cluster: AlterISR %s-%d: stale partition epoch %d (now %d): %w", topic, p, partEpoch, st.Epoch, kerr.InvalidUpdateVersion)
		}
		if !slices.Contains(isr, leader) {
			return fmt.Errorf("cluster: AlterISR %s-%d: the leader must stay in the ISR: %w", topic, p, kerr.InvalidRequest)
		}
		for _, id := range isr {
			if !st.IsReplica(id) {
				return fmt.Errorf("cluster: AlterISR %s-%d: %d is not a replica: %w", topic, p, id, kerr.InvalidReplicaAssignment)
			}
			if !st.InISR(id) && !alive(img, id) {
				return fmt.Errorf("cluster: AlterISR %s-%d: broker %d is fenced and cannot join the ISR: %w", topic, p, id, kerr.IneligibleReplica)
			}
		}
		c.lg.Info("ISR changed", "topic", topic, "partition", p, "from", st.ISR, "to", isr)
		st.ISR = slices.Clone(isr)
		st.Epoch++
		return nil
	})
}

// AllocateProducerID hands out a cluster-unique idempotent producer id.
func (c *Controller) AllocateProducerID(context.Context) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextPID
	c.nextPID++
	if err := c.saveLocked(); err != nil {
		return -1, fmt.Errorf("cluster: persist producer id: %w", err)
	}
	return id, nil
}

// CreateTopics creates topics (or only validates them), one error per spec (see
// server.Controller).
func (c *Controller) CreateTopics(_ context.Context, specs []server.TopicSpec, validateOnly bool) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := make([]error, len(specs))
	_ = c.changeLocked(func(img *meta.Image) error {
		created, added := 0, 0
		for i, s := range specs {
			t, err := c.newTopicLocked(img, s)
			if err != nil {
				errs[i] = err
				continue
			}
			if added+len(t.Partitions) > maxPartitionsPerOp {
				errs[i] = errTooManyPartitions(int64(added + len(t.Partitions)))
				continue
			}
			added += len(t.Partitions)
			if !validateOnly {
				img.Topics[s.Name] = t
				created++
				c.lg.Info("topic created", "topic", s.Name, "partitions", len(t.Partitions), "replication_factor", len(t.Partitions[0].Replicas), "configs", s.Configs)
			}
		}
		if created == 0 {
			return errNoChange
		}
		return nil
	})
	return errs
}

var errNoChange = errors.New("cluster: no change")

// AlterScramCredentials sets or deletes SCRAM credentials, one error per change (see
// server.Controller). They are kept in the metadata image, as Kafka keeps them in its metadata
// log.
func (c *Controller) AlterScramCredentials(_ context.Context, changes []server.ScramChange) []error {
	errs := make([]error, len(changes))
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.changeLocked(func(img *meta.Image) error {
		n := 0
		for i, ch := range changes {
			creds := img.Scram[ch.User]
			if ch.Delete {
				if _, ok := creds[ch.Mechanism]; !ok {
					errs[i] = fmt.Errorf("attempt to delete a user credential that does not exist: %w", kerr.ResourceNotFound)
					continue
				}
				creds = maps.Clone(creds)
				delete(creds, ch.Mechanism)
			} else {
				creds = maps.Clone(creds)
				if creds == nil {
					creds = map[string]sasl.ScramCredential{}
				}
				creds[ch.Mechanism] = ch.Credential
			}
			if img.Scram == nil {
				img.Scram = map[string]map[string]sasl.ScramCredential{}
			}
			if len(creds) == 0 {
				delete(img.Scram, ch.User)
			} else {
				img.Scram[ch.User] = creds
			}
			n++
			c.lg.Info("SCRAM credential changed", "user", ch.User, "mechanism", ch.Mechanism, "deleted", ch.Delete)
		}
		if n == 0 {
			return errNoChange
		}
		return nil
	})
	return errs
}

// maxPartitionsPerOp bounds the partitions one CreateTopics or CreatePartitions request may add,
// as Kafka's controller bounds the records of one operation (10000): beyond it the request fails
// with POLICY_VIOLATION instead of exhausting memory and file descriptors.
const maxPartitionsPerOp = 10000

func errTooManyPartitions(n int64) error {
	return fmt.Errorf("%d partitions in one request exceed the limit of %d: %w", n, maxPartitionsPerOp, kerr.PolicyViolation)
}

func (c *Controller) newTopicLocked(img *meta.Image, s server.TopicSpec) (*meta.Topic, error) {
	if img.Topic(s.Name) != nil {
		return nil, fmt.Errorf("topic %q already exists: %w", s.Name, kerr.TopicAlreadyExists)
	}
	for k, v := range s.Configs {
		if err := meta.ValidateTopicConfig(k, v); err != nil {
			return nil, fmt.Errorf("%w: %w", kerr.InvalidConfig, err)
		}
	}
	t := &meta.Topic{Name: s.Name, ID: meta.NewTopicID(), Configs: s.Configs, Internal: meta.IsInternal(s.Name)}
	if len(s.Assignment) > maxPartitionsPerOp {
		return nil, errTooManyPartitions(int64(len(s.Assignment)))
	}
	if len(s.Assignment) > 0 {
		for p := int32(0); p < int32(len(s.Assignment)); p++ {
			reps, ok := s.Assignment[p]
			if !ok || len(reps) == 0 {
				return nil, fmt.Errorf("replica assignment must cover partitions 0..%d: %w", len(s.Assignment)-1, kerr.InvalidReplicaAssignment)
			}
			for _, r := range reps {
				if _, ok := img.Broker(r); !ok {
					return nil, fmt.Errorf("replica assignment names unknown broker %d: %w", r, kerr.InvalidReplicaAssignment)
				}
			}
			t.Partitions = append(t.Partitions, newPartition(img, reps))
		}
		return t, nil
	}
	if s.Partitions <= 0 {
		return nil, fmt.Errorf("number of partitions must be positive, got %d: %w", s.Partitions, kerr.InvalidPartitions)
	}
	if s.Partitions > maxPartitionsPerOp {
		return nil, errTooManyPartitions(int64(s.Partitions))
	}
	var live []int32
	for _, b := range img.Brokers {
		if b.Alive {
			live = append(live, b.ID)
		}
	}
	if s.ReplicationFactor <= 0 || int(s.ReplicationFactor) > len(live) {
		return nil, fmt.Errorf("replication factor %d is not possible with %d live brokers: %w", s.ReplicationFactor, len(live), kerr.InvalidReplicationFactor)
	}
	start := len(img.Topics)
	for p := int32(0); p < s.Partitions; p++ {
		reps := make([]int32, s.ReplicationFactor)
		for k := range reps {
			reps[k] = live[(start+int(p)+k)%len(live)]
		}
		t.Partitions = append(t.Partitions, newPartition(img, reps))
	}
	return t, nil
}

func newPartition(img *meta.Image, reps []int32) meta.Partition {
	st := meta.Partition{Replicas: slices.Clone(reps), Leader: meta.NoLeader}
	for _, r := range reps {
		if alive(img, r) {
			st.ISR = append(st.ISR, r)
		}
	}
	if len(st.ISR) > 0 {
		st.Leader = st.ISR[0]
	} else {
		st.ISR = []int32{reps[0]}
	}
	return st
}

// DeleteTopics deletes topics by name, one error per name.
func (c *Controller) DeleteTopics(_ context.Context, names []string) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := make([]error, len(names))
	_ = c.changeLocked(func(img *meta.Image) error {
		n := 0
		for i, name := range names {
			if img.Topic(name) == nil {
				errs[i] = fmt.Errorf("topic %q: %w", name, kerr.UnknownTopicOrPartition)
				continue
			}
			delete(img.Topics, name)
			n++
			c.lg.Info("topic deleted", "topic", name)
		}
		if n == 0 {
			return errNoChange
		}
		return nil
	})
	return errs
}

// CreatePartitions grows a topic to count partitions.
func (c *Controller) CreatePartitions(_ context.Context, topic string, count int32, validateOnly bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.changeLocked(func(img *meta.Image) error {
		t := img.Topic(topic)
		if t == nil {
			return fmt.Errorf("topic %q: %w", topic, kerr.UnknownTopicOrPartition)
		}
		if int(count) <= len(t.Partitions) {
			return fmt.Errorf("topic %q has %d partitions; the new count %d must be larger: %w", topic, len(t.Partitions), count, kerr.InvalidPartitions)
		}
		if int64(count)-int64(len(t.Partitions)) > maxPartitionsPerOp {
			return errTooManyPartitions(int64(count) - int64(len(t.Partitions)))
		}
		rf := len(t.Partitions[0].Replicas)
		var live []int32
		for _, b := range img.Brokers {
			if b.Alive {
				live = append(live, b.ID)
			}
		}
		if rf > len(live) {
			return fmt.Errorf("replication factor %d needs %d live brokers, %d are: %w", rf, rf, len(live), kerr.InvalidReplicationFactor)
		}
		if validateOnly {
			return errNoChange
		}
		for p := int32(len(t.Partitions)); p < count; p++ {
			reps := make([]int32, rf)
			for k := range reps {
				reps[k] = live[(int(p)+k)%len(live)]
			}
			t.Partitions = append(t.Partitions, newPartition(img, reps))
		}
		c.lg.Info("partitions added", "topic", topic, "count", count)
		return nil
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	return err
}

// ErrNotEnoughBrokers is returned by EnsureOffsetsTopic while fewer brokers are live than needed.
var ErrNotEnoughBrokers = errors.New("cluster: not enough live brokers")

// EnsureOffsetsTopic creates __consumer_offsets if it does not exist, with the given partitions
// and a replication factor of min(3, brokers), once at least that many brokers are live.
func (c *Controller) EnsureOffsetsTopic(partitions int32, brokers int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.img.Topic(meta.OffsetsTopic) != nil {
		return nil
	}
	live := 0
	for _, b := range c.img.Brokers {
		if b.Alive {
			live++
		}
	}
	if want := min(3, brokers); live < want {
		return fmt.Errorf("%w: %d live, %s needs %d", ErrNotEnoughBrokers, live, meta.OffsetsTopic, want)
	}
	var errOut error
	_ = c.changeLocked(func(img *meta.Image) error {
		t, err := c.newTopicLocked(img, server.TopicSpec{Name: meta.OffsetsTopic, Partitions: partitions, ReplicationFactor: int16(min(3, live))})
		if err != nil {
			errOut = err
			return err
		}
		img.Topics[meta.OffsetsTopic] = t
		return nil
	})
	return errOut
}
