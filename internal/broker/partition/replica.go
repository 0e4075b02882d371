package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// Config tunes one replica.
type Config struct {
	BrokerID        int32
	Topic           string
	Partition       int32
	MinISR          int           // min.insync.replicas
	MaxMessageBytes int           // max.message.bytes: the largest batch accepted
	ReplicaLagMax   time.Duration // replica.lag.time.max.ms
	// HighWatermark is the replica's high watermark from the broker's checkpoint
	// (replication-offset-checkpoint); Open starts from it, kept within the log's offsets.
	HighWatermark int64
	Log           log.Config
	Logger        *slog.Logger
	// AlterISR asks the controller to change the ISR; leaderEpoch and partitionEpoch name the state
	// the change is based on. It may be slow or fail (an isolated broker cannot reach the
	// controller); the replica calls it without holding its lock and at most one at a time. An
	// error means the controller did not make the change; FENCED_LEADER_EPOCH,
	// INVALID_UPDATE_VERSION and UNKNOWN_TOPIC_OR_PARTITION mean a newer state is on its way to
	// Apply.
	AlterISR func(ctx context.Context, leaderEpoch, partitionEpoch int32, isr []int32) error
	// IsrEligible reports whether a broker may join the ISR: it is registered and not fenced,
	// as Kafka's isReplicaIsrEligible. Only an eligible follower outside the ISR holds the high
	// watermark while it is caught up. Nil means every broker is eligible.
	IsrEligible func(brokerID int32) bool
	Now         func() time.Time

	// UnsafeHWOnCommittedISR restores the rule this package had before it counted a pending ISR
	// expansion for the high watermark (issue 11, item 1): the high watermark and acks=all wait
	// for the committed ISR only, so a follower whose join is pending can be elected without
	// records the leader acknowledged. It exists only so that tests can re-create that loss (the
	// randomized replication test here, verify's random nemesis); never set it otherwise.
	UnsafeHWOnCommittedISR bool
	// VerifyTransactions makes Append refuse a producer's transactional batch, when the producer
	// has no transaction open on this partition, unless it carries a guard from
	// VerificationGuard that no marker of the producer has cleared since: the broker's check
	// with the transaction coordinator (KIP-890 part 1, see verify.go).
	VerifyTransactions bool
	// lockAcrossAppend restores, for tests and benchmarks only, the locking this package had
	// before appends left mu for the log write: mu held across the append and its fsync.
	lockAcrossAppend bool
}

// follower is the leader's view of one follower replica.
type follower struct {
	leo          int64     // the follower's log end offset, from its last fetch
	lastFetch    time.Time // when it last fetched
	leoAtFetch   int64     // the leader's LEO at that fetch
	lastCaughtUp time.Time // last time its fetch reached the leader's LEO as of its previous fetch
}

// ackWaiter is a produce request with acks=all waiting for the high watermark to pass it.
type ackWaiter struct {
	lastOffset int64
	done       chan error // buffered, receives exactly once
}

// Replica is one broker's replica of one partition: its log, its role, and, as leader, the ISR
// bookkeeping, high watermark, idempotent-producer state and the produce requests waiting for
// acks=all. Every field below mu is owned by mu; the hot produce and fetch paths take only this
// lock, and never hold it across a write to the log, so that, as the log promises, a fetch never
// waits behind an append's write, fsync, segment roll or epoch checkpoint. A Replica is safe for
// concurrent use.
//
// Changes to the log (appends as leader and as follower, truncations) are serialised on
// appendMu, which is taken before mu. A produce checks and deduplicates under mu, writes holding
// appendMu only, and takes mu again to publish its producer state and move the high watermark;
// holding appendMu until its producer state is published, it keeps that state and the log's
// offsets in step for the next append (a retry of a batch still being written waits, and is then
// found as a duplicate), and a follower's truncation after a leader change comes after it. The
// high watermark cannot pass what an append has not finished: the log publishes its end offset
// only once the data is written and, if configured, fsynced, and until the append has recorded
// its producer and transaction state the high watermark stays below its batch (writingAt),
// though followers may already fetch it. (A follower, which serves no reads, keeps mu across its
// replicated appends and truncations.)
type Replica struct {
	cfg       Config
	log       *log.Log
	lg        *slog.Logger
	validator *log.ProduceValidator

	appendMu sync.Mutex // serialises changes to the log; taken before mu

	mu          sync.Mutex
	leader      int32 // meta.NoLeader when offline or unknown
	leaderEpoch int32
	partEpoch   int32
	replicas    []int32
	isr         []int32
	hw          int64
	followers   map[int32]*follower
	producers   producers
	txns        txns
	verified    verifications // producer id -> guard of its verification in progress (verify.go)
	guards      uint64        // the last guard handed out
	waiters     []*ackWaiter
	watchers    map[chan struct{}]struct{}
	altering    bool         // an AlterISR call is in flight
	proposal    *isrProposal // the ISR change pending at the controller, nil when none
	closed      bool
	// writingAt is the base offset of the leader's append whose batch may be in the log but
	// whose producer and transaction state is not recorded yet, -1 when none. The high
	// watermark stays at or below it: a read_committed reader must not read a transactional
	// batch before the transaction it opens is known, or it takes its records for committed.
	writingAt int64

	activeSeg int64 // base offset of the log's active segment at the last snapshot check
	// scanned counts the batches the last load of producer state read from the log (tests),
	// and scannedAborts holds the aborts that scan found, for the .txnindex.
	scanned       int
	scannedAborts []log.AbortedTxn
}

// Open opens (recovering if needed) the replica's log in dir and loads idempotent-producer and
// transaction state from its latest producer snapshot, the .txnindex files and the log after
// the snapshot (see loadTxnStateLocked). The replica starts with no role; Apply gives it one.
func Open(dir string, cfg Config) (*Replica, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	lg := cfg.Logger.With("topic", cfg.Topic, "partition", cfg.Partition)
	l, err := log.Open(dir, cfg.Log, lg)
	if err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", cfg.Topic, cfg.Partition, err)
	}
	r := &Replica{
		cfg: cfg, log: l, lg: lg,
		// As Kafka's Partition.createLog: the checkpointed high watermark, within the log.
		hw:        min(max(cfg.HighWatermark, l.StartOffset()), l.EndOffset()),
		validator: log.NewProduceValidator(cfg.Now),
		leader:    meta.NoLeader,
		followers: map[int32]*follower{},
		producers: producers{},
		txns:      newTxns(),
		verified:  verifications{},
		watchers:  map[chan struct{}]struct{}{},
		writingAt: -1,
	}
	if err := r.loadTxnStateLocked(); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("partition %s-%d: rebuild producer state: %w", cfg.Topic, cfg.Partition, err)
	}
	return r, nil
}

// markerOf decodes a transaction marker. A control batch it cannot read
// counts as an abort of coordinator epoch -1, so that read_committed never
// returns what it cannot prove committed.
func (r *Replica) markerOf(h log.BatchHeader, batch []byte) records.Marker {
	m, err := records.MarkerOf(batch)
	if err != nil {
		r.lg.Error("unreadable transaction marker, taken as an abort", "offset", h.BaseOffset, "producer_id", h.ProducerID, "err", err)
		return records.Marker{CoordinatorEpoch: -1}
	}
	return m
}

// Log returns the replica's log.
func (r *Replica) Log() *log.Log { return r.log }

// SetConfig changes the tunables that may change at runtime (topic configs).
func (r *Replica) SetConfig(minISR, maxMessageBytes int) {
	r.mu.Lock()
	r.cfg.MinISR, r.cfg.MaxMessageBytes = minISR, maxMessageBytes
	r.mu.Unlock()
}

// State is a snapshot of a replica, for the control API and tests.
type State struct {
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr"`
	Replicas    []int32 `json:"replicas"`
	HW          int64   `json:"hw"`
	LEO         int64   `json:"leo"`
	LogStart    int64   `json:"log_start"`
}

// State returns the replica's current state.
func (r *Replica) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return State{
		Leader: r.leader, LeaderEpoch: r.leaderEpoch,
		ISR: slices.Clone(r.isr), Replicas: slices.Clone(r.replicas),
		HW: r.hw, LEO: r.log.EndOffset(), LogStart: r.log.StartOffset(),
	}
}

// ApplyRetention applies the topic's retention to the log, deleting only segments wholly below
// this replica's high watermark (Kafka's rule: a leader's or a follower's retention never
// removes records consumers cannot read yet). It returns the number of segments deleted.
func (r *Replica) ApplyRetention(now time.Time) (int, error) {
	r.mu.Lock()
	hw := r.hw
	r.mu.Unlock()
	n, err := r.log.ApplyRetention(now, hw)
	if n > 0 {
		r.mu.Lock()
		r.txns.trimBelow(r.log.StartOffset())
		r.mu.Unlock()
	}
	return n, err
}

// IsLeader reports whether this replica leads its partition now.
func (r *Replica) IsLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader == r.cfg.BrokerID
}

// Apply installs the controller's state for this partition: it makes the replica leader or
// follower, or updates the ISR. It returns true when the replica just became a follower (the
// caller then truncates it against the new leader and starts fetching).
func (r *Replica) Apply(st meta.Partition) (becameFollower bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	self := r.cfg.BrokerID
	wasLeader := r.leader == self
	newEpoch := st.LeaderEpoch != r.leaderEpoch || st.Leader != r.leader
	r.endProposalLocked(st.LeaderEpoch, st.Epoch)
	r.replicas = slices.Clone(st.Replicas)
	r.isr = slices.Clone(st.ISR)
	r.partEpoch = st.Epoch
	switch {
	case st.Leader == self && (!wasLeader || newEpoch):
		r.leader, r.leaderEpoch = st.Leader, st.LeaderEpoch
		now := r.cfg.Now()
		r.followers = map[int32]*follower{}
		for _, id := range st.Replicas {
			if id == self {
				continue
			}
			// As in Kafka, a new leader treats ISR followers as caught up now: they get one lag
			// bound to show they are alive before the ISR shrinks. The others have not caught up
			// until they fetch.
			f := &follower{leo: -1, lastFetch: now}
			if slices.Contains(st.ISR, id) {
				f.lastCaughtUp = now
			}
			r.followers[id] = f
		}
		r.lg.Info("became leader", "leader_epoch", st.LeaderEpoch, "isr", st.ISR, "leo", r.log.EndOffset(), "hw", r.hw)
		r.maybeAdvanceHWLocked()
	case st.Leader == self:
		r.maybeAdvanceHWLocked() // ISR change
		r.completeWaitersLocked()
	default:
		if wasLeader || newEpoch {
			r.failWaitersLocked(fmt.Errorf("partition %s-%d moved to leader %d: %w", r.cfg.Topic, r.cfg.Partition, st.Leader, kerr.NotLeaderForPartition))
			r.lg.Info("became follower", "leader", st.Leader, "leader_epoch", st.LeaderEpoch, "leo", r.log.EndOffset(), "hw", r.hw)
		}
		r.leader, r.leaderEpoch = st.Leader, st.LeaderEpoch
		becameFollower = newEpoch && st.Leader != meta.NoLeader
		r.notifyLocked()
	}
	return becameFollower
}

// Stop makes the replica leaderless without closing its log (the broker lost its session).
func (r *Replica) Stop(reason error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leader = meta.NoLeader
	r.failWaitersLocked(reason)
}

// Close fails pending requests, snapshots producer state at the log end (a clean shutdown, so
// that the next Open scans nothing) and closes the log (flushing it).
func (r *Replica) Close() error {
	r.stop()
	r.appendMu.Lock()
	r.mu.Lock()
	end, snap := r.log.EndOffset(), encodeProducerSnapshot(r.snapshotLocked())
	r.mu.Unlock()
	if err := r.log.Sync(); err == nil {
		// The .txnindex files are flushed: the snapshot may vouch for them.
		r.writeSnapshot(end, snap)
	}
	r.appendMu.Unlock()
	return r.log.Close()
}

// Abandon fails pending requests and drops the log as a crash would: nothing is flushed or
// written (see log.Log.Abandon).
func (r *Replica) Abandon() {
	r.stop()
	r.log.Abandon()
}

func (r *Replica) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.leader = meta.NoLeader
	r.failWaitersLocked(fmt.Errorf("partition %s-%d: replica closed: %w", r.cfg.Topic, r.cfg.Partition, kerr.NotLeaderForPartition))
}

// AppendResult is the outcome of a successful produce.
type AppendResult struct {
	BaseOffset     int64
	LogStartOffset int64
	Duplicate      bool // an idempotent retry of a batch already in the log
}

// Append handles a produce to this partition as leader: it validates the batch as Kafka's
// LogValidator does (exactly one batch, its records read and, if compressed, decompressed), checks
// min.insync.replicas for acks=all, deduplicates idempotent retries, appends, and for acks=all
// waits until the high watermark passes the batch (or ctx ends: REQUEST_TIMED_OUT). Errors are
// kerr errors wrapped with context, so errors.Is and kerr.ErrorForCode-style mapping work.
func (r *Replica) Append(ctx context.Context, batches []byte, acks int16) (AppendResult, error) {
	return r.AppendVerified(ctx, batches, acks, 0)
}

// AppendVerified is Append of a batch verified with the transaction coordinator under guard
// (VerificationGuard); 0 is no guard.
func (r *Replica) AppendVerified(ctx context.Context, batches []byte, acks int16, guard uint64) (AppendResult, error) {
	r.mu.Lock()
	maxBytes := r.cfg.MaxMessageBytes
	r.mu.Unlock()
	h, err := r.validator.Validate(batches, maxBytes)
	switch {
	case errors.Is(err, log.ErrBatchTooLarge):
		return AppendResult{}, fmt.Errorf("%w: %w", kerr.MessageTooLarge, err)
	case errors.Is(err, log.ErrInvalidRecord):
		return AppendResult{}, fmt.Errorf("%w: %w", kerr.InvalidRecord, err)
	case errors.Is(err, log.ErrInvalidTimestamp):
		return AppendResult{}, fmt.Errorf("%w: %w", kerr.InvalidTimestamp, err)
	case err != nil:
		return AppendResult{}, fmt.Errorf("%w: %w", kerr.CorruptMessage, err)
	}
	res, last, epoch, err := r.write(batches, h, acks, false, guard)
	if err != nil || acks != -1 {
		return res, err
	}
	return res, r.waitHW(ctx, last, epoch)
}

// AppendTxnOffsets appends one transactional batch that the group coordinator wrote for a
// producer (a TxnOffsetCommit, as Kafka's AppendOrigin.COORDINATOR): it carries no sequence, so
// only the producer's epoch is checked (an older one is INVALID_PRODUCER_EPOCH), and it returns
// once the high watermark passes it (acks=all). The batch opens the producer's transaction on
// this partition, as a client's would, until its marker.
func (r *Replica) AppendTxnOffsets(ctx context.Context, batch []byte) error {
	h, err := log.ParseBatchHeader(batch)
	if err != nil {
		return fmt.Errorf("%s-%d: transactional offsets: %w: %w", r.cfg.Topic, r.cfg.Partition, kerr.CorruptMessage, err)
	}
	if !h.IsTransactional() || h.IsControl() || h.ProducerID < 0 {
		return fmt.Errorf("%s-%d: transactional offsets: not a transactional data batch: %w", r.cfg.Topic, r.cfg.Partition, kerr.InvalidRecord)
	}
	_, last, epoch, err := r.write(batch, h, -1, true, 0)
	if err != nil {
		return err
	}
	return r.waitHW(ctx, last, epoch)
}

// write is Append after validation: it checks leadership and min.insync.replicas, deduplicates
// and appends h's batch. It returns the result, the batch's last offset and the leader epoch it
// was appended (or found) in. It holds appendMu throughout, and mu except while the log writes.
func (r *Replica) write(batch []byte, h log.BatchHeader, acks int16, bySelf bool, guard uint64) (res AppendResult, last int64, epoch int32, err error) {
	var marker records.Marker
	if h.IsControl() {
		marker = r.markerOf(h, batch)
	}
	r.appendMu.Lock()
	defer r.appendMu.Unlock()
	r.mu.Lock()
	if r.leader != r.cfg.BrokerID || r.closed {
		leader := r.leader
		r.mu.Unlock()
		return res, 0, 0, fmt.Errorf("broker %d is not the leader of %s-%d (leader %d): %w", r.cfg.BrokerID, r.cfg.Topic, r.cfg.Partition, leader, kerr.NotLeaderForPartition)
	}
	if minISR := r.effectiveMinISRLocked(); acks == -1 && len(r.isr) < minISR {
		isr := slices.Clone(r.isr)
		r.mu.Unlock()
		return res, 0, 0, fmt.Errorf("%s-%d: ISR %v is smaller than min.insync.replicas=%d: %w", r.cfg.Topic, r.cfg.Partition, isr, minISR, kerr.NotEnoughReplicas)
	}
	err = r.checkVerifiedLocked(h, bySelf, guard)
	var dup *batchMeta
	if err == nil {
		dup, err = r.producers.check(h, bySelf)
	}
	if err == nil && h.IsControl() {
		err = r.txns.checkCoordinatorEpoch(h.ProducerID, marker.CoordinatorEpoch)
	}
	if err != nil {
		r.mu.Unlock()
		return res, 0, 0, fmt.Errorf("%s-%d: %w", r.cfg.Topic, r.cfg.Partition, err)
	}
	epoch = r.leaderEpoch
	if dup != nil {
		// A retry of an idempotent batch gets the offsets it was first written at, and is not
		// written again.
		res = AppendResult{BaseOffset: dup.firstOffset, LogStartOffset: r.log.StartOffset(), Duplicate: true}
		r.mu.Unlock()
		return res, dup.lastOffset, epoch, nil
	}
	r.writingAt = r.log.EndOffset() // appendMu keeps it the batch's base offset
	if !r.cfg.lockAcrossAppend {
		r.mu.Unlock()
	}
	// The batch was validated above: the log does not compute its CRC again, and it sets the
	// header's assigned offset. Leadership may change while the log writes: the append then
	// counts as done before the change (its batch carries the old epoch, a truncation waits for
	// appendMu, and an acks=all wait in the old epoch fails).
	headers := []log.BatchHeader{h}
	base, err := r.log.AppendValidated(batch, headers, epoch)
	if !r.cfg.lockAcrossAppend {
		r.mu.Lock()
	}
	r.writingAt = -1
	if err != nil {
		closed := r.closed
		r.mu.Unlock()
		if closed {
			// Close came between the checks and the write, and closed the log first.
			return res, 0, 0, fmt.Errorf("%s-%d: replica closed during the append: %w", r.cfg.Topic, r.cfg.Partition, kerr.NotLeaderForPartition)
		}
		return res, 0, 0, fmt.Errorf("%s-%d: append: %w: %w", r.cfg.Topic, r.cfg.Partition, kerr.KafkaStorageError, err)
	}
	// Producer state follows the log whatever happened meanwhile: the batch is in it.
	r.producers.update(headers[0])
	abort, aborted := r.txns.observeMarker(headers[0], marker)
	if headers[0].IsControl() {
		delete(r.verified, headers[0].ProducerID)
	}
	var snap []byte
	snapAt := r.log.EndOffset()
	if r.rolledLocked() {
		snap = encodeProducerSnapshot(r.snapshotLocked())
	}
	r.maybeAdvanceHWLocked()
	r.notifyLocked()
	startOffset := r.log.StartOffset()
	r.mu.Unlock()
	// The transaction files are written holding appendMu only, as the log is.
	r.persistTxnState(abort, aborted, snapAt, snap)
	return AppendResult{BaseOffset: base, LogStartOffset: startOffset}, headers[0].LastOffset(), epoch, nil
}

// persistTxnState writes what an append changed in the transaction files: the entry of an
// abort to its segment's .txnindex, and the snapshot taken at a roll. Failures are logged:
// Open checks both files and rebuilds them from the log when they fall short.
func (r *Replica) persistTxnState(abort log.AbortedTxn, aborted bool, snapAt int64, snap []byte) {
	if aborted {
		if err := r.log.AppendAbortedTxn(abort); err != nil {
			r.lg.Warn("cannot write the transaction index", "marker", abort.LastOffset, "err", err)
		}
	}
	if snap != nil {
		r.writeSnapshot(snapAt, snap)
	}
}

// waitHW waits until the high watermark is above lastOffset, which was appended (or found) while
// this replica led in leaderEpoch. A leader change fails the wait, including one that came
// between the append and the wait: waiters are only failed by the change itself.
func (r *Replica) waitHW(ctx context.Context, lastOffset int64, leaderEpoch int32) error {
	r.mu.Lock()
	if r.hw > lastOffset {
		err := r.afterAppendCheckLocked()
		r.mu.Unlock()
		return err
	}
	if r.leader != r.cfg.BrokerID || r.leaderEpoch != leaderEpoch || r.closed {
		leader := r.leader
		r.mu.Unlock()
		return fmt.Errorf("%s-%d moved to leader %d before offset %d was replicated: %w", r.cfg.Topic, r.cfg.Partition, leader, lastOffset, kerr.NotLeaderForPartition)
	}
	w := &ackWaiter{lastOffset: lastOffset, done: make(chan error, 1)}
	r.waiters = append(r.waiters, w)
	r.mu.Unlock()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		r.mu.Lock()
		r.waiters = slices.DeleteFunc(r.waiters, func(x *ackWaiter) bool { return x == w })
		r.mu.Unlock()
		select {
		case err := <-w.done: // completed meanwhile
			return err
		default:
		}
		return fmt.Errorf("%s-%d: offset %d not replicated to the ISR in time: %w", r.cfg.Topic, r.cfg.Partition, lastOffset, kerr.RequestTimedOut)
	}
}

// afterAppendCheckLocked is the answer to an acks=all produce the high watermark has passed:
// as Kafka's checkEnoughReplicasReachOffset, an error if the maximal ISR is below
// min.insync.replicas by then.
func (r *Replica) afterAppendCheckLocked() error {
	if isr, minISR := r.maximalISRLocked(), r.effectiveMinISRLocked(); len(isr) < minISR {
		return fmt.Errorf("%s-%d: ISR %v shrank below min.insync.replicas=%d after the append: %w", r.cfg.Topic, r.cfg.Partition, isr, minISR, kerr.NotEnoughReplicasAfterAppend)
	}
	return nil
}

func (r *Replica) completeWaitersLocked() {
	kept := r.waiters[:0]
	for _, w := range r.waiters {
		if w.lastOffset < r.hw {
			w.done <- r.afterAppendCheckLocked()
		} else {
			kept = append(kept, w)
		}
	}
	clear(r.waiters[len(kept):])
	r.waiters = kept
}

func (r *Replica) failWaitersLocked(err error) {
	for _, w := range r.waiters {
		w.done <- err
	}
	r.waiters = nil
	r.notifyLocked()
}

// maybeAdvanceHWLocked recomputes the high watermark as Kafka's maybeIncrementLeaderHW does: the
// smallest log end offset among the leader and the followers of the maximal ISR (the committed
// ISR and a pending expansion), and of the followers caught up and about to join it; if it moved
// forward, it completes acks=all waiters. While the committed ISR is smaller than
// min.insync.replicas the high watermark does not move (Kafka >= 3.7, KAFKA-15583): what a
// leader alone took with acks=1 is not committed until enough replicas have it. Nor does it pass
// the batch of an append still recording its state (writingAt).
func (r *Replica) maybeAdvanceHWLocked() {
	if r.leader != r.cfg.BrokerID || len(r.isr) < r.effectiveMinISRLocked() {
		return
	}
	leo := r.log.EndOffset()
	hw := leo
	counted := r.maximalISRLocked()
	for _, id := range counted {
		if id == r.cfg.BrokerID {
			continue
		}
		f := r.followers[id]
		if f == nil || f.leo < 0 {
			return // an ISR member we have not heard from yet holds the HW where it is
		}
		hw = min(hw, f.leo)
	}
	if !r.cfg.UnsafeHWOnCommittedISR {
		now := r.cfg.Now()
		for id, f := range r.followers {
			if f.leo >= 0 && !slices.Contains(counted, id) && r.caughtUpLocked(f, leo, now) && r.isrEligible(id) {
				hw = min(hw, f.leo)
			}
		}
	}
	if r.writingAt >= 0 {
		hw = min(hw, r.writingAt)
	}
	if hw > r.hw {
		r.hw = hw
		r.txns.forgetStable(hw)
		r.completeWaitersLocked()
		r.notifyLocked()
	}
}

// isrEligible reports whether broker id may join the ISR (Config.IsrEligible).
func (r *Replica) isrEligible(id int32) bool {
	return r.cfg.IsrEligible == nil || r.cfg.IsrEligible(id)
}

// HighWatermark returns the high watermark: offsets below it are committed.
func (r *Replica) HighWatermark() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hw
}

// Watch registers ch to receive a non-blocking signal whenever the replica's data or high
// watermark changes; the returned func unregisters it. Fetch long-polls use it.
func (r *Replica) Watch(ch chan struct{}) (cancel func()) {
	r.mu.Lock()
	r.watchers[ch] = struct{}{}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.watchers, ch)
		r.mu.Unlock()
	}
}

func (r *Replica) notifyLocked() {
	for ch := range r.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
