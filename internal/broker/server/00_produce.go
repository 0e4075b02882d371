package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
	"github.com/kafkaguard/kafkaguard/internal/broker/safe"
)

// handleProduce appends each partition's batches on this node (which must lead the partition).
// Partitions are handled concurrently, so one acks=all wait does not delay the others. With
// acks=0 no response is sent.
func (b *Broker) handleProduce(ctx context.Context, req *kmsg.ProduceRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	if req.TransactionID != nil {
		b.lg.Warn("transactional produce refused: transactions are not supported", "transactional_id", *req.TransactionID)
	}
	ctx, cancel := withTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	img := b.Image()
	var wg sync.WaitGroup
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := &resp.Topics[i]
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name := rt.Topic
		if req.Version >= 13 {
			if t := img.TopicByID(meta.TopicID(rt.TopicID)); t != nil {
				name = t.Name
			}
		}
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := &st.Partitions[j]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			if req.TransactionID != nil {
				sp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
				msg := "kafkaguard broker: transactions are not supported"
				sp.ErrorMessage = &msg
				continue
			}
			if name == meta.OffsetsTopic {
				// As Kafka: only the group coordinator writes its internal topic.
				sp.ErrorCode = kerr.InvalidTopicException.Code
				msg := "kafkaguard broker: cannot append to internal topic " + name
				sp.ErrorMessage = &msg
				continue
			}
			r := b.replica(name, rp.Partition)
			if r == nil {
				sp.ErrorCode = b.missingPartitionCode(img, name, rp.Partition)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer safe.Recover(b.lg, fmt.Sprintf("produce to %s-%d", name, rp.Partition), func(err error) {
					sp.ErrorCode, sp.ErrorMessage = kerr.UnknownServerError.Code, errMessage(err)
				})
				b.partitionHook(0, name, rp.Partition)
				var res partition.AppendResult
				var err error
				if pf, ok := b.takeProduceFault(name, rp.Partition); ok {
					err = pf.fail(ctx, name, rp.Partition)
				} else {
					res, err = r.Append(ctx, rp.Records, req.Acks)
				}
				if err != nil {
					sp.ErrorCode = errorCode(err)
					msg := err.Error()
					sp.ErrorMessage = &msg
					if !errors.Is(err, kerr.NotLeaderForPartition) {
						b.lg.Debug("produce failed", "topic", name, "partition", rp.Partition, "err", err)
					}
					return
				}
				sp.BaseOffset, sp.LogStartOffset = res.BaseOffset, res.LogStartOffset
			}()
		}
	}
	wg.Wait()
	if req.Acks == 0 {
		return nil
	}
	return resp
}

// missingPartitionCode is the error for a partition this node does not hold.
func (b *Broker) missingPartitionCode(img *meta.Image, topic string, p int32) int16 {
	if _, ok := img.Partition(topic, p); ok {
		return kerr.NotLeaderForPartition.Code
	}
	return kerr.UnknownTopicOrPartition.Code
}

// errorCode maps an error to its Kafka code: the kerr error it wraps, or UNKNOWN_SERVER_ERROR.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return kerr.RequestTimedOut.Code
	}
	if errors.Is(err, context.Canceled) {
		return kerr.NotLeaderForPartition.Code
	}
	return kerr.UnknownServerError.Code
}

func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := fmt.Sprint(err)
	return &s
}
