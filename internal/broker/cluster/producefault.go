package cluster

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// produceFaults are the partitions whose next produce requests a broker's listener answers
// itself with an error, without the broker seeing their batches: the edge's model of a leader
// that refuses a write for a moment (NOT_ENOUGH_REPLICAS while its ISR is short, say). The
// zero value has none armed.
type produceFaults struct {
	armed atomic.Int32 // len(by): connections look at requests only while some are armed
	mu    sync.Mutex
	by    map[partitionKey]*produceFault
}

type partitionKey struct {
	topic     string
	partition int32
}

// produceFault is one partition's armed fault.
type produceFault struct {
	left  int
	err   *kerr.Error
	delay time.Duration
}

// arm makes the next n produce requests for topic/partition fail with err after delay; n <= 0
// disarms.
func (f *produceFaults) arm(topic string, partition int32, n int, err *kerr.Error, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := partitionKey{topic, partition}
	if n <= 0 {
		delete(f.by, key)
	} else {
		if f.by == nil {
			f.by = map[partitionKey]*produceFault{}
		}
		f.by[key] = &produceFault{left: n, err: err, delay: delay}
	}
	f.armed.Store(int32(len(f.by)))
}

// take uses up one armed failure of topic/partition, if any.
func (f *produceFaults) take(topic string, partition int32) (*produceFault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := partitionKey{topic, partition}
	pf := f.by[key]
	if pf == nil {
		return nil, false
	}
	if pf.left--; pf.left == 0 {
		delete(f.by, key)
		f.armed.Store(int32(len(f.by)))
	}
	return pf, true
}

// refusal is a produce request the listener answers in part or in whole: the broker gets the
// request without the refused partitions, and its answer is completed with their errors before
// the client sees it.
type refusal struct {
	corr    int32
	req     *kmsg.ProduceRequest        // as the client sent it
	refused map[[2]int]refusedPartition // by topic and partition index in req
	delay   time.Duration
	buf     []byte        // the broker's answer, as it is written
	done    chan struct{} // closed once the completed answer is sent
}

type refusedPartition struct {
	topic string
	fault *produceFault
}

// intercept reads the rest of the request frame that starts with got (at most its length
// prefix), as a produce fault is armed, and queues what the broker is to read in its place.
func (c *edgeConn) intercept(got []byte) error {
	var size [4]byte
	k := copy(size[:], got)
	if _, err := io.ReadFull(c.Conn, size[k:]); err != nil {
		return err
	}
	frame := make([]byte, 4+binary.BigEndian.Uint32(size[:]))
	copy(frame, size[:])
	if _, err := io.ReadFull(c.Conn, frame[4:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	c.pend = frame
	hdr, kreq, err := wire.ParseRequest(frame[4:])
	req, ok := kreq.(*kmsg.ProduceRequest)
	if err != nil || !ok {
		return nil // not a produce request (or a bad one): the broker deals with it
	}
	img := c.e.nw.image()
	r := &refusal{corr: hdr.CorrelationID, req: req, refused: map[[2]int]refusedPartition{}, done: make(chan struct{})}
	left := *req
	left.Topics = nil
	for i, t := range req.Topics {
		name := t.Topic
		if req.Version >= 13 {
			if tt := img.TopicByID(meta.TopicID(t.TopicID)); tt != nil {
				name = tt.Name
			}
		}
		kept := t
		kept.Partitions = nil
		for j, p := range t.Partitions {
			if pf, ok := c.e.produce.take(name, p.Partition); ok {
				r.refused[[2]int{i, j}] = refusedPartition{name, pf}
				r.delay = max(r.delay, pf.delay)
				continue
			}
			kept.Partitions = append(kept.Partitions, p)
		}
		if len(kept.Partitions) > 0 {
			left.Topics = append(left.Topics, kept)
		}
	}
	if len(r.refused) == 0 {
		return nil
	}
	fmtr := kmsg.NewRequestFormatter(kmsg.FormatterClientID(hdr.ClientID))
	reduced := fmtr.AppendRequest(nil, &left, hdr.CorrelationID)
	if req.Acks == 0 {
		c.pend = reduced // no answer is expected: the refused batches just vanish
		return nil
	}
	// The broker answers a connection's requests in order, reading one frame ahead. A barrier
	// (an empty acks=0 produce, which has no answer) goes first: once the broker reads past it,
	// it has answered every earlier request, so the next answer it writes is the reduced
	// request's, which the connection then completes.
	barrier := kmsg.NewPtrProduceRequest()
	barrier.SetVersion(req.Version)
	barrier.Acks = 0
	c.pend = fmtr.AppendRequest(nil, barrier, hdr.CorrelationID)
	c.next, c.refusal = reduced, r
	return nil
}

// capture takes the broker's answer to a refusal's reduced request as it is written, and once
// it is whole, writes the completed answer after the fault's delay.
func (c *edgeConn) capture(r *refusal, p []byte) (int, error) {
	r.buf = append(r.buf, p...)
	if len(r.buf) < 4 || len(r.buf) < 4+int(binary.BigEndian.Uint32(r.buf)) {
		return len(p), nil
	}
	defer close(r.done)
	c.capturing.Store(nil)
	n := 4 + int(binary.BigEndian.Uint32(r.buf))
	out, err := r.complete(r.buf[4:n])
	if err != nil {
		return 0, err
	}
	t := time.NewTimer(r.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.done:
		return 0, net.ErrClosed
	}
	if _, err := c.Conn.Write(append(out, r.buf[n:]...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// complete returns the client's answer: the broker's answer to the reduced request with the
// refused partitions' errors, in the order of the client's request.
func (r *refusal) complete(frame []byte) ([]byte, error) {
	kresp, err := wire.ParseResponse(frame, r.corr, r.req)
	if err != nil {
		return nil, fmt.Errorf("cluster: completing a refused produce: %w", err)
	}
	resp := kresp.(*kmsg.ProduceResponse)
	type at struct{ t, p int }
	answered := map[[2]any]at{}
	for i, t := range resp.Topics {
		for j, p := range t.Partitions {
			answered[[2]any{topicRef(t.Topic, t.TopicID), p.Partition}] = at{i, j}
		}
	}
	out := *resp
	out.Topics = nil
	for i, rt := range r.req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for j, rp := range rt.Partitions {
			rf, refused := r.refused[[2]int{i, j}]
			if a, ok := answered[[2]any{topicRef(rt.Topic, rt.TopicID), rp.Partition}]; ok && !refused {
				st.Partitions = append(st.Partitions, resp.Topics[a.t].Partitions[a.p])
				continue
			}
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			if refused {
				sp.ErrorCode = rf.fault.err.Code
				msg := fmt.Sprintf("%s-%d: injected fault: %s", rf.topic, rp.Partition, rf.fault.err.Message)
				sp.ErrorMessage = &msg
			}
			st.Partitions = append(st.Partitions, sp)
		}
		out.Topics = append(out.Topics, st)
	}
	return wire.AppendResponse(nil, r.corr, &out), nil
}

// topicRef identifies a topic by name before produce v13 and by id from it.
func topicRef(name string, id [16]byte) any {
	if name != "" {
		return name
	}
	return id
}
