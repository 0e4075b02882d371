package groupengine

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/ordering"
)

// A v10+ OffsetCommit response names topics by ID only; its partitions are
// mapped to the topic the request gave that ID, and each partition's error
// is kept.
func TestResultsResolvesTopicIDNamedResponses(t *testing.T) {
	id := [16]byte{1, 2, 3}
	req := &kmsg.OffsetCommitRequest{Topics: []kmsg.OffsetCommitRequestTopic{
		{Topic: "orders", TopicID: id, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0}, {Partition: 1}}},
		{Topic: "named", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 2}}},
	}}
	resp := &kmsg.OffsetCommitResponse{Topics: []kmsg.OffsetCommitResponseTopic{
		{TopicID: id, Partitions: []kmsg.OffsetCommitResponseTopicPartition{
			{Partition: 0}, {Partition: 1, ErrorCode: kerr.RebalanceInProgress.Code},
		}},
		{Topic: "named", Partitions: []kmsg.OffsetCommitResponseTopicPartition{{Partition: 2}}},
	}}
	got := Results(req, resp)
	if len(got) != 3 {
		t.Fatalf("results %v, want 3 partitions", got)
	}
	for tp, want := range map[ordering.TopicPartition]error{
		{Topic: "orders", Partition: 0}: nil,
		{Topic: "orders", Partition: 1}: kerr.RebalanceInProgress,
		{Topic: "named", Partition: 2}:  nil,
	} {
		err, ok := got[tp]
		if !ok || !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("%s: got %v (present %v), want %v", tp, err, ok, want)
		}
	}
}
