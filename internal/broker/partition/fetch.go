package partition

import (
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/records"
)

// ReadResult is what a fetch of one partition returns.
type ReadResult struct {
	Records          []byte // whole record batches, possibly empty
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	LogEndOffset     int64
	// DivergingEpoch, when not nil, says the fetcher's log diverges from the leader's (KIP-320):
	// nothing was read, and the fetcher must truncate to at most DivergingEpoch.EndOffset.
	DivergingEpoch *EpochEndOffset
	// AbortedTransactions, for a read_committed fetch, are the aborted transactions whose
	// records the consumer must skip in what was read (empty, not nil, when there are none).
	AbortedTransactions []AbortedTxn
}

// EpochEndOffset is where a leader epoch ends in the leader's log: the start offset of the
// next epoch, or the log end for the latest.
type EpochEndOffset struct {
	Epoch     int32
	EndOffset int64
}

// FetchRequest describes one partition of a Fetch request.
type FetchRequest struct {
	Offset             int64
	MaxBytes           int
	ReplicaID          int32 // >= 0 for a follower's fetch, -1 for a consumer
	CurrentLeaderEpoch int32 // -1 when the client does not know it
	// HasLastFetchedEpoch says LastFetchedEpoch is set: the epoch of the last batch the fetcher
	// holds (Fetch v12+), which the leader checks against its own epoch history.
	HasLastFetchedEpoch bool
	LastFetchedEpoch    int32
	// ReadCommitted is a consumer's isolation_level=read_committed: it reads only below the
	// last stable offset, and gets the aborted transactions of what it read.
	ReadCommitted bool
}

// Read serves a fetch. A consumer (ReplicaID < 0) reads only below the high watermark, from the
// leader, or with ReadCommitted below the last stable offset. A follower (one of the partition's other replicas) reads up to the log end, and its
// fetch, once read, reports its log end offset: the leader updates its view, may add it back
// to the ISR, and advances the high watermark. A failed read changes nothing, as in Kafka, nor
// does a fetch whose last fetched epoch diverges from the leader's history: it gets
// ReadResult.DivergingEpoch and no records.
func (r *Replica) Read(req FetchRequest) (ReadResult, error) {
	res, limit, epoch, err := r.beginRead(req)
	if err != nil || res.DivergingEpoch != nil {
		return res, err
	}
	// The log is read outside the lock: it is safe for concurrent use, and reads copy.
	recs, err := r.log.Read(req.Offset, req.MaxBytes, limit)
	if err != nil {
		return res, r.readError(req, res, err)
	}
	if err := r.endRead(req, res, epoch); err != nil {
		return res, err
	}
	res.Records = recs
	return res, nil
}

// ReadSlices is Read without the copy, for sending with sendfile: it returns the same result
// with Records nil and, instead, the segment file ranges that hold the batches Read would
// return (see log.ReadSlices). The caller must release the slices (log.ReleaseSlices) once it
// has sent them; until then they keep their bytes even if the log is truncated or deleted.
func (r *Replica) ReadSlices(req FetchRequest) (ReadResult, []log.FileSlice, error) {
	res, limit, epoch, err := r.beginRead(req)
	if err != nil || res.DivergingEpoch != nil {
		return res, nil, err
	}
	ss, err := r.log.ReadSlices(req.Offset, req.MaxBytes, limit)
	if err != nil {
		return res, nil, r.readError(req, res, err)
	}
	if err := r.endRead(req, res, epoch); err != nil {
		log.ReleaseSlices(ss)
		return res, nil, err
	}
	return res, ss, nil
}

// beginRead does what every fetch does under the lock before reading the log: check leadership,
// epoch and, for a follower, that it is one of the replicas; take the high watermark, log start
// and end; and check the last fetched epoch. It returns the result without records (with
// DivergingEpoch set when the fetcher's log diverges: then nothing is to be read), the offset the
// read must stay below (the high watermark for a consumer, the log end for a follower) and the
// leader epoch.
func (r *Replica) beginRead(req FetchRequest) (ReadResult, int64, int32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkLeaderLocked(req.CurrentLeaderEpoch); err != nil {
		return ReadResult{}, 0, 0, err
	}
	if req.ReplicaID >= 0 && (req.ReplicaID == r.cfg.BrokerID || !slices.Contains(r.replicas, req.ReplicaID)) {
		// As Kafka's Partition.followerReplicaOrThrow: a fetch that names its epoch gets
		// UNKNOWN_LEADER_EPOCH (the replica set may not have reached this leader yet), one that
		// does not, NOT_LEADER_OR_FOLLOWER.
		code := kerr.NotLeaderForPartition
		if req.CurrentLeaderEpoch >= 0 {
			code = kerr.UnknownLeaderEpoch
		}
		return ReadResult{}, 0, 0, fmt.Errorf("%s-%d: broker %d is not a follower of replicas %v in leader epoch %d: %w",
			r.cfg.Topic, r.cfg.Partition, req.ReplicaID, r.replicas, r.leaderEpoch, code)
	}
	leo := r.log.EndOffset()
	lso := r.txns.lso(r.hw)
	res := ReadResult{HighWatermark: r.hw, LastStableOffset: lso, LogStartOffset: r.log.StartOffset(), LogEndOffset: leo}
	if req.HasLastFetchedEpoch {
		div, err := r.divergence(req, res)
		if err != nil {
			return ReadResult{}, 0, 0, err
		}
		res.DivergingEpoch = div
	}
	limit := r.hw
	switch {
	case req.ReplicaID >= 0:
		limit = leo
	case req.ReadCommitted:
		limit = lso
		res.AbortedTransactions = append([]AbortedTxn{}, r.txns.abortedIn(req.Offset, limit)...)
	}
	return res, limit, r.leaderEpoch, nil
}

// divergence checks the fetcher's last fetched epoch against this leader's epoch history, as
// Kafka's Partition.readRecords does (KIP-320): it returns where the fetcher must truncate to
// when its log diverges (the epoch is unknown here, or ends here below the fetch offset), and
// OFFSET_OUT_OF_RANGE when the leader's log holds no epoch at all or the offset is below the log
// start.
func (r *Replica) divergence(req FetchRequest, res ReadResult) (*EpochEndOffset, error) {
	epoch, end := r.log.EpochEndOffset(req.LastFetchedEpoch)
	if first, start := r.log.FirstEpoch(); epoch < 0 && first >= 0 {
		// Older than every epoch here: as in Kafka's LeaderEpochFileCache, it ends where the
		// first known epoch starts.
		epoch, end = req.LastFetchedEpoch, start
	}
	if epoch < 0 || end < 0 {
		return nil, fmt.Errorf("%s-%d: no leader epoch at or below the last fetched epoch %d: %w", r.cfg.Topic, r.cfg.Partition, req.LastFetchedEpoch, kerr.OffsetOutOfRange)
	}
	if req.Offset < res.LogStartOffset {
		return nil, fmt.Errorf("%s-%d: offset %d below the log start %d: %w", r.cfg.Topic, r.cfg.Partition, req.Offset, res.LogStartOffset, kerr.OffsetOutOfRange)
	}
	if epoch < req.LastFetchedEpoch || end < req.Offset {
		return &EpochEndOffset{Epoch: epoch, EndOffset: end}, nil
	}
	return nil, nil
}

// endRead records a follower's successful fetch at req.Offset, its log end offset, against the
// leader's log end res.LogEndOffset as of the read. It fails the fetch if leadership moved since
// beginRead, in leader epoch epoch: what was read is then no position to record.
func (r *Replica) endRead(req FetchRequest, res ReadResult, epoch int32) error {
	if req.ReplicaID < 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader != r.cfg.BrokerID || r.leaderEpoch != epoch || r.closed {
		return fmt.Errorf("%s-%d: leadership moved during the fetch (leader %d, epoch %d): %w", r.cfg.Topic, r.cfg.Partition, r.leader, r.leaderEpoch, kerr.NotLeaderForPartition)
	}
	r.updateFollowerLocked(req.ReplicaID, req.Offset, res.LogEndOffset)
	return nil
}

// readError maps a log read failure to the error a fetch returns.
func (r *Replica) readError(req FetchRequest, res ReadResult, err error) error {
	if errors.Is(err, log.ErrOffsetOutOfRange) {
		return fmt.Errorf("%s-%d: offset %d outside [%d, %d]: %w", r.cfg.Topic, r.cfg.Partition, req.Offset, res.LogStartOffset, res.LogEndOffset, kerr.OffsetOutOfRange)
	}
	return fmt.Errorf("%s-%d: read: %w: %w", r.cfg.Topic, r.cfg.Partition, kerr.KafkaStorageError, err)
}

// checkLeaderLocked fails a request that is not for the current leader and epoch, with the
// errors Kafka clients react to (refresh metadata, or validate their position).
func (r *Replica) checkLeaderLocked(epoch int32) error {
	if r.leader != r.cfg.BrokerID || r.closed {
		return fmt.Errorf("broker %d does not lead %s-%d: %w", r.cfg.BrokerID, r.cfg.Topic, r.cfg.Partition, kerr.NotLeaderForPartition)
	}
	switch {
	case epoch < 0:
	case epoch < r.leaderEpoch:
		return fmt.Errorf("%s-%d: leader epoch %d is older than %d: %w", r.cfg.Topic, r.cfg.Partition, epoch, r.leaderEpoch, kerr.FencedLeaderEpoch)
	case epoch > r.leaderEpoch:
		return fmt.Errorf("%s-%d: leader epoch %d is newer than %d: %w", r.cfg.Topic, r.cfg.Partition, epoch, r.leaderEpoch, kerr.UnknownLeaderEpoch)
	}
	return nil
}

// updateFollowerLocked records a follower's fetch at offset (its log end offset).
func (r *Replica) updateFollowerLocked(id int32, offset, leo int64) {
	f := r.followers[id]
	if f == nil {
		if !slices.Contains(r.replicas, id) {
			return
		}
		f = &follower{}
		r.followers[id] = f
	}
	now := r.cfg.Now()
	switch {
	case offset >= leo:
		f.lastCaughtUp = now
	case offset >= f.leoAtFetch && !f.lastFetch.IsZero():
		f.lastCaughtUp = f.lastFetch
	}
	f.leo, f.leoAtFetch, f.lastFetch = offset, leo, now
	if !slices.Contains(r.isr, id) && r.proposal == nil && offset >= r.hw && offset >= r.epochStartLocked() {
		r.proposeISRLocked(append(slices.Clone(r.isr), id))
	}
	r.maybeAdvanceHWLocked()
}

// epochStartLocked is the first offset of the current leader epoch: a follower rejoins the ISR
// only once it has everything the previous leaders wrote.
func (r *Replica) epochStartLocked() int64 {
	_, end := r.log.EpochEndOffset(r.leaderEpoch - 1)
	if end < 0 {
		return 0
	}
	return end
}

// CheckISR shrinks the ISR by the followers that are not caught up (Kafka's
// getOutOfSyncReplicas): a follower stays while its last fetch reached the leader's log end as
// it is now, however long ago (an idle partition), or while it caught up within the lag bound.
// Nothing is proposed while another ISR change is pending. The broker calls it periodically for
// the partitions it leads.
func (r *Replica) CheckISR() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader != r.cfg.BrokerID {
		return
	}
	// A follower outside the ISR holds the high watermark only while it is caught up: once the
	// lag bound has passed, the high watermark may move although nothing else happened (a dead
	// follower the controller already took out of the ISR neither fetches nor is shrunk away).
	r.maybeAdvanceHWLocked()
	if r.proposal != nil {
		return
	}
	now, leo := r.cfg.Now(), r.log.EndOffset()
	isr := slices.DeleteFunc(slices.Clone(r.isr), func(id int32) bool {
		if id == r.cfg.BrokerID {
			return false
		}
		f := r.followers[id]
		return f == nil || !r.caughtUpLocked(f, leo, now)
	})
	if len(isr) != len(r.isr) {
		r.lg.Warn("shrinking ISR: followers lag more than replica.lag.time.max.ms", "from", r.isr, "to", isr, "lag_max", r.cfg.ReplicaLagMax)
		r.proposeISRLocked(isr)
	}
}

// EpochEndOffset answers OffsetForLeaderEpoch as leader (or, for ReplicaID -2 debug, any replica).
func (r *Replica) EpochEndOffset(currentEpoch, epoch int32) (int32, int64, error) {
	r.mu.Lock()
	err := r.checkLeaderLocked(currentEpoch)
	r.mu.Unlock()
	if err != nil {
		return -1, -1, err
	}
	e, end := r.log.EpochEndOffset(epoch)
	return e, end, nil
}

// LeaderEpoch returns the current leader epoch.
func (r *Replica) LeaderEpoch() int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaderEpoch
}

// OffsetLookup answers ListOffsets as leader: ts -2 earliest, -1 latest (the high watermark, as
// consumers see it, or with readCommitted the last stable offset, which also bounds the other
// lookups), -3 max timestamp, >= 0 the first offset with a timestamp at or after ts.
//
// As Kafka's Partition.fetchOffsetForTimestamp, while the high watermark is below the first
// offset of the leader's epoch (a new leader that has not yet heard from its followers), latest
// and a timestamp lookup past the high watermark answer OFFSET_NOT_AVAILABLE, so a consumer
// never sees the end offset go backwards.
func (r *Replica) OffsetLookup(currentEpoch int32, ts int64, readCommitted bool) (offset, timestamp int64, err error) {
	r.mu.Lock()
	err = r.checkLeaderLocked(currentEpoch)
	// hw is the last fetchable offset: what a consumer of this isolation level may read below.
	hw := r.hw
	if readCommitted {
		hw = r.txns.lso(r.hw)
	}
	var lagging error
	if start := r.epochStartLocked(); err == nil && start > hw {
		lagging = fmt.Errorf("%s-%d: the high watermark %d of leader epoch %d lags the epoch's start offset %d: %w",
			r.cfg.Topic, r.cfg.Partition, hw, r.leaderEpoch, start, kerr.OffsetNotAvailable)
	}
	r.mu.Unlock()
	if err != nil {
		return -1, -1, err
	}
	switch ts {
	case -2, -4: // earliest, earliest-local
		return r.log.StartOffset(), -1, nil
	case -1:
		if lagging != nil {
			return -1, -1, lagging
		}
		return hw, -1, nil
	case -3: // max timestamp
		var best, bestTs int64 = -1, -1
		_ = r.log.Scan(r.log.StartOffset(), func(h log.BatchHeader) bool {
			if h.BaseOffset >= hw {
				return false
			}
			if h.MaxTimestamp > bestTs {
				best, bestTs = h.LastOffset(), h.MaxTimestamp
			}
			return true
		})
		return best, bestTs, nil
	}
	off, fts, ok, err := r.log.OffsetForTimestamp(ts)
	if err != nil {
		return -1, -1, fmt.Errorf("%s-%d: %w: %w", r.cfg.Topic, r.cfg.Partition, kerr.KafkaStorageError, err)
	}
	if ok && off >= hw && lagging != nil {
		return -1, -1, lagging
	}
	if !ok || off >= hw {
		return -1, -1, nil
	}
	return off, fts, nil
}

// AppendReplicated appends batches fetched from the leader (as follower) and takes the leader's
// high watermark, capped at the local log end. Idempotent-producer state follows the log, so a
// retried batch is still recognised after this replica becomes leader. leaderEpoch is the epoch the
// fetch was made in: data fetched before a leader change is refused, so a deposed leader's records
// can never slip in after the truncation against the new one.
func (r *Replica) AppendReplicated(batches []byte, leaderHW int64, leaderEpoch int32) error {
	// A follower's log writes under mu: a leader change waits for them, so what was fetched in
	// an epoch is appended in that epoch or not at all. Nothing reads from a follower meanwhile.
	r.appendMu.Lock()
	defer r.appendMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader == r.cfg.BrokerID || r.closed {
		return fmt.Errorf("%s-%d: not a follower: %w", r.cfg.Topic, r.cfg.Partition, kerr.NotLeaderForPartition)
	}
	if leaderEpoch != r.leaderEpoch {
		return fmt.Errorf("%s-%d: fetched in leader epoch %d, now %d: %w", r.cfg.Topic, r.cfg.Partition, leaderEpoch, r.leaderEpoch, kerr.FencedLeaderEpoch)
	}
	if len(batches) > 0 {
		n, err := r.log.AppendFollower(batches)
		if err != nil {
			return fmt.Errorf("%s-%d: replicate: %w", r.cfg.Topic, r.cfg.Partition, err)
		}
		// Producer state follows from the headers of the bytes just appended, still in memory
		// (the log checked them), not from reading them back from disk.
		for pos := 0; pos < n; {
			h, err := log.ParseBatchHeader(batches[pos:])
			if err != nil {
				break
			}
			r.producers.update(h)
			var m records.Marker
			if h.IsControl() && pos+h.Size() <= n {
				m = r.markerOf(h, batches[pos:pos+h.Size()])
			}
			abort, aborted := r.txns.observeMarker(h, m)
			r.persistTxnState(abort, aborted, 0, nil)
			pos += h.Size()
		}
		if r.rolledLocked() {
			r.persistTxnState(log.AbortedTxn{}, false, r.log.EndOffset(), encodeProducerSnapshot(r.snapshotLocked()))
		}
	}
	if hw := min(leaderHW, r.log.EndOffset()); hw > r.hw {
		r.hw = hw
		r.txns.forgetStable(hw)
	}
	r.notifyLocked()
	return nil
}

// TruncateTo cuts the log at offset (a follower diverging from a new leader), keeps the high
// watermark at or below the new end, and trims producer state. An offset below the log start
// empties the log and restarts it there (TruncateFullyAndStartAt), as Kafka's truncateTo does.
// leaderEpoch is the epoch the leader's answer came in; if the replica has moved on since, it
// fails FENCED_LEADER_EPOCH and changes nothing.
func (r *Replica) TruncateTo(offset int64, leaderEpoch int32) error {
	return r.asFollower(leaderEpoch, func() error {
		if offset >= r.log.EndOffset() {
			return nil
		}
		if offset < r.log.StartOffset() {
			return r.truncateFullyLocked(offset)
		}
		r.lg.Warn("truncating log to the leader's epoch end", "from", r.log.EndOffset(), "to", offset)
		if err := r.log.Truncate(offset); err != nil {
			return fmt.Errorf("%s-%d: truncate to %d: %w", r.cfg.Topic, r.cfg.Partition, offset, err)
		}
		r.hw = min(r.hw, r.log.EndOffset())
		// The log dropped the snapshots and .txnindex entries past the new end: reload the
		// state from the latest snapshot left and the log after it (a truncated marker reopens
		// its transaction, a truncated batch leaves its producer's cache), as Kafka does.
		if err := r.loadTxnStateLocked(); err != nil {
			return fmt.Errorf("%s-%d: rebuild transactions after truncating to %d: %w", r.cfg.Topic, r.cfg.Partition, offset, err)
		}
		return nil
	})
}

// asFollower runs change with appends and the replica locked, if the replica still follows in
// leaderEpoch (checkFollowerLocked).
func (r *Replica) asFollower(leaderEpoch int32, change func() error) error {
	r.appendMu.Lock()
	defer r.appendMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkFollowerLocked(leaderEpoch); err != nil {
		return err
	}
	return change()
}

// TruncateAgainst cuts the log where it stops agreeing with the leader's, given where the
// leader's log ends the epoch leaderEpoch (an OffsetForLeaderEpoch answer, or a fetch's
// DivergingEpoch), as Kafka's fetcher does (AbstractFetcherThread.getOffsetTruncationState):
// at the smaller of the leader's end and this log's own end of that epoch. When this log does
// not have leaderEpoch, it is cut at the end of its own largest older epoch and done is false:
// the leader must be asked again about that epoch. fetchEpoch is the leader epoch the answer
// came in, as for TruncateTo.
func (r *Replica) TruncateAgainst(leaderEpoch int32, leaderEnd int64, fetchEpoch int32) (done bool, err error) {
	target, done := leaderEnd, true
	switch local, localEnd := r.LocalEpochEnd(leaderEpoch); {
	case leaderEpoch < 0 || leaderEnd < 0:
		target = 0 // the leader has nothing of any epoch we know
	case local == leaderEpoch:
		target = min(leaderEnd, localEnd)
	case local >= 0: // we have older epochs only: agree up to the end of ours, then ask again
		target, done = localEnd, false
	}
	if err := r.TruncateTo(target, fetchEpoch); err != nil {
		return false, err
	}
	return done, nil
}

// TruncateFullyAndStartAt empties the log of a follower and restarts it at offset: what a
// follower does when its log ends below the leader's log start, so that it can fetch again (as
// Kafka's fetcher, on OFFSET_OUT_OF_RANGE). Producer state and the leader-epoch cache go with
// the log, and the high watermark becomes offset. leaderEpoch is as for TruncateTo.
func (r *Replica) TruncateFullyAndStartAt(offset int64, leaderEpoch int32) error {
	return r.asFollower(leaderEpoch, func() error { return r.truncateFullyLocked(offset) })
}

// checkFollowerLocked fails a change a follower makes to its log on the leader's word, unless
// the replica still follows in leaderEpoch: a leader's log, or one following a newer leader,
// must not be cut on an older leader's answer.
func (r *Replica) checkFollowerLocked(leaderEpoch int32) error {
	if r.leader == r.cfg.BrokerID || r.closed {
		return fmt.Errorf("%s-%d: not a follower: %w", r.cfg.Topic, r.cfg.Partition, kerr.NotLeaderForPartition)
	}
	if leaderEpoch != r.leaderEpoch {
		return fmt.Errorf("%s-%d: leader answered in epoch %d, now %d: %w", r.cfg.Topic, r.cfg.Partition, leaderEpoch, r.leaderEpoch, kerr.FencedLeaderEpoch)
	}
	return nil
}

func (r *Replica) truncateFullyLocked(offset int64) error {
	r.lg.Warn("restarting the log empty at the leader's log start", "start", r.log.StartOffset(), "end", r.log.EndOffset(), "new_start", offset)
	if err := r.log.TruncateFullyAndStartAt(offset); err != nil {
		return fmt.Errorf("%s-%d: restart log at %d: %w", r.cfg.Topic, r.cfg.Partition, offset, err)
	}
	clear(r.producers)
	r.txns.reset()
	r.activeSeg = offset
	r.hw = offset
	r.notifyLocked()
	return nil
}

// LocalEpochEnd is this replica's own end offset for an epoch (see log.EpochEndOffset).
func (r *Replica) LocalEpochEnd(epoch int32) (int32, int64) { return r.log.EpochEndOffset(epoch) }
