package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kafkaguard/kafkaguard/internal/broker/safe"
)

// Coordinator is the group coordinator of one broker. It serves the groups of
// the __consumer_offsets partitions loaded into it. It is safe for concurrent
// use; create it with [NewCoordinator] and stop it with [Coordinator.Close].
type Coordinator struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	shards map[int32]*shard
	closed bool

	writers sync.WaitGroup
}

// NewCoordinator returns a coordinator that owns no offsets partition yet. A
// nil logger discards logs.
func NewCoordinator(cfg Config, logger *slog.Logger) *Coordinator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{
		cfg:    cfg.withDefaults(),
		log:    logger,
		shards: make(map[int32]*shard),
	}
}

type clientInfoKey struct{}

type clientInfo struct{ id, host string }

// WithClient returns a context carrying the client id (from the request
// header) and the client host of the connection a request came from. The
// coordinator uses them to name new members and to answer DescribeGroups, as
// Kafka does; the host is shown as given (Kafka shows "/10.0.0.1").
func WithClient(ctx context.Context, clientID, clientHost string) context.Context {
	return context.WithValue(ctx, clientInfoKey{}, clientInfo{clientID, clientHost})
}

func clientFrom(ctx context.Context) clientInfo {
	ci, _ := ctx.Value(clientInfoKey{}).(clientInfo)
	return ci
}

// Replay yields the records of an offsets partition, key and value, in offset
// order, until yield returns false. It returns an error if it could not read
// the partition to its end.
type Replay func(yield func(Record) bool) error

// Load makes this coordinator own offsets partition p. It replays the
// partition's records (key, value, in offset order) to rebuild committed
// offsets and group metadata, then serves the groups that map to p,
// persisting new records through store. Records it cannot decode are logged
// and skipped; if replay cannot read the partition to its end, Load fails and
// serves nothing from the partial state. Loading a partition that is already
// loaded replaces it: the old state is unloaded, and its appends have
// returned, before the replay starts.
func (c *Coordinator) Load(ctx context.Context, p int32, store Store, replay Replay) error {
	if p < 0 || p >= c.cfg.OffsetsPartitions {
		return fmt.Errorf("%w: %d not in [0, %d)", ErrBadPartition, p, c.cfg.OffsetsPartitions)
	}
	if store == nil {
		return errors.New("group: Load with a nil Store")
	}
	c.Unload(p)
	sh := newShard(c, p, store)
	if replay != nil {
		var n, bad int
		var ctxErr error
		readErr := replay(func(r Record) bool {
			if n++; n%1024 == 0 {
				if ctxErr = ctx.Err(); ctxErr != nil {
					return false
				}
			}
			if err := sh.replay(r); err != nil {
				bad++
				c.log.Warn("group: skipping undecodable record while loading",
					"partition", p, "record", n, "err", err)
			}
			return true
		})
		if ctxErr == nil {
			ctxErr = ctx.Err()
		}
		if ctxErr != nil {
			sh.cancel()
			return fmt.Errorf("group: loading offsets partition %d: %w", p, ctxErr)
		}
		if readErr != nil {
			sh.cancel()
			return fmt.Errorf("group: loading offsets partition %d: read %d records, then: %w", p, n, readErr)
		}
		c.log.Info("group: loaded offsets partition", "partition", p,
			"records", n, "skipped", bad, "groups", len(sh.groups))
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		sh.cancel()
		return ErrClosed
	}
	old := c.shards[p]
	c.shards[p] = sh
	sh.mu.Lock()
	sh.startLoaded()
	sh.mu.Unlock()
	c.writers.Add(1)
	go sh.run()
	c.mu.Unlock()

	if old != nil {
		old.shutdown(codeNotCoordinator)
	}
	return nil
}

// Unload stops owning offsets partition p, because leadership moved or the
// broker stops: parked JoinGroup and SyncGroup requests of its groups are
// answered NOT_COORDINATOR and its state is dropped. It returns once the
// Store.Append in flight, if any, has returned, so that a later Load replays
// every record this state acknowledged. Unloading a partition that is not
// loaded does nothing.
func (c *Coordinator) Unload(p int32) {
	c.mu.Lock()
	sh := c.shards[p]
	delete(c.shards, p)
	c.mu.Unlock()
	if sh != nil {
		sh.shutdown(codeNotCoordinator)
		<-sh.stopped
	}
}

// Owns reports whether groupID maps to an offsets partition loaded here.
func (c *Coordinator) Owns(groupID string) bool {
	_, code := c.shardFor(groupID)
	return code == 0
}

// Close unloads every partition, answering parked requests
// COORDINATOR_NOT_AVAILABLE, stops all timers and waits for in-flight
// Store.Append calls to return. Later requests get COORDINATOR_NOT_AVAILABLE.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.closed = true
	shards := c.shards
	c.shards = make(map[int32]*shard)
	c.mu.Unlock()
	for _, sh := range shards {
		sh.shutdown(codeCoordinatorNotAvailable)
	}
	c.writers.Wait()
}

// shardFor returns the loaded shard of groupID, or the code to answer.
func (c *Coordinator) shardFor(groupID string) (*shard, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, codeCoordinatorNotAvailable
	}
	sh := c.shards[PartitionFor(groupID, c.cfg.OffsetsPartitions)]
	if sh == nil {
		return nil, codeNotCoordinator
	}
	return sh, 0
}

// loadedShards returns the loaded shards in partition order, or false if the
// coordinator is closed.
func (c *Coordinator) loadedShards() ([]*shard, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, false
	}
	out := make([]*shard, 0, len(c.shards))
	for _, sh := range c.shards {
		out = append(out, sh)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].p < out[j].p })
	return out, true
}

// shard holds the groups of one loaded offsets partition. Its mutex guards
// every group in it; its writer goroutine runs the partition's persisted
// changes one at a time, in order.
type shard struct {
	c      *Coordinator
	p      int32
	store  Store
	ctx    context.Context // cancelled on unload; parent of every Append
	cancel context.CancelFunc

	mu     sync.Mutex
	groups map[string]*group
	// txnOffsets holds the pending transactional offset commits, by
	// producer id, then group id.
	txnOffsets map[int64]map[string]offsetMap
	// seq counts the records replayed and written, in log order (see
	// committed.seq).
	seq      int64
	unloaded bool
	code     int16 // what requests get once unloaded

	qmu     sync.Mutex
	queue   []*writeOp
	qclosed bool
	wake    chan struct{}
	stopped chan struct{} // closed when the writer goroutine returns
}

// writeOp is a change that must be persisted before it takes effect.
type writeOp struct {
	// prepare runs on the writer goroutine with sh.mu held, against the
	// state left by every earlier op. It returns the records to append and
	// finish, which runs with sh.mu held once the append returned (err is
	// its error), or at once with a nil error if there are no records.
	prepare func() (records []Record, finish func(err error))
	// abort runs, without locks, instead of prepare if the shard is
	// unloaded first; code is what the client should get. It may be nil.
	abort func(code int16)
	// batchable ops (offset commits) may share one append with the
	// batchable ops queued right after them: their prepare does not
	// depend on the effects of the ops before them in the batch.
	batchable bool
}

func newShard(c *Coordinator, p int32, store Store) *shard {
	ctx, cancel := context.WithCancel(context.Background())
	return &shard{
		c:       c,
		p:       p,
		store:   store,
		ctx:     ctx,
		cancel:  cancel,
		groups:  make(map[string]*group),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
}

func (sh *shard) now() time.Time { return sh.c.cfg.Now() }

// newGroup creates an Empty group and adds it, replacing any group of the
// same id.
func (sh *shard) newGroup(id string) *group {
	g := newGroupValue(id, sh.now())
	sh.groups[id] = g
	return g
}

// current reports whether g is still the live group of its id.
func (sh *shard) current(g *group) bool {
	return !sh.unloaded && sh.groups[g.id] == g
}

// dropIfUnused forgets g if it is still this shard's group of its id and
// holds nothing worth keeping (see group.unused), not even a pending
// transactional commit.
func (sh *shard) dropIfUnused(g *group) {
	if g.unused() && sh.groups[g.id] == g && !sh.groupHasTxnOffsets(g.id) {
		delete(sh.groups, g.id)
	}
}

// afterFunc runs fn with sh.mu held after d, unless the shard was unloaded.
func (sh *shard) afterFunc(d time.Duration, fn func()) *time.Timer {
	return sh.c.cfg.Clock.AfterFunc(d, func() {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		defer safe.Recover(sh.c.log, "group coordinator: timer", func(error) {})
		if !sh.unloaded {
			fn()
		}
	})
}

// startLoaded arms the session timers of members rebuilt from the log, as
// Kafka does when it finishes loading a partition.
func (sh *shard) startLoaded() {
	for _, g := range sh.groups {
		for _, m := range g.members {
			sh.scheduleHeartbeat(g, m, time.Duration(m.sessionTimeoutMs)*time.Millisecond)
		}
		if sh.c.cfg.MaxGroupSize > 0 && len(g.members) > sh.c.cfg.MaxGroupSize {
			sh.prepareRebalance(g)
		}
	}
}

// shutdown unloads the shard: parked requests get code, timers stop, queued
// writes are aborted with code.
func (sh *shard) shutdown(code int16) {
	sh.cancel()
	sh.mu.Lock()
	if !sh.unloaded {
		sh.unloaded = true
		sh.code = code
		for _, g := range sh.groups {
			sh.stopGroup(g, code)
		}
		sh.groups = make(map[string]*group)
	}
	sh.mu.Unlock()
	sh.qmu.Lock()
	sh.qclosed = true
	sh.qmu.Unlock()
	sh.signal()
}

// stopGroup stops g's timers and answers its parked requests with code.
func (sh *shard) stopGroup(g *group, code int16) {
	g.joinSeq++
	if g.joinTimer != nil {
		g.joinTimer.Stop()
	}
	g.syncSeq++
	if g.syncTimer != nil {
		g.syncTimer.Stop()
	}
	for id := range g.pending {
		g.removePending(id)
	}
	for _, m := range g.members {
		m.stopHeartbeat()
		sh.answerJoinError(m, m.id, code)
		sh.answerSyncError(m, code)
	}
}

func (sh *shard) signal() {
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// enqueue queues op for the writer; it is false if the shard is unloaded.
// It never blocks, so it may be called with sh.mu held.
func (sh *shard) enqueue(op *writeOp) bool {
	sh.qmu.Lock()
	if sh.qclosed {
		sh.qmu.Unlock()
		return false
	}
	sh.queue = append(sh.queue, op)
	sh.qmu.Unlock()
	sh.signal()
	return true
}

// run is the writer goroutine.
func (sh *shard) run() {
	defer sh.c.writers.Done()
	defer close(sh.stopped)
	for {
		ops, ok := sh.next()
		if !ok {
			return
		}
		sh.execute(ops)
	}
}

// maxBatch bounds how many batchable ops share one Store.Append.
const maxBatch = 64

// next waits for the next op, or for a run of consecutive batchable ops. It
// returns false once the shard is unloaded, after aborting what was queued.
func (sh *shard) next() ([]*writeOp, bool) {
	for {
		sh.qmu.Lock()
		if sh.qclosed {
			ops := sh.queue
			sh.queue = nil
			sh.qmu.Unlock()
			sh.mu.Lock()
			code := sh.code
			sh.mu.Unlock()
			for _, op := range ops {
				if op.abort != nil {
					op.abort(code)
				}
			}
			return nil, false
		}
		if len(sh.queue) > 0 {
			n := 1
			if sh.queue[0].batchable {
				for n < len(sh.queue) && n < maxBatch && sh.queue[n].batchable {
					n++
				}
			}
			ops := slices.Clone(sh.queue[:n])
			clear(sh.queue[:n])
			sh.queue = sh.queue[n:]
			sh.qmu.Unlock()
			return ops, true
		}
		sh.qmu.Unlock()
		<-sh.wake
	}
}

// execute prepares ops in order, appends all their records at once, and
// finishes them in order.
func (sh *shard) execute(ops []*writeOp) {
	sh.mu.Lock()
	if sh.unloaded {
		code := sh.code
		sh.mu.Unlock()
		for _, op := range ops {
			if op.abort != nil {
				op.abort(code)
			}
		}
		return
	}
	var records []Record
	finishes := make([]func(error), 0, len(ops))
	for _, op := range ops {
		recs, finish := sh.prepare(op)
		records = append(records, recs...)
		if finish != nil {
			finishes = append(finishes, finish)
		}
	}
	sh.mu.Unlock()

	var err error
	if len(records) > 0 {
		ctx, cancel := context.WithTimeout(sh.ctx, sh.c.cfg.CommitTimeout)
		err = sh.append(ctx, records)
		cancel()
		if err != nil {
			sh.c.log.Warn("group: appending to offsets partition failed",
				"partition", sh.p, "records", len(records), "err", err)
		}
	}
	if len(finishes) > 0 {
		sh.mu.Lock()
		for _, finish := range finishes {
			func() {
				defer safe.Recover(sh.c.log, "group coordinator: finishing a write", func(error) {})
				finish(err)
			}()
		}
		sh.mu.Unlock()
	}
}

// The writer runs request code (each op's prepare and finish) and the broker's Store; a panic
// in any of them is recovered (safe.Recover), so that it fails the requests concerned and the
// writer, the shard and the process go on.

// prepare runs op.prepare. If it panics, the op is answered UNKNOWN_SERVER_ERROR (through its
// abort) and adds nothing to the append.
func (sh *shard) prepare(op *writeOp) (recs []Record, finish func(error)) {
	defer safe.Recover(sh.c.log, "group coordinator: preparing a write", func(error) {
		recs, finish = nil, nil
		if op.abort != nil {
			// The panic may have come after prepare answered the op: then abort's second
			// answer (a second close of its channel) panics too, and that is recovered.
			defer safe.Recover(sh.c.log, "group coordinator: aborting a write that panicked", func(error) {})
			op.abort(codeUnknownServerError)
		}
	})
	return op.prepare()
}

// append appends records through the Store; a panic in it is returned as the append's error.
func (sh *shard) append(ctx context.Context, records []Record) (err error) {
	defer safe.Recover(sh.c.log, "group coordinator: Store.Append", func(perr error) { err = perr })
	return sh.store.Append(ctx, records)
}

// errorCode is the code for a failed append; once the shard is unloaded it
// is the unload code, since the client must look the coordinator up again.
func (sh *shard) errorCode(err error) int16 {
	if sh.unloaded {
		return sh.code
	}
	return AppendErrorCode(err)
}
