package server

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/log"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
)

// replicaIDOf returns the fetching replica's broker id, or -1 for a consumer.
func replicaIDOf(req *kmsg.FetchRequest) int32 {
	if req.Version >= 15 {
		return req.ReplicaState.ID
	}
	return req.ReplicaID
}

type fetchPart struct {
	name string
	r    *partition.Replica
	req  *kmsg.FetchRequestTopicPartition
	resp *kmsg.FetchResponseTopicPartition

	slices []log.FileSlice // zero-copy: the file ranges that hold the partition's records
}

// handleFetch serves consumers (data below the high watermark, or the last stable offset for
// read_committed, with the aborted transactions to skip) and followers (data up to the
// log end, reporting their position to the leader). It long-polls: when fewer than MinBytes are
// available it waits for new data up to MaxWaitMillis. Fetch sessions are not kept: every
// response has session id 0, so clients send full requests, which Kafka permits.
func (b *Broker) handleFetch(ctx context.Context, req *kmsg.FetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	replicaID := replicaIDOf(req)
	img := b.Image()
	var parts []fetchPart
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name := rt.Topic
		unknownID := false
		if req.Version >= 13 {
			if t := img.TopicByID(meta.TopicID(rt.TopicID)); t != nil {
				name = t.Name
			} else {
				unknownID = true
			}
		}
		st.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			rp, sp := &rt.Partitions[j], &st.Partitions[j]
			*sp = kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			if unknownID {
				sp.ErrorCode = kerr.UnknownTopicID.Code
				continue
			}
			r := b.replica(name, rp.Partition)
			if r == nil {
				sp.ErrorCode = b.missingPartitionCode(img, name, rp.Partition)
				continue
			}
			// sp points into st.Partitions' backing array, which stays put when st is appended.
			parts = append(parts, fetchPart{name: name, r: r, req: rp, resp: sp})
		}
		resp.Topics = append(resp.Topics, st)
	}

	// As Kafka: MaxWaitMillis <= 0 answers at once and has no upper bound (the client's request
	// timeout bounds it on its side; here a closed connection or a stopping node ends it too);
	// MinBytes is capped at what the response may carry.
	// Whatever happens below (an error, a panic), the file ranges read are released unless
	// fetchResponse handed them to the response.
	defer func() { releaseParts(parts) }()
	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	deadline := time.Now().Add(maxWait)
	_, minBytes := fetchByteLimits(req)
	var wake chan struct{}
	for {
		total, failed := b.readParts(parts, replicaID, req)
		if failed || total >= minBytes || len(parts) == 0 || !time.Now().Before(deadline) {
			break
		}
		if wake == nil {
			wake = make(chan struct{}, 1)
			for _, p := range parts {
				defer p.r.Watch(wake)()
			}
			continue // read once more: data may have arrived before the watch was set
		}
		// Hold no segment file while waiting (retention may delete it meanwhile): the read
		// after the wait takes the ranges again.
		releaseParts(parts)
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			// Nobody reads the answer (the client left, or the node stops), and the records
			// of the last read were released: answer without them.
			for i := range parts {
				parts[i].resp.RecordBatches = nil
			}
			break
		}
	}
	// A partition without data gets empty records, never null, as in Kafka: clients that read
	// the records of Fetch v4-v11 as a plain int32 length (sarama) cannot decode -1.
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if sp := &resp.Topics[i].Partitions[j]; sp.RecordBatches == nil {
				sp.RecordBatches = []byte{}
			}
		}
	}
	return fetchResponse(resp, parts)
}

// fetchMaxBytes is Kafka's fetch.max.bytes default: the most one Fetch response carries,
// whatever the request asks for.
const fetchMaxBytes = 55 << 20

// fetchByteLimits returns how many bytes a fetch's response may carry and how many make it
// worth answering before MaxWaitMillis, as KafkaApis.handleFetchRequest computes them: MaxBytes
// (none before v3) capped at fetch.max.bytes, and MinBytes capped at that.
func fetchByteLimits(req *kmsg.FetchRequest) (maxBytes, minBytes int) {
	maxBytes = fetchMaxBytes
	if req.Version >= 3 {
		maxBytes = min(int(req.MaxBytes), maxBytes)
	}
	return maxBytes, min(int(req.MinBytes), maxBytes)
}

// readParts fills each partition's response from its replica, within the request's byte limits.
// It reports the bytes read and whether any partition failed or diverged (which ends a long poll
// at once).
func (b *Broker) readParts(parts []fetchPart, replicaID int32, req *kmsg.FetchRequest) (total int, failed bool) {
	budget, _ := fetchByteLimits(req)
	releaseParts(parts) // a long poll reads again
	for i := range parts {
		p := &parts[i]
		maxBytes := min(int(p.req.PartitionMaxBytes), budget)
		if total > 0 && maxBytes <= 0 {
			p.resp.RecordBatches = nil
			continue
		}
		epoch := int32(-1)
		if req.Version >= 9 {
			epoch = p.req.CurrentLeaderEpoch
		}
		preq := partition.FetchRequest{
			Offset: p.req.FetchOffset, MaxBytes: max(maxBytes, 1),
			ReplicaID: replicaID, CurrentLeaderEpoch: epoch,
			HasLastFetchedEpoch: req.Version >= 12 && p.req.LastFetchedEpoch >= 0, LastFetchedEpoch: p.req.LastFetchedEpoch,
			ReadCommitted: replicaID < 0 && req.Version >= 4 && req.IsolationLevel == 1,
		}
		b.partitionHook(1, p.name, p.req.Partition)
		var res partition.ReadResult
		var n int
		var err error
		if b.cfg.DisableZeroCopy {
			res, err = p.r.Read(preq)
			n = len(res.Records)
		} else {
			res, n, err = readZeroCopy(p, preq)
		}
		p.resp.ErrorCode = errorCode(err)
		p.resp.HighWatermark, p.resp.LastStableOffset, p.resp.LogStartOffset = res.HighWatermark, res.LastStableOffset, res.LogStartOffset
		p.resp.RecordBatches = res.Records
		p.resp.AbortedTransactions = nil
		if res.AbortedTransactions != nil {
			p.resp.AbortedTransactions = make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, len(res.AbortedTransactions))
			for k, a := range res.AbortedTransactions {
				p.resp.AbortedTransactions[k] = kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset}
			}
		}
		p.resp.DivergingEpoch = kmsg.NewFetchResponseTopicPartitionDivergingEpoch()
		if d := res.DivergingEpoch; d != nil {
			p.resp.DivergingEpoch.Epoch, p.resp.DivergingEpoch.EndOffset = d.Epoch, d.EndOffset
		}
		if err != nil || res.DivergingEpoch != nil {
			failed = true // the fetcher must act before it fetches again: answer now, as Kafka's DelayedFetch
			continue
		}
		total += n
		budget -= n
	}
	return total, failed
}
