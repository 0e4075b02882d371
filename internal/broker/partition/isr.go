package partition

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// The leader's ISR bookkeeping follows Kafka's Partition (KIP-497, "maximal ISR"):
//
//   - r.isr is the ISR the controller last committed (through Apply). Produce's
//     min.insync.replicas check and the under-min-ISR rule read it.
//   - r.proposal is the one change the leader has asked the controller for and not yet seen
//     committed or refused. While it is pending, no other change is proposed.
//   - The high watermark, and so every acks=all answer, counts the maximal ISR: the committed ISR
//     together with a pending expansion. A follower the controller may already have added to the
//     ISR could be elected leader, so it must hold every record below the high watermark before
//     the change commits, not after. (During a pending shrink the committed ISR is the larger set,
//     and it is the one counted.)
//   - The proposal ends when Apply brings a newer partition or leader epoch (the change committed,
//     or the state moved on and the controller will refuse it), or when the controller refuses it
//     with an error that means nothing changed.

// isrProposal is an ISR change sent to the controller and not yet committed or refused.
type isrProposal struct {
	isr       []int32
	partEpoch int32 // the partition epoch it was based on
}

// maximalISRLocked is the set of replicas the high watermark and acks=all wait for: the committed
// ISR and, while an expansion is pending, the follower being added.
func (r *Replica) maximalISRLocked() []int32 {
	if r.proposal == nil || r.cfg.UnsafeHWOnCommittedISR {
		return r.isr
	}
	out := slices.Clone(r.isr)
	for _, id := range r.proposal.isr {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// effectiveMinISRLocked is min.insync.replicas capped at the replication factor, as Kafka's
// effectiveMinIsr: a topic with fewer replicas than the setting is not unwritable forever.
func (r *Replica) effectiveMinISRLocked() int {
	return max(1, min(r.cfg.MinISR, len(r.replicas)))
}

// caughtUpLocked is Kafka's Replica.isCaughtUp: the follower's last fetch reached the leader's
// log end as it is now (an idle partition's follower stays caught up however long ago that was),
// or it was caught up within replica.lag.time.max.ms.
func (r *Replica) caughtUpLocked(f *follower, leo int64, now time.Time) bool {
	return f.leo == leo || now.Sub(f.lastCaughtUp) <= r.cfg.ReplicaLagMax
}

// proposeISRLocked sends an ISR change to the controller in the background; at most one is
// pending at a time and others are dropped until it ends. It takes effect when the controller's
// new state comes back through Apply; until then an expansion already counts for the high
// watermark.
func (r *Replica) proposeISRLocked(isr []int32) {
	if r.altering || r.proposal != nil || r.cfg.AlterISR == nil {
		return
	}
	slices.Sort(isr)
	p := &isrProposal{isr: isr, partEpoch: r.partEpoch}
	r.altering, r.proposal = true, p
	epoch := r.leaderEpoch
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := r.cfg.AlterISR(ctx, epoch, p.partEpoch, isr)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.altering = false
		if err == nil {
			return // committed: Apply brings the new state (it may already have)
		}
		r.lg.Warn("ISR change not accepted", "isr", isr, "err", err)
		if r.proposal == p && !newerStateComing(err) {
			// Refused with nothing changed: the committed ISR is the truth again, and a
			// follower that was only being added no longer holds the high watermark back.
			r.proposal = nil
			r.maybeAdvanceHWLocked()
		}
	}()
}

// newerStateComing reports whether the controller refused an ISR change because its state has
// moved past the one the change was based on: the newer state reaches the replica through
// Apply, which ends the proposal then (Kafka keeps its pending state on these errors too).
func newerStateComing(err error) bool {
	return errors.Is(err, kerr.FencedLeaderEpoch) || errors.Is(err, kerr.InvalidUpdateVersion) || errors.Is(err, kerr.UnknownTopicOrPartition)
}

// endProposalLocked ends the pending ISR change once the controller's state has moved past the
// one it was based on (st is about to be installed).
func (r *Replica) endProposalLocked(leaderEpoch, partEpoch int32) {
	if r.proposal != nil && (leaderEpoch != r.leaderEpoch || partEpoch > r.proposal.partEpoch) {
		r.proposal = nil
	}
}
