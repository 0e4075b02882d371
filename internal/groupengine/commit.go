package groupengine

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/ordering"
)

// Committer commits checkpoints for the engine's group.
//
// Commit is called with at least one checkpoint, never concurrently with
// itself. It returns, for each partition Kafka answered, nil if the
// checkpoint was committed or Kafka's error for that partition; a partition
// left out of the map is taken as not committed (it is tried again at the
// next commit). A non-nil error means nothing was committed. Commit must not
// keep cps.
type Committer interface {
	Commit(ctx context.Context, cl *kgo.Client, cps map[ordering.TopicPartition]ordering.Checkpoint) (map[ordering.TopicPartition]error, error)
}

// OffsetCommitter commits with an OffsetCommit request of the client's
// group, each partition's checkpoint metadata in the request. It resolves
// the partitions of a response that names topics only by ID (OffsetCommit
// v10 and later) through the request.
type OffsetCommitter struct{}

// Commit implements Committer.
func (OffsetCommitter) Commit(ctx context.Context, cl *kgo.Client, cps map[ordering.TopicPartition]ordering.Checkpoint) (map[ordering.TopicPartition]error, error) {
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	for tp, cp := range cps {
		if offsets[tp.Topic] == nil {
			offsets[tp.Topic] = make(map[int32]kgo.EpochOffset)
		}
		offsets[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: cp.Offset}
	}
	withMeta := kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			t := &req.Topics[i]
			for j := range t.Partitions {
				p := &t.Partitions[j]
				if cp, ok := cps[ordering.TopicPartition{Topic: t.Topic, Partition: p.Partition}]; ok {
					p.Metadata = kmsg.StringPtr(cp.Metadata)
				}
			}
		}
		return nil
	})
	var (
		res    map[ordering.TopicPartition]error
		reqErr error
	)
	cl.CommitOffsetsSync(withMeta, offsets, func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			reqErr = err
			return
		}
		res = Results(req, resp)
	})
	return res, reqErr
}

// Results maps an OffsetCommit response to the partitions of its request:
// nil for each committed partition, Kafka's error for each refused one. A
// response topic named only by ID (v10 and later) takes the name the
// request gave that ID.
func Results(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse) map[ordering.TopicPartition]error {
	names := make(map[[16]byte]string, len(req.Topics))
	for _, t := range req.Topics {
		names[t.TopicID] = t.Topic
	}
	out := make(map[ordering.TopicPartition]error)
	for _, t := range resp.Topics {
		topic := t.Topic
		if topic == "" {
			topic = names[t.TopicID]
		}
		for _, p := range t.Partitions {
			out[ordering.TopicPartition{Topic: topic, Partition: p.Partition}] = kerr.ErrorForCode(p.ErrorCode)
		}
	}
	return out
}
