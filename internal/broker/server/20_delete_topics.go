package server

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
)

// handleDeleteTopics deletes topics by name (or id, v6+) through the controller.
func (b *Broker) handleDeleteTopics(ctx context.Context, req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := withTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	img := b.Image()
	type entry struct {
		name string
		id   [16]byte
		err  error
	}
	var entries []entry
	if req.Version < 6 {
		for _, n := range req.TopicNames {
			entries = append(entries, entry{name: n})
		}
	} else {
		for _, t := range req.Topics {
			e := entry{id: t.TopicID}
			if t.Topic != nil {
				e.name = *t.Topic
			} else if tp := img.TopicByID(meta.TopicID(t.TopicID)); tp != nil {
				e.name = tp.Name
			} else {
				e.err = fmt.Errorf("no topic with id %x: %w", t.TopicID, kerr.UnknownTopicID)
			}
			entries = append(entries, e)
		}
	}
	var names []string
	var idx []int
	for i, e := range entries {
		if e.err == nil {
			if t := img.Topic(e.name); t != nil && t.Internal {
				entries[i].err = fmt.Errorf("topic %s is internal: %w", e.name, kerr.InvalidRequest)
				continue
			}
			names = append(names, e.name)
			idx = append(idx, i)
		}
	}
	if len(names) > 0 {
		errs := b.cfg.Controller.DeleteTopics(ctx, names)
		for j, i := range idx {
			entries[i].err = errs[j]
		}
	}
	for _, e := range entries {
		st := kmsg.NewDeleteTopicsResponseTopic()
		if e.name != "" {
			st.Topic = kmsg.StringPtr(e.name)
		}
		st.TopicID = e.id
		if t := img.Topic(e.name); t != nil {
			st.TopicID = t.ID
		}
		st.ErrorCode = errorCode(e.err)
		st.ErrorMessage = errMessage(e.err)
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
