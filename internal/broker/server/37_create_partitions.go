package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleCreatePartitions grows topics through the controller. Growing a keyed topic changes the
// key→partition map, which is exactly what kafkaguard's partitioner guard detects.
func (b *Broker) handleCreatePartitions(ctx context.Context, req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	ctx, cancel := withTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		err := b.cfg.Controller.CreatePartitions(ctx, rt.Topic, rt.Count, req.ValidateOnly)
		st.ErrorCode, st.ErrorMessage = errorCode(err), errMessage(err)
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
