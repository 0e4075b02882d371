package group

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// offsetMap holds offsets by topic and partition.
type offsetMap map[string]map[int32]committed

func (m *offsetMap) set(topic string, partition int32, c committed) {
	if *m == nil {
		*m = make(offsetMap)
	}
	ps := (*m)[topic]
	if ps == nil {
		ps = make(map[int32]committed)
		(*m)[topic] = ps
	}
	ps[partition] = c
}

func (m offsetMap) remove(topic string, partition int32) {
	ps := m[topic]
	if ps == nil {
		return
	}
	delete(ps, partition)
	if len(ps) == 0 {
		delete(m, topic)
	}
}

// nextSeq numbers the next record this shard writes (see committed.seq).
func (sh *shard) nextSeq() int64 {
	sh.seq++
	return sh.seq
}

// addTxnOffset keeps a transactional offset commit of producerID pending
// until its marker (Kafka's pendingTransactionalOffsets).
func (sh *shard) addTxnOffset(producerID int64, groupID, topic string, partition int32, c committed) {
	if sh.txnOffsets == nil {
		sh.txnOffsets = make(map[int64]map[string]offsetMap)
	}
	byGroup := sh.txnOffsets[producerID]
	if byGroup == nil {
		byGroup = make(map[string]offsetMap)
		sh.txnOffsets[producerID] = byGroup
	}
	m := byGroup[groupID]
	m.set(topic, partition, c)
	byGroup[groupID] = m
}

// hasTxnOffset reports whether a transaction has a pending commit of groupID's
// offset of topic-partition (Kafka's hasPendingTransactionalOffsets).
func (sh *shard) hasTxnOffset(groupID, topic string, partition int32) bool {
	for _, byGroup := range sh.txnOffsets {
		if _, ok := byGroup[groupID][topic][partition]; ok {
			return true
		}
	}
	return false
}

// groupHasTxnOffsets reports whether any transaction has a pending commit for
// groupID.
func (sh *shard) groupHasTxnOffsets(groupID string) bool {
	for _, byGroup := range sh.txnOffsets {
		if len(byGroup[groupID]) > 0 {
			return true
		}
	}
	return false
}

// txnOffsetPartitions calls fn for each partition of groupID with a pending
// commit (once per producer that has one).
func (sh *shard) txnOffsetPartitions(groupID string, fn func(topic string, partition int32)) {
	for _, byGroup := range sh.txnOffsets {
		for t, ps := range byGroup[groupID] {
			for p := range ps {
				fn(t, p)
			}
		}
	}
}

// dropTxnOffset forgets every pending commit of groupID's topic-partition, as
// a tombstone does (Kafka's replay of an offset tombstone).
func (sh *shard) dropTxnOffset(groupID, topic string, partition int32) {
	for _, byGroup := range sh.txnOffsets {
		if m := byGroup[groupID]; m != nil {
			m.remove(topic, partition)
			if len(m) == 0 {
				delete(byGroup, groupID)
			}
		}
	}
}

// dropGroupTxnOffsets forgets every pending commit of groupID.
func (sh *shard) dropGroupTxnOffsets(groupID string) {
	for _, byGroup := range sh.txnOffsets {
		delete(byGroup, groupID)
	}
}

// endTxn applies producerID's marker (Kafka's replayEndTransactionMarker):
// on COMMIT its pending offsets replace the committed ones they are newer
// than; on ABORT they are dropped.
func (sh *shard) endTxn(producerID int64, commit bool) {
	byGroup := sh.txnOffsets[producerID]
	delete(sh.txnOffsets, producerID)
	for id, m := range byGroup {
		g := sh.groups[id]
		if g == nil {
			if !commit {
				continue
			}
			g = sh.newGroup(id)
		}
		if commit {
			for t, ps := range m {
				for p, c := range ps {
					if old, ok := g.offset(t, p); !ok || c.seq > old.seq {
						g.setOffset(t, p, c)
					}
				}
			}
		}
		sh.dropIfUnused(g)
	}
}

// TxnOffsetCommit handles a TxnOffsetCommit request (versions 0-4, the
// classic transaction protocol; the transaction coordinator has added the
// group's offsets partition to the transaction with AddOffsetsToTxn). It is
// validated as an OffsetCommit is, as Kafka's commitTransactionalOffset
// does: from version 3 the member id, group instance id and generation must
// match the group's (generation -1 without a member id is accepted in any
// state, and a group that does not exist is created); a rebalance does not
// refuse it. The offsets are persisted as one transactional batch of the
// producer in the group's __consumer_offsets partition, and stay pending
// until the transaction's marker reaches that partition
// ([Coordinator.CompleteTxn]): a COMMIT makes them the group's committed
// offsets, an ABORT drops them. Meanwhile OffsetFetch with RequireStable
// answers UNSTABLE_OFFSET_COMMIT for their partitions (KIP-447).
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	if req == nil {
		req = &kmsg.TxnOffsetCommitRequest{}
	}
	resp := &kmsg.TxnOffsetCommitResponse{Version: req.Version}
	resp.Default()
	fill := func(code func(topic, partition int) int16) *kmsg.TxnOffsetCommitResponse {
		for i, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for j, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code(i, j)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	all := func(code int16) *kmsg.TxnOffsetCommitResponse {
		return fill(func(int, int) int16 { return code })
	}
	switch {
	case c.isClosed():
		return all(codeCoordinatorNotAvailable)
	case req.Group == "":
		return all(codeInvalidGroupID)
	case req.ProducerID < 0 || req.ProducerEpoch < 0:
		return all(codeInvalidRequest)
	}
	// The commit in OffsetCommit's form: version 8 takes the member fields
	// and leader epochs as given, with no retention time.
	oc := kmsg.NewOffsetCommitRequest()
	oc.Version = 8
	oc.Group = req.Group
	oc.Generation, oc.MemberID, oc.InstanceID = -1, "", nil
	if req.Version >= 3 {
		oc.Generation, oc.MemberID, oc.InstanceID = req.Generation, req.MemberID, req.InstanceID
	}
	for _, t := range req.Topics {
		ot := kmsg.NewOffsetCommitRequestTopic()
		ot.Topic = t.Topic
		for _, p := range t.Partitions {
			op := kmsg.NewOffsetCommitRequestTopicPartition()
			op.Partition, op.Offset, op.Metadata = p.Partition, p.Offset, p.Metadata
			op.LeaderEpoch = -1
			if req.Version >= 2 {
				op.LeaderEpoch = p.LeaderEpoch
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		oc.Topics = append(oc.Topics, ot)
	}
	out := c.commit(ctx, &oc, &Txn{ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch})
	// A producer epoch older than the partition's (a fenced producer) is
	// INVALID_PRODUCER_EPOCH from the append, as in Kafka.
	return fill(func(i, j int) int16 { return out.Topics[i].Partitions[j].ErrorCode })
}

// CompleteTxn ends producerID's transaction on offsets partition p, as
// Kafka's GroupCoordinator.completeTransaction does for WriteTxnMarkers: it
// writes the COMMIT or ABORT marker (with epoch and coordinatorEpoch)
// through the partition's Store, after every write queued before it, and
// once the marker is durable applies the producer's pending transactional
// offset commits of p (commit) or drops them (abort). A marker with nothing
// pending is written all the same: it closes the producer's transaction on
// the partition. It returns an error wrapping kerr.NotLeaderForPartition if
// p is not loaded here, or the Store's error.
func (c *Coordinator) CompleteTxn(ctx context.Context, p int32, producerID int64, epoch int16, commit bool, coordinatorEpoch int32) error {
	c.mu.Lock()
	sh := c.shards[p]
	c.mu.Unlock()
	notHere := fmt.Errorf("group: offsets partition %d is not loaded here: %w", p, kerr.NotLeaderForPartition)
	if sh == nil {
		return notHere
	}
	done := make(chan error, 1)
	op := &writeOp{
		prepare: func() ([]Record, func(error)) {
			sh.nextSeq()
			marker := Record{Txn: &Txn{ProducerID: producerID, ProducerEpoch: epoch,
				Marker: true, Commit: commit, CoordinatorEpoch: coordinatorEpoch}}
			return []Record{marker}, func(err error) {
				if err == nil && !sh.unloaded {
					sh.endTxn(producerID, commit)
				}
				done <- err
			}
		},
		abort: func(int16) { done <- notHere },
	}
	if !sh.enqueue(op) {
		return notHere
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("group: writing a transaction marker on offsets partition %d: %w", p, ctx.Err())
	}
}
