package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleDescribeProducers answers, for each partition this broker leads, the producers it keeps
// state for (Kafka's DescribeProducers, which kafka-transactions.sh's describe-producers, abort
// and find-hanging use): epoch, last sequence, last timestamp and the first offset of an open
// transaction. A partition led elsewhere is NOT_LEADER_OR_FOLLOWER, an unknown one
// UNKNOWN_TOPIC_OR_PARTITION. The coordinator epoch is that of the producer's last marker on the
// partition, -1 before any.
func (b *Broker) handleDescribeProducers(_ context.Context, req *kmsg.DescribeProducersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	img := b.Image()
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = p
			r := b.replica(rt.Topic, p)
			if r == nil {
				sp.ErrorCode = b.missingPartitionCode(img, rt.Topic, p)
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			producers, err := r.Producers()
			sp.ErrorCode = errorCode(err)
			for _, ps := range producers {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID, ap.ProducerEpoch = ps.ProducerID, int32(ps.ProducerEpoch)
				ap.LastSequence, ap.LastTimestamp = ps.LastSequence, ps.LastTimestamp
				ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = ps.CoordinatorEpoch, ps.TxnStartOffset
				sp.ActiveProducers = append(sp.ActiveProducers, ap)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
