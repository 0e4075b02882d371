package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// fillOffsetCommit answers every partition of req with code.
func fillOffsetCommit(req *kmsg.OffsetCommitRequest, code int16) *kmsg.OffsetCommitResponse {
	resp := &kmsg.OffsetCommitResponse{Version: req.Version}
	resp.Default()
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// OffsetCommit handles an OffsetCommit request. A commit with generation -1
// and no member id (a "simple" commit, as kcat or a manually assigned
// consumer sends) is accepted while the group is Empty, creating the group if
// needed; otherwise the member id and generation must match the group's. The
// commit is persisted through the Store before it is acknowledged or visible
// to OffsetFetch; if the Store fails, every partition gets the mapped error
// code and nothing changes. A metadata string longer than
// Config.OffsetMetadataMaxBytes gets OFFSET_METADATA_TOO_LARGE for its
// partition only.
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	if req == nil {
		return fillOffsetCommit(&kmsg.OffsetCommitRequest{}, codeInvalidRequest)
	}
	return c.commit(ctx, req, nil)
}

// commit serves an OffsetCommit, or with txn a TxnOffsetCommit in OffsetCommit's form (see
// [Coordinator.TxnOffsetCommit]): its records are then the producer's, written as one
// transactional batch, and its offsets stay pending until the transaction's marker.
func (c *Coordinator) commit(ctx context.Context, req *kmsg.OffsetCommitRequest, txn *Txn) *kmsg.OffsetCommitResponse {
	sh, code := c.shardFor(req.Group)
	if code != 0 {
		return fillOffsetCommit(req, code)
	}
	generation, memberID := req.Generation, req.MemberID
	if req.Version < 1 {
		generation, memberID = -1, ""
	}
	var instanceID *string
	if req.Version >= 7 {
		instanceID = req.InstanceID
	}
	retention := int64(-1)
	if req.Version >= 2 && req.Version <= 4 {
		retention = req.RetentionTimeMillis
	}

	resp := fillOffsetCommit(req, 0)
	done := make(chan struct{})
	op := &writeOp{
		prepare: func() ([]Record, func(error)) {
			return sh.prepareCommit(req, resp, generation, memberID, instanceID, retention, txn, done)
		},
		abort: func(code int16) {
			setAll(resp, code)
			close(done)
		},
		// A transactional commit is one batch of its producer, alone in its Append.
		batchable: txn == nil,
	}
	if !sh.enqueue(op) {
		sh.mu.Lock()
		code := sh.code
		sh.mu.Unlock()
		return fillOffsetCommit(req, code)
	}
	select {
	case <-done:
		return resp
	case <-ctx.Done():
		return fillOffsetCommit(req, codeCoordinatorNotAvailable)
	}
}

func setAll(resp *kmsg.OffsetCommitResponse, code int16) {
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			resp.Topics[i].Partitions[j].ErrorCode = code
		}
	}
}

// prepareCommit validates a commit against the current state (Kafka's
// OffsetMetadataManager.commitOffset, or commitTransactionalOffset with txn)
// and returns its records; finish applies them once durable (with txn: makes
// them pending for the producer). It runs on the writer with sh.mu held and
// closes done when the response is final.
func (sh *shard) prepareCommit(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse,
	generation int32, memberID string, instanceID *string, retention int64, txn *Txn, done chan struct{},
) ([]Record, func(error)) {
	fail := func(code int16) ([]Record, func(error)) {
		setAll(resp, code)
		close(done)
		return nil, nil
	}
	g := sh.groups[req.Group]
	created := false
	if g == nil {
		if generation >= 0 {
			if req.Version >= 9 {
				return fail(codeGroupIDNotFound)
			}
			return fail(codeIllegalGeneration)
		}
		g = sh.newGroup(req.Group)
		created = true
	}
	dropIfUnused := func() {
		if created {
			sh.dropIfUnused(g)
		}
	}
	if code := validateOffsetCommit(g, generation, memberID, instanceID, txn != nil); code != 0 {
		dropIfUnused()
		return fail(code)
	}
	if txn == nil && (g.state == stateStable || g.state == statePreparingRebalance) {
		if m := g.members[memberID]; m != nil {
			sh.scheduleHeartbeat(g, m, msDuration(m.sessionTimeoutMs))
		}
	}

	now := sh.now().UnixMilli()
	expire := int64(-1)
	if retention != -1 {
		expire = now + retention
	}
	type pending struct {
		topic     string
		partition int32
		c         committed
	}
	var (
		records []Record
		applies []pending
	)
	for i, t := range req.Topics {
		for j, p := range t.Partitions {
			meta := ""
			if p.Metadata != nil {
				meta = *p.Metadata
			}
			if javaLength(meta) > sh.c.cfg.OffsetMetadataMaxBytes {
				resp.Topics[i].Partitions[j].ErrorCode = codeOffsetMetadataTooLarge
				continue
			}
			ts := now
			if req.Version == 1 && p.Timestamp != -1 {
				ts = p.Timestamp
			}
			epoch := int32(-1)
			if req.Version >= 6 {
				epoch = p.LeaderEpoch
			}
			c := committed{
				offset:          p.Offset,
				leaderEpoch:     epoch,
				metadata:        meta,
				commitTimestamp: ts,
				expireTimestamp: expire,
				seq:             sh.nextSeq(),
			}
			r := offsetCommitRecord(req.Group, t.Topic, p.Partition, c)
			r.Txn = txn
			records = append(records, r)
			applies = append(applies, pending{t.Topic, p.Partition, c})
		}
	}
	if len(records) == 0 {
		dropIfUnused()
		close(done)
		return nil, nil
	}
	g.commitsInFlight++
	return records, func(err error) {
		defer close(done)
		g.commitsInFlight--
		if err != nil {
			code := sh.errorCode(err)
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					if resp.Topics[i].Partitions[j].ErrorCode == 0 {
						resp.Topics[i].Partitions[j].ErrorCode = code
					}
				}
			}
			// Another failed commit of this batch may have created g.
			sh.dropIfUnused(g)
			return
		}
		if !sh.current(g) {
			return // durable, but this coordinator no longer serves it
		}
		for _, a := range applies {
			if txn != nil {
				sh.addTxnOffset(txn.ProducerID, g.id, a.topic, a.partition, a.c)
			} else {
				g.setOffset(a.topic, a.partition, a.c)
			}
		}
	}
}

// validateOffsetCommit is Kafka's ClassicGroup.validateOffsetCommit: a
// transactional commit (txn) without member id and generation is accepted
// in any state, as the versions of TxnOffsetCommit before 3 carry neither,
// and it is not refused during a rebalance.
func validateOffsetCommit(g *group, generation int32, memberID string, instanceID *string, txn bool) int16 {
	if g.state == stateDead {
		return codeCoordinatorNotAvailable
	}
	if generation < 0 && g.state == stateEmpty {
		return 0
	}
	if generation >= 0 || memberID != "" || instanceID != nil {
		if code := g.validateMember(memberID, instanceID); code != 0 {
			return code
		}
		if generation != g.generation {
			return codeIllegalGeneration
		}
	} else if !txn && g.state != stateEmpty {
		return codeUnknownMemberID
	}
	if !txn && g.state == stateCompletingRebalance {
		return codeRebalanceInProgress
	}
	return 0
}
