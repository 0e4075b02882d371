package group

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetFetch handles an OffsetFetch request, in the single-group form of
// versions 0-7 or the batched form of version 8 and later. A partition with
// no committed offset gets offset -1, as does every partition of a group that
// does not exist; null topics ask for every committed partition. With
// RequireStable (v7+), a partition with a pending transactional commit
// (see [Coordinator.TxnOffsetCommit]) gets UNSTABLE_OFFSET_COMMIT and offset
// -1 until its transaction ends, as in KIP-447; the client retries.
func (c *Coordinator) OffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	if req == nil {
		resp := kmsg.NewPtrOffsetFetchResponse()
		resp.ErrorCode = codeInvalidRequest
		return resp
	}
	resp := &kmsg.OffsetFetchResponse{Version: req.Version}
	resp.Default()
	stable := req.Version >= 7 && req.RequireStable
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			resp.Groups = append(resp.Groups, c.fetchGroup(rg, stable))
		}
		return resp
	}

	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = req.Group
	if req.Topics != nil || req.Version < 2 {
		rg.Topics = make([]kmsg.OffsetFetchRequestGroupTopic, 0, len(req.Topics))
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.Topic = t.Topic
		rt.Partitions = t.Partitions
		rg.Topics = append(rg.Topics, rt)
	}
	sg := c.fetchGroup(rg, stable)
	if sg.ErrorCode != 0 && req.Version >= 2 {
		resp.ErrorCode = sg.ErrorCode
		return resp
	}
	if sg.ErrorCode != 0 {
		// Versions 0 and 1 have no group-level error: put it on every
		// requested partition.
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition = p
				rp.Offset = -1
				rp.Metadata = kmsg.StringPtr("")
				rp.ErrorCode = sg.ErrorCode
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, t := range sg.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition = p.Partition
			rp.Offset = p.Offset
			rp.LeaderEpoch = p.LeaderEpoch
			rp.Metadata = p.Metadata
			rp.ErrorCode = p.ErrorCode
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// fetchGroup answers one group of an OffsetFetch (Kafka's fetchOffsets and
// fetchAllOffsets), stable for RequireStable.
func (c *Coordinator) fetchGroup(rg kmsg.OffsetFetchRequestGroup, stable bool) kmsg.OffsetFetchResponseGroup {
	sg := kmsg.NewOffsetFetchResponseGroup()
	sg.Group = rg.Group
	sh, code := c.shardFor(rg.Group)
	if code != 0 {
		sg.ErrorCode = code
		return sg
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.unloaded {
		sg.ErrorCode = sh.code
		return sg
	}
	// A Dead group is being deleted: its offsets stay until the tombstones
	// are durable, since the deletion may still fail.
	g := sh.groups[rg.Group]
	if rg.Topics == nil {
		if g == nil {
			return sg
		}
		topics := make([]string, 0, len(g.offsets))
		for t := range g.offsets {
			topics = append(topics, t)
		}
		sort.Strings(topics)
		for _, t := range topics {
			st := kmsg.NewOffsetFetchResponseGroupTopic()
			st.Topic = t
			parts := make([]int32, 0, len(g.offsets[t]))
			for p := range g.offsets[t] {
				parts = append(parts, p)
			}
			sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
			for _, p := range parts {
				st.Partitions = append(st.Partitions, sh.fetchedPartition(g, rg.Group, t, p, stable))
			}
			sg.Topics = append(sg.Topics, st)
		}
		return sg
	}
	for _, t := range rg.Topics {
		st := kmsg.NewOffsetFetchResponseGroupTopic()
		st.Topic = t.Topic
		st.TopicID = t.TopicID
		for _, p := range t.Partitions {
			st.Partitions = append(st.Partitions, sh.fetchedPartition(g, rg.Group, t.Topic, p, stable))
		}
		sg.Topics = append(sg.Topics, st)
	}
	return sg
}

func (sh *shard) fetchedPartition(g *group, groupID, topic string, partition int32, stable bool) kmsg.OffsetFetchResponseGroupTopicPartition {
	sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
	sp.Partition = partition
	sp.Offset = -1
	sp.LeaderEpoch = -1
	sp.Metadata = kmsg.StringPtr("")
	if stable && sh.hasTxnOffset(groupID, topic, partition) {
		sp.ErrorCode = codeUnstableOffsetCommit
		return sp
	}
	if g == nil {
		return sp
	}
	if c, ok := g.offset(topic, partition); ok {
		sp.Offset = c.offset
		sp.LeaderEpoch = c.leaderEpoch
		sp.Metadata = kmsg.StringPtr(c.metadata)
	}
	return sp
}
