package server

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A restarted node accepts connections before it has applied its first metadata image; a
// client's metadata request in that window (sarama asks with auto-creation allowed) must get an
// answer it retries on, not crash the node.
func TestMetadataBeforeFirstImageAnswersUnknownAndCreatesNothing(t *testing.T) {
	b := &Broker{cfg: Config{AutoCreateTopics: true}}
	for _, v := range []int16{1, 4, 12} {
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(v)
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("orders")
		req.Topics = append(req.Topics, rt)
		req.AllowAutoTopicCreation = true
		resp := b.handleMetadata(context.Background(), req).(*kmsg.MetadataResponse)
		if len(resp.Brokers) != 0 || len(resp.Topics) != 1 {
			t.Fatalf("v%d: %d brokers, %d topics; want 0 and 1", v, len(resp.Brokers), len(resp.Topics))
		}
		if got := resp.Topics[0].ErrorCode; got != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("v%d: topic error %d, want UNKNOWN_TOPIC_OR_PARTITION", v, got)
		}
		all := kmsg.NewPtrMetadataRequest()
		all.SetVersion(v)
		if resp := b.handleMetadata(context.Background(), all).(*kmsg.MetadataResponse); len(resp.Topics) != 0 {
			t.Errorf("v%d: all topics: got %d, want none", v, len(resp.Topics))
		}
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	if resp := b.handleDescribeCluster(context.Background(), dc).(*kmsg.DescribeClusterResponse); len(resp.Brokers) != 0 {
		t.Errorf("DescribeCluster before the first image lists %d brokers", len(resp.Brokers))
	}
}
