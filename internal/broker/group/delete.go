package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups handles a DeleteGroups request. Only an Empty group can be
// deleted (NON_EMPTY_GROUP otherwise); its offsets and metadata are
// tombstoned through the Store before it disappears. While the tombstones are
// written the group is Dead, so joins get COORDINATOR_NOT_AVAILABLE; its
// offsets are still fetched until the deletion is durable.
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	if req == nil {
		return kmsg.NewPtrDeleteGroupsResponse()
	}
	resp := &kmsg.DeleteGroupsResponse{Version: req.Version}
	resp.Default()
	dones := make([]chan struct{}, len(req.Groups))
	resp.Groups = make([]kmsg.DeleteGroupsResponseGroup, len(req.Groups))
	for i, id := range req.Groups {
		rg := &resp.Groups[i]
		*rg = kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		done := make(chan struct{})
		dones[i] = done
		sh, code := c.shardFor(id)
		if code != 0 {
			rg.ErrorCode = code
			close(done)
			continue
		}
		op := &writeOp{
			prepare: func() ([]Record, func(error)) { return sh.prepareDelete(id, rg, done) },
			abort: func(code int16) {
				rg.ErrorCode = code
				close(done)
			},
		}
		if !sh.enqueue(op) {
			rg.ErrorCode = codeNotCoordinator
			close(done)
		}
	}
	for _, done := range dones {
		select {
		case <-done:
		case <-ctx.Done():
			// Writers may still fill resp: answer with a fresh one.
			out := &kmsg.DeleteGroupsResponse{Version: req.Version}
			out.Default()
			for _, id := range req.Groups {
				g := kmsg.NewDeleteGroupsResponseGroup()
				g.Group = id
				g.ErrorCode = codeCoordinatorNotAvailable
				out.Groups = append(out.Groups, g)
			}
			return out
		}
	}
	if req.Version >= 3 {
		for i := range resp.Groups {
			if code := resp.Groups[i].ErrorCode; code != 0 {
				resp.Groups[i].ErrorMessage = errorMessage(code)
			}
		}
	}
	return resp
}

func errorMessage(code int16) *string {
	if e := kerr.TypedErrorForCode(code); e != nil {
		return kmsg.StringPtr(e.Description)
	}
	return nil
}

func (sh *shard) prepareDelete(id string, rg *kmsg.DeleteGroupsResponseGroup, done chan struct{}) ([]Record, func(error)) {
	fail := func(code int16) ([]Record, func(error)) {
		rg.ErrorCode = code
		close(done)
		return nil, nil
	}
	g := sh.groups[id]
	switch {
	case g == nil || g.state == stateDead:
		return fail(codeGroupIDNotFound)
	case g.state != stateEmpty:
		return fail(codeNonEmptyGroup)
	}
	var records []Record
	for t, ps := range g.offsets {
		for p := range ps {
			records = append(records, offsetTombstone(id, t, p))
		}
	}
	// Pending transactional commits go too, as in Kafka's deleteAllOffsets.
	sh.txnOffsetPartitions(id, func(t string, p int32) {
		if _, ok := g.offset(t, p); !ok {
			records = append(records, offsetTombstone(id, t, p))
		}
	})
	records = append(records, groupTombstone(id))
	prev := g.state
	g.transition(stateDead, sh.now())
	for pid := range g.pending {
		g.removePending(pid)
	}
	return records, func(err error) {
		defer close(done)
		if err != nil {
			rg.ErrorCode = sh.errorCode(err)
			if sh.current(g) && g.state == stateDead {
				g.transition(prev, sh.now())
			}
			return
		}
		sh.dropGroupTxnOffsets(id)
		if sh.current(g) {
			sh.stopGroup(g, codeCoordinatorNotAvailable)
			delete(sh.groups, id)
		}
	}
}

// OffsetDelete handles an OffsetDelete request: it removes committed offsets
// of an Empty group, or of a consumer group for topics it does not subscribe
// to (GROUP_SUBSCRIBED_TO_TOPIC for those it does). A non-empty group of
// another protocol type gets NON_EMPTY_GROUP.
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	if req == nil {
		resp := kmsg.NewPtrOffsetDeleteResponse()
		resp.ErrorCode = codeInvalidRequest
		return resp
	}
	resp := &kmsg.OffsetDeleteResponse{Version: req.Version}
	resp.Default()
	if c.isClosed() {
		resp.ErrorCode = codeCoordinatorNotAvailable
		return resp
	}
	if req.Group == "" {
		resp.ErrorCode = codeInvalidGroupID
		return resp
	}
	sh, code := c.shardFor(req.Group)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	done := make(chan struct{})
	op := &writeOp{
		prepare: func() ([]Record, func(error)) { return sh.prepareOffsetDelete(req, resp, done) },
		abort: func(code int16) {
			resp.ErrorCode = code
			resp.Topics = nil
			close(done)
		},
	}
	if !sh.enqueue(op) {
		resp.ErrorCode = codeNotCoordinator
		return resp
	}
	select {
	case <-done:
		return resp
	case <-ctx.Done():
		out := &kmsg.OffsetDeleteResponse{Version: req.Version}
		out.Default()
		out.ErrorCode = codeCoordinatorNotAvailable
		return out
	}
}

func (sh *shard) prepareOffsetDelete(req *kmsg.OffsetDeleteRequest, resp *kmsg.OffsetDeleteResponse, done chan struct{}) ([]Record, func(error)) {
	fail := func(code int16) ([]Record, func(error)) {
		resp.ErrorCode = code
		close(done)
		return nil, nil
	}
	g := sh.groups[req.Group]
	if g == nil || g.state == stateDead {
		return fail(codeGroupIDNotFound)
	}
	if g.state != stateEmpty && g.protocolType != consumerProtocolType {
		return fail(codeNonEmptyGroup)
	}
	type key struct {
		topic     string
		partition int32
	}
	var (
		records []Record
		deletes []key
	)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		subscribed := g.isSubscribedToTopic(t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case subscribed:
				rp.ErrorCode = codeGroupSubscribedToTopic
			default:
				if _, ok := g.offset(t.Topic, p.Partition); ok || sh.hasTxnOffset(req.Group, t.Topic, p.Partition) {
					records = append(records, offsetTombstone(req.Group, t.Topic, p.Partition))
					deletes = append(deletes, key{t.Topic, p.Partition})
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(records) == 0 {
		close(done)
		return nil, nil
	}
	return records, func(err error) {
		defer close(done)
		if err != nil {
			resp.ErrorCode = sh.errorCode(err)
			resp.Topics = nil
			return
		}
		for _, d := range deletes {
			sh.dropTxnOffset(req.Group, d.topic, d.partition)
			if sh.current(g) {
				g.deleteOffset(d.topic, d.partition)
			}
		}
	}
}
