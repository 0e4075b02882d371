package server

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// validTopicName applies Kafka's topic name rules.
func validTopicName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("topic name %q is not allowed: %w", name, kerr.InvalidTopicException)
	}
	if len(name) > 249 {
		return fmt.Errorf("topic name is %d characters, the maximum is 249: %w", len(name), kerr.InvalidTopicException)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has %q; only ASCII letters, digits, '.', '_' and '-' are allowed: %w", name, c, kerr.InvalidTopicException)
		}
	}
	return nil
}

// handleCreateTopics validates and forwards topic creation to the controller, then answers with
// each created topic's id, partition count, replication factor and configs (v5+).
func (b *Broker) handleCreateTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	ctx, cancel := withTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	specs := make([]TopicSpec, len(req.Topics))
	pre := make([]error, len(req.Topics))
	seen := map[string]int{}
	for i, rt := range req.Topics {
		seen[rt.Topic]++
		spec := TopicSpec{Name: rt.Topic, Partitions: rt.NumPartitions, ReplicationFactor: rt.ReplicationFactor, Configs: map[string]string{}}
		if len(rt.ReplicaAssignment) > 0 {
			spec.Assignment = map[int32][]int32{}
			for _, a := range rt.ReplicaAssignment {
				spec.Assignment[a.Partition] = a.Replicas
			}
		}
		for _, c := range rt.Configs {
			if c.Value == nil {
				continue
			}
			if err := meta.ValidateTopicConfig(c.Name, *c.Value); err != nil {
				pre[i] = fmt.Errorf("%w: %w", kerr.InvalidConfig, err)
			}
			spec.Configs[c.Name] = *c.Value
		}
		if err := validTopicName(rt.Topic); err != nil {
			pre[i] = err
		}
		specs[i] = spec
	}
	for i, rt := range req.Topics {
		if seen[rt.Topic] > 1 {
			pre[i] = fmt.Errorf("topic %q appears more than once in the request: %w", rt.Topic, kerr.InvalidRequest)
		}
	}
	var todo []TopicSpec
	var idx []int
	for i := range specs {
		if pre[i] == nil {
			todo = append(todo, specs[i])
			idx = append(idx, i)
		}
	}
	errs := make([]error, len(specs))
	copy(errs, pre)
	if len(todo) > 0 {
		res := b.cfg.Controller.CreateTopics(ctx, b.fillDefaults(todo), req.ValidateOnly)
		for j, i := range idx {
			errs[i] = res[j]
		}
	}
	img := b.Image()
	if !req.ValidateOnly {
		img = b.waitForTopics(ctx, specs, errs)
	}
	for i, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		st.ErrorCode = errorCode(errs[i])
		st.ErrorMessage = errMessage(errs[i])
		if t := img.Topic(rt.Topic); errs[i] == nil && t != nil {
			st.TopicID = t.ID
			st.NumPartitions = int32(len(t.Partitions))
			st.ReplicationFactor = int16(len(t.Partitions[0].Replicas))
			for _, name := range meta.TopicConfigNames() {
				v, explicit := b.cfg.Defaults.TopicConfig(t, name)
				c := kmsg.NewCreateTopicsResponseTopicConfig()
				c.Name, c.Value = name, kmsg.StringPtr(v)
				c.Source = configSource(explicit, b.cfg.Defaults, name)
				st.Configs = append(st.Configs, c)
			}
		} else if errs[i] == nil && req.ValidateOnly {
			st.NumPartitions, st.ReplicationFactor = specs[i].Partitions, specs[i].ReplicationFactor
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// waitForTopics waits until this node's image shows every successfully created topic.
func (b *Broker) waitForTopics(ctx context.Context, specs []TopicSpec, errs []error) *meta.Image {
	for {
		img := b.Image()
		ready := true
		for i, s := range specs {
			if errs[i] == nil && img.Topic(s.Name) == nil {
				ready = false
			}
		}
		if ready || ctx.Err() != nil {
			return img
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}
