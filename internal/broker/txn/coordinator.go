package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
)

// Config configures a [Coordinator].
type Config struct {
	// Partitions is the number of partitions of __transaction_state
	// (transaction.state.log.num.partitions).
	Partitions int32
	// OffsetsPartitions is the number of partitions of __consumer_offsets,
	// to name the partition AddOffsetsToTxn adds.
	OffsetsPartitions int32
	// MaxTimeoutMillis caps the transaction timeout a producer may ask for
	// (transaction.max.timeout.ms); 0 means Kafka's 900000.
	MaxTimeoutMillis int32
	// AllocateProducerID returns a new cluster-unique producer id.
	AllocateProducerID func(ctx context.Context) (int64, error)
	// Markers writes transaction markers.
	Markers MarkerWriter
	// Now is the clock of timestamps and timeouts; nil means time.Now.
	Now func() time.Time
	// RetryBackoff is the pause between attempts to write markers or the
	// completion of a transaction; 0 means 100 ms.
	RetryBackoff time.Duration
	// WriteTimeout bounds how long a write of __transaction_state waits for
	// the ISR (Kafka's request.timeout.ms, which bounds its transaction log
	// appends); 0 means 30 s.
	WriteTimeout time.Duration
}

// MarkerWriter writes the markers that end a transaction (Kafka's
// TransactionMarkerChannelManager and WriteTxnMarkers): a control batch with
// the COMMIT or ABORT key, the producer's id and epoch and the coordinator
// epoch, appended by the leader of each partition. WriteMarkers returns nil
// once every partition has its marker with acks=all. It is called again for
// the same transaction after an error or a coordinator failover, so a marker
// must be idempotent for a partition. An error that wraps
// kerr.TransactionCoordinatorFenced means a partition has a marker of the
// producer from a newer coordinator: this one was deposed, and stops.
type MarkerWriter interface {
	WriteMarkers(ctx context.Context, producerID int64, epoch int16, commit bool, coordinatorEpoch int32, parts []Partition) error
}

// Coordinator is the transaction coordinator of one broker: it serves the
// transactional ids of the __transaction_state partitions loaded into it. It
// is safe for concurrent use; create it with [NewCoordinator] and stop it
// with [Coordinator.Close]. A request's ctx does not bound the writes it
// causes: once asked, the coordinator carries a transition to its end (see
// shard.persist).
type Coordinator struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	shards map[int32]*shard
	closed bool

	background sync.WaitGroup
}

// shard is one loaded __transaction_state partition.
type shard struct {
	ctx          context.Context // cancelled on unload
	cancel       context.CancelFunc
	store        group.Store
	writeTimeout time.Duration // Config.WriteTimeout
	// epoch is the coordinator epoch: the partition's leader epoch when it
	// was loaded. Markers carry it.
	epoch int32

	mu   sync.Mutex // guards txns
	txns map[string]*entry
}

// entry is one transactional id. Its mutex is held across a transition,
// including the Append that persists it, so the transitions of one id are
// applied in the order they are persisted.
type entry struct {
	mu sync.Mutex
	m  Metadata
}

// NewCoordinator returns a coordinator that owns no partition yet. A nil
// logger discards logs.
func NewCoordinator(cfg Config, logger *slog.Logger) *Coordinator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxTimeoutMillis <= 0 {
		cfg.MaxTimeoutMillis = 900000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 100 * time.Millisecond
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	return &Coordinator{cfg: cfg, log: logger, shards: make(map[int32]*shard)}
}

// ErrClosed is returned by Load after Close.
var ErrClosed = errors.New("txn: coordinator closed")

// Load makes this coordinator own __transaction_state partition p as its
// leader in leaderEpoch, which becomes the coordinator epoch of p's markers
// (Kafka's TransactionStateManager): it replays the partition (the last
// record of a transactional id wins, a tombstone removes it), then serves the
// ids of p, persisting through store, and resumes writing the markers of
// every transaction left in PrepareCommit or PrepareAbort. Records it cannot
// decode are logged and skipped; a replay that fails loads nothing.
func (c *Coordinator) Load(ctx context.Context, p, leaderEpoch int32, store group.Store, replay group.Replay) error {
	txns := make(map[string]*entry)
	err := replay(func(r group.Record) bool {
		m, deleted, err := Decode(r.Key, r.Value)
		switch {
		case err != nil:
			c.log.Error("skipping a __transaction_state record", "partition", p, "err", err)
		case deleted:
			delete(txns, m.TransactionalID)
		default:
			txns[m.TransactionalID] = &entry{m: m}
		}
		return ctx.Err() == nil
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("txn: loading %s-%d: %w", TopicName, p, err)
	}
	// The transactions to finish are picked while txns is still this call's
	// alone: once the shard is published, requests add to it and lock its
	// entries.
	var prepared []*entry
	for _, e := range txns {
		if e.m.State == PrepareCommit || e.m.State == PrepareAbort {
			prepared = append(prepared, e)
		}
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &shard{ctx: sctx, cancel: cancel, store: store, writeTimeout: c.cfg.WriteTimeout, epoch: leaderEpoch, txns: txns}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return ErrClosed
	}
	if old := c.shards[p]; old != nil {
		old.cancel()
	}
	c.shards[p] = s
	c.mu.Unlock()
	for _, e := range prepared {
		e.mu.Lock()
		m := e.m
		e.mu.Unlock()
		if m.State == PrepareCommit || m.State == PrepareAbort {
			c.complete(s, e, m)
		}
	}
	return nil
}

// Unload stops serving partition p; markers being written for it stop, and
// the next leader resumes them.
func (c *Coordinator) Unload(p int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.shards[p]; s != nil {
		s.cancel()
		delete(c.shards, p)
	}
}

// Close unloads every partition and waits for background work to stop.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.closed = true
	for p, s := range c.shards {
		s.cancel()
		delete(c.shards, p)
	}
	c.mu.Unlock()
	c.background.Wait()
}

// Describe returns the state of transactionalID if this coordinator owns it.
func (c *Coordinator) Describe(transactionalID string) (Metadata, bool) {
	s := c.shardFor(transactionalID)
	if s == nil {
		return Metadata{}, false
	}
	s.mu.Lock()
	e := s.txns[transactionalID]
	s.mu.Unlock()
	if e == nil {
		return Metadata{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m, true
}

func (c *Coordinator) shardFor(transactionalID string) *shard {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shards[PartitionFor(transactionalID, c.cfg.Partitions)]
}

// lookup returns the entry of transactionalID, locked, creating it with
// create when it does not exist and create is not nil.
func (s *shard) lookup(transactionalID string, create func() (Metadata, error)) (*entry, error) {
	s.mu.Lock()
	e := s.txns[transactionalID]
	if e == nil {
		if create == nil {
			s.mu.Unlock()
			return nil, kerr.InvalidProducerIDMapping
		}
		m, err := create()
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		e = &entry{m: m}
		s.txns[transactionalID] = e
	}
	s.mu.Unlock()
	e.mu.Lock()
	return e, nil
}

// persist appends next and, once it is durable, makes it e's state. e is
// locked by the caller. The write is the coordinator's, not the client's: it
// goes on when the client that asked goes away, as Kafka serves a request
// whose client has gone to its end (else a producer that sent EndTxn and
// vanished would leave PrepareCommit in the log and its transaction open
// here until it timed out), and ends only when the partition is unloaded or
// after Config.WriteTimeout.
func (s *shard) persist(e *entry, next Metadata) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.writeTimeout)
	defer cancel()
	key, value := Encode(next)
	if err := s.store.Append(ctx, []group.Record{{Key: key, Value: value}}); err != nil {
		return err
	}
	e.m = next
	return nil
}

// code is the error code of err for a client: a kerr error from a
// transition as it is, a Store error as the group coordinator maps it.
func code(err error) int16 { return group.AppendErrorCode(err) }

func (c *Coordinator) now() int64 { return c.cfg.Now().UnixMilli() }

// InitProducerID serves InitProducerID with a transactional id (the broker
// serves it without one). See [Metadata.InitProducerID]; an open transaction
// is fenced and aborted, and the client gets CONCURRENT_TRANSACTIONS until
// the abort is complete.
func (c *Coordinator) InitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	switch {
	case req.TransactionalID == nil || *req.TransactionalID == "":
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	case req.TransactionTimeoutMillis <= 0 || req.TransactionTimeoutMillis > c.cfg.MaxTimeoutMillis:
		resp.ErrorCode = kerr.InvalidTransactionTimeout.Code
		return resp
	case (req.ProducerID == -1) != (req.ProducerEpoch == -1):
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	id := *req.TransactionalID
	s := c.shardFor(id)
	if s == nil {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	allocate := func() (int64, error) {
		pid, err := c.cfg.AllocateProducerID(ctx)
		if err != nil {
			return 0, fmt.Errorf("txn: allocating a producer id: %w: %w", kerr.CoordinatorNotAvailable, err)
		}
		return pid, nil
	}
	e, err := s.lookup(id, func() (Metadata, error) {
		pid, err := allocate()
		return New(id, pid, req.TransactionTimeoutMillis, c.now()), err
	})
	if err != nil {
		resp.ErrorCode = code(err)
		return resp
	}
	defer e.mu.Unlock()
	next, err := e.m.InitProducerID(req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch, c.now(), allocate)
	if errors.Is(err, ErrOngoing) {
		err = c.fenceAndAbort(s, e)
		if err == nil {
			err = kerr.ConcurrentTransactions
		}
	}
	if err == nil {
		err = s.persist(e, next)
	}
	if err != nil {
		resp.ErrorCode = code(err)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = next.ProducerID, next.ProducerEpoch
	return resp
}

// fenceAndAbort bumps the epoch of e's open transaction and aborts it (e is
// locked): PrepareAbort with the bumped epoch is persisted, and the markers
// are written in the background.
func (c *Coordinator) fenceAndAbort(s *shard, e *entry) error {
	fenced, err := e.m.Fence()
	if err != nil {
		return err
	}
	abort, _, err := fenced.EndTxn(fenced.ProducerID, fenced.ProducerEpoch, false, c.now())
	if err != nil {
		return err
	}
	if err := s.persist(e, abort); err != nil {
		return err
	}
	c.complete(s, e, abort)
	return nil
}

// complete writes the markers of prepared (PrepareCommit or PrepareAbort) in
// the background, then persists its completion; both are retried until they
// succeed or the partition is unloaded. A partition that fences the markers
// (TRANSACTION_COORDINATOR_FENCED) ends it without completion, as Kafka's
// TransactionMarkerRequestCompletionHandler: a newer coordinator of the
// transaction owns it now.
func (c *Coordinator) complete(s *shard, e *entry, prepared Metadata) {
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		commit := prepared.State == PrepareCommit
		for {
			err := c.cfg.Markers.WriteMarkers(s.ctx, prepared.ProducerID, prepared.ProducerEpoch, commit, s.epoch, prepared.Partitions)
			if errors.Is(err, kerr.TransactionCoordinatorFenced) {
				c.log.Info("a newer coordinator owns the transaction; no longer writing its markers",
					"transactional_id", prepared.TransactionalID, "commit", commit, "coordinator_epoch", s.epoch, "err", err)
				return
			}
			if err == nil {
				err = c.finish(s, e, prepared)
			}
			if err == nil {
				return
			}
			c.log.Warn("completing a transaction", "transactional_id", prepared.TransactionalID, "commit", commit, "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(c.cfg.RetryBackoff):
			}
		}
	}()
}

// finish persists the completion of prepared, unless e has moved on.
func (c *Coordinator) finish(s *shard, e *entry, prepared Metadata) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m.State != prepared.State || e.m.ProducerEpoch != prepared.ProducerEpoch {
		return nil
	}
	done, err := e.m.Complete(c.now())
	if err != nil {
		return err
	}
	return s.persist(e, done)
}

// transition runs one client transition of an existing transactional id:
// NOT_COORDINATOR if this coordinator does not own it,
// INVALID_PRODUCER_ID_MAPPING if it is unknown; the next state is persisted
// when step says so, and prepared states have their markers written.
func (c *Coordinator) transition(transactionalID string, step func(Metadata) (Metadata, bool, error)) error {
	if transactionalID == "" {
		return kerr.InvalidRequest
	}
	s := c.shardFor(transactionalID)
	if s == nil {
		return kerr.NotCoordinator
	}
	e, err := s.lookup(transactionalID, nil)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	next, persist, err := step(e.m)
	if err != nil || !persist {
		return err
	}
	if err := s.persist(e, next); err != nil {
		return err
	}
	if next.State == PrepareCommit || next.State == PrepareAbort {
		c.complete(s, e, next)
	}
	return nil
}

// AddPartitionsToTxn serves AddPartitionsToTxn from a producer (versions 0
// to 3; version 4's batches from brokers are transaction.version 2). Every
// partition gets the same code. The caller answers partitions of unknown
// topics itself, as Kafka does (UNKNOWN_TOPIC_OR_PARTITION for those and
// OPERATION_NOT_ATTEMPTED for the others).
func (c *Coordinator) AddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	var parts []Partition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, Partition{Topic: t.Topic, Partition: p})
		}
	}
	err := c.transition(req.TransactionalID, func(m Metadata) (Metadata, bool, error) {
		return m.AddPartitions(req.ProducerID, req.ProducerEpoch, parts, c.now())
	})
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, code(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// Verify answers a partition leader asking whether parts are in the open
// transaction of producerID at epoch (see [Metadata.Verify]); it changes
// nothing. NOT_COORDINATOR when this coordinator does not own
// transactionalID, INVALID_PRODUCER_ID_MAPPING when it is unknown.
func (c *Coordinator) Verify(ctx context.Context, transactionalID string, producerID int64, epoch int16, parts []Partition) error {
	return c.transition(transactionalID, func(m Metadata) (Metadata, bool, error) {
		return m, false, m.Verify(producerID, epoch, parts)
	})
}

// AddOffsetsToTxn serves AddOffsetsToTxn: the group's __consumer_offsets
// partition joins the transaction, so that its TxnOffsetCommits get the
// transaction's marker.
func (c *Coordinator) AddOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	p := Partition{Topic: OffsetsTopic, Partition: group.PartitionFor(req.Group, c.cfg.OffsetsPartitions)}
	resp.ErrorCode = code(c.transition(req.TransactionalID, func(m Metadata) (Metadata, bool, error) {
		return m.AddPartitions(req.ProducerID, req.ProducerEpoch, []Partition{p}, c.now())
	}))
	return resp
}

// EndTxn serves EndTxn (versions 0 to 4): the answer comes once
// PrepareCommit or PrepareAbort is durable; the markers are written after it.
func (c *Coordinator) EndTxn(ctx context.Context, req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ErrorCode = code(c.transition(req.TransactionalID, func(m Metadata) (Metadata, bool, error) {
		return m.EndTxn(req.ProducerID, req.ProducerEpoch, req.Commit, c.now())
	}))
	return resp
}

// AbortTimedOut fences and aborts every open transaction of this coordinator
// that has outlived its timeout (Kafka's abortTimedOutTransactions, which the
// broker runs every transaction.abort.timed.out.transaction.cleanup.interval.ms).
func (c *Coordinator) AbortTimedOut(ctx context.Context) {
	c.mu.Lock()
	shards := make([]*shard, 0, len(c.shards))
	for _, s := range c.shards {
		shards = append(shards, s)
	}
	c.mu.Unlock()
	now := c.now()
	for _, s := range shards {
		s.mu.Lock()
		var all []*entry
		for _, e := range s.txns {
			all = append(all, e)
		}
		s.mu.Unlock()
		for _, e := range all {
			e.mu.Lock()
			if e.m.Expired(now) {
				if err := c.fenceAndAbort(s, e); err != nil {
					c.log.Warn("aborting a timed-out transaction", "transactional_id", e.m.TransactionalID, "err", err)
				}
			}
			e.mu.Unlock()
		}
	}
}
