package server

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// handleMetadata answers from this node's metadata image: live brokers, and each requested topic
// (all when the request names none) with its partitions' leader, epoch, replicas and ISR. Unknown
// topics are created when the request allows it and auto.create.topics.enable is on.
func (b *Broker) handleMetadata(ctx context.Context, req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	img := b.Image()
	all := (req.Version == 0 && len(req.Topics) == 0) || (req.Version >= 1 && req.Topics == nil)
	allowCreate := b.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)

	var names []string
	if all {
		for name := range img.Topics {
			names = append(names, name)
		}
		sort.Strings(names)
	} else {
		var missing []string
		for _, rt := range req.Topics {
			name := ""
			if rt.Topic != nil {
				name = *rt.Topic
			} else if t := img.TopicByID(meta.TopicID(rt.TopicID)); t != nil {
				name = t.Name
			}
			names = append(names, name)
			if name != "" && img.Topic(name) == nil && allowCreate && validTopicName(name) == nil {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			img = b.autoCreate(ctx, missing)
		}
	}

	for _, bk := range img.Brokers {
		if bk.Alive {
			resp.Brokers = append(resp.Brokers, kmsg.MetadataResponseBroker{NodeID: bk.ID, Host: bk.Host, Port: bk.Port})
		}
	}
	cid := img.ClusterID
	resp.ClusterID = &cid
	resp.ControllerID = img.ControllerID
	for i, name := range names {
		st := kmsg.NewMetadataResponseTopic()
		st.Topic = kmsg.StringPtr(name)
		t := img.Topic(name)
		if t == nil {
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if !all && req.Topics[i].Topic == nil {
				st.ErrorCode = kerr.UnknownTopicID.Code
				st.Topic = nil
				st.TopicID = req.Topics[i].TopicID
			} else if validTopicName(name) != nil {
				st.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, st)
			continue
		}
		st.TopicID = t.ID
		st.IsInternal = t.Internal
		for p, ps := range t.Partitions {
			sp := kmsg.NewMetadataResponseTopicPartition()
			sp.Partition = int32(p)
			sp.Leader, sp.LeaderEpoch = ps.Leader, ps.LeaderEpoch
			sp.Replicas, sp.ISR = slices.Clone(ps.Replicas), slices.Clone(ps.ISR)
			for _, id := range ps.Replicas {
				if bk, ok := img.Broker(id); !ok || !bk.Alive {
					sp.OfflineReplicas = append(sp.OfflineReplicas, id)
				}
			}
			if ps.Leader == meta.NoLeader {
				sp.ErrorCode = kerr.LeaderNotAvailable.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// autoCreate creates topics with the broker defaults and waits (briefly) until this node's image
// shows the ones created, so the client's first metadata answer already has leaders. A topic the
// controller refuses (a default.replication.factor above the live brokers, say) is not waited
// for: as on a Kafka 4.x broker, it stays unknown.
func (b *Broker) autoCreate(ctx context.Context, names []string) *meta.Image {
	specs := make([]TopicSpec, len(names))
	for i, n := range names {
		specs[i] = TopicSpec{Name: n, Partitions: -1, ReplicationFactor: -1}
	}
	errs := b.cfg.Controller.CreateTopics(ctx, b.fillDefaults(specs), false)
	var created []string
	for i, err := range errs {
		switch {
		case err == nil || errors.Is(err, kerr.TopicAlreadyExists):
			created = append(created, names[i])
		default:
			b.lg.Warn("auto-create topic failed", "topic", names[i], "err", err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		img := b.Image()
		ready := true
		for _, n := range created {
			if img.Topic(n) == nil {
				ready = false
			}
		}
		if ready || time.Now().After(deadline) || ctx.Err() != nil {
			return img
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fillDefaults replaces the partition counts and replication factors of -1 ("the broker
// default", KIP-464) with num.partitions and default.replication.factor. As in Kafka, the
// replication factor is never lowered to fit the live brokers: the controller refuses a topic it
// cannot fully replicate (INVALID_REPLICATION_FACTOR), and other non-positive values reach it
// unchanged to be refused too.
func (b *Broker) fillDefaults(specs []TopicSpec) []TopicSpec {
	for i := range specs {
		if len(specs[i].Assignment) > 0 {
			continue
		}
		if specs[i].Partitions == -1 {
			specs[i].Partitions = b.cfg.DefaultPartitions
		}
		if specs[i].ReplicationFactor == -1 {
			specs[i].ReplicationFactor = b.cfg.DefaultReplicationFactor
		}
	}
	return specs
}
