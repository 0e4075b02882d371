package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
	"github.com/kafkaguard/kafkaguard/internal/broker/safe"
)

// handleProduce appends each partition's batch on this node (which must lead the partition).
// Partitions are handled concurrently, so one acks=all wait does not delay the others. With
// acks=0 no response is sent.
//
// Before anything is appended the request is checked as Kafka's KafkaApis and ReplicaManager
// check it: a transactional batch in a request without a transactional id fails every partition
// with TRANSACTIONAL_ID_AUTHORIZATION_FAILED; zstd before v7 is
// UNSUPPORTED_COMPRESSION_TYPE; acks other than -1, 0 and 1 is INVALID_REQUIRED_ACKS for every
// partition this node leads. A transactional batch that would open its producer's transaction
// on a partition is verified with the transaction coordinator first (verifyBatch). Each batch is
// then validated by its replica (partition.AppendVerified).
func (b *Broker) handleProduce(ctx context.Context, req *kmsg.ProduceRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	// As KafkaApis: transactional batches need the request's transactional id.
	unauthorized := req.TransactionID == nil && hasTransactionalBatch(req)
	validAcks := req.Acks == -1 || req.Acks == 0 || req.Acks == 1
	if req.Acks == -1 {
		// Only an acks=all produce waits (for the ISR); the others answer once appended.
		var cancel context.CancelFunc
		ctx, cancel = produceTimeout(ctx, req.TimeoutMillis)
		defer cancel()
	}
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
			if unauthorized {
				sp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
				msg := "kafkaguard broker: a transactional batch needs the request's transactional id"
				sp.ErrorMessage = &msg
				continue
			}
			if meta.IsInternal(name) {
				// As Kafka: only the coordinators write their internal topics.
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
			// The first batch's header, read once here for the zstd check and the
			// transaction verification; the replica validates the whole batch itself.
			h, herr := log.ParseBatchHeader(rp.Records)
			if req.Version < 7 && herr == nil && h.Compression() == codecZstd {
				sp.ErrorCode = kerr.UnsupportedCompressionType.Code
				msg := fmt.Sprintf("kafkaguard broker: produce v%d may not carry zstd batches (v7 and later may)", req.Version)
				sp.ErrorMessage = &msg
				continue
			}
			if !validAcks {
				sp.ErrorCode = kerr.InvalidRequiredAcks.Code
				msg := fmt.Sprintf("kafkaguard broker: acks %d, want -1, 0 or 1", req.Acks)
				sp.ErrorMessage = &msg
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer safe.RecoverFunc(b.lg, func() string { return fmt.Sprintf("produce to %s-%d", name, rp.Partition) }, func(err error) {
					sp.ErrorCode, sp.ErrorMessage = kerr.UnknownServerError.Code, errMessage(err)
				})
				b.partitionHook(0, name, rp.Partition)
				var guard uint64
				var code int16
				if herr == nil {
					guard, code = b.verifyBatch(ctx, req, r, name, rp.Partition, h)
				}
				if code != 0 {
					sp.ErrorCode = code
					if code != kerr.NotLeaderForPartition.Code {
						msg := "kafkaguard broker: the transaction coordinator did not verify this partition in the producer's open transaction"
						sp.ErrorMessage = &msg
					}
					return
				}
				res, err := r.AppendVerified(ctx, rp.Records, req.Acks, guard)
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

// verifyBatch verifies a transactional batch (header h) that would open its producer's
// transaction on r with the transaction coordinator (verifyTxn), returning the guard to append it
// under, or the error code the partition gets. Other batches need nothing (guard 0, code 0).
func (b *Broker) verifyBatch(ctx context.Context, req *kmsg.ProduceRequest, r *partition.Replica, topic string, p int32, h log.BatchHeader) (uint64, int16) {
	if !h.IsTransactional() || h.IsControl() || h.ProducerID < 0 || req.TransactionID == nil {
		return 0, 0
	}
	guard, need, err := r.VerificationGuard(h.ProducerID, h.ProducerEpoch)
	if err != nil {
		return 0, errorCode(err)
	}
	if !need {
		return 0, 0
	}
	return guard, produceVerifyCode(b.verifyTxn(ctx, *req.TransactionID, h.ProducerID, h.ProducerEpoch, topic, p), req.Version)
}

// produceTimeout bounds a produce's acks=all wait as Kafka's DelayedProduce does: a timeout of
// 0 (or less) expires as soon as the batch is appended, so acks=all answers REQUEST_TIMED_OUT
// unless the ISR already holds the batch; it is not a wait without end.
func produceTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, time.Duration(max(ms, 0))*time.Millisecond)
}

// codecZstd is the zstd compression codec in a batch's attributes.
const codecZstd = 4

// hasTransactionalBatch reports whether the first batch of any partition in req is
// transactional, as Kafka's RequestUtils.hasTransactionalRecords.
func hasTransactionalBatch(req *kmsg.ProduceRequest) bool {
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			if h, err := log.ParseBatchHeader(p.Records); err == nil && h.IsTransactional() {
				return true
			}
		}
	}
	return false
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
