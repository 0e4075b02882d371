package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// fetcherManager runs one replica fetcher per leader this node follows, as Kafka's
// ReplicaFetcherManager does, and moves partitions between them as leadership changes.
type fetcherManager struct {
	b        *Broker
	mu       sync.Mutex
	fetchers map[int32]*fetcher
	leaderOf map[tp]int32
}

func newFetcherManager(b *Broker) *fetcherManager {
	return &fetcherManager{b: b, fetchers: map[int32]*fetcher{}, leaderOf: map[tp]int32{}}
}

// add makes the fetcher for leader replicate key. truncate asks for a truncation against the
// leader's epoch history first (always done when a partition joins a fetcher).
func (m *fetcherManager) add(key tp, leader int32, truncate bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.leaderOf[key]; ok && old != leader {
		m.fetchers[old].remove(key)
	} else if ok && !truncate {
		return
	}
	f := m.fetchers[leader]
	if f == nil {
		f = newFetcher(m.b, leader)
		m.fetchers[leader] = f
	}
	m.leaderOf[key] = leader
	f.add(key)
}

func (m *fetcherManager) remove(key tp) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.leaderOf[key]; ok {
		m.fetchers[old].remove(key)
		delete(m.leaderOf, key)
	}
}

func (m *fetcherManager) stopAll() {
	m.mu.Lock()
	fs := m.fetchers
	m.fetchers = map[int32]*fetcher{}
	m.leaderOf = map[tp]int32{}
	m.mu.Unlock()
	for _, f := range fs {
		f.stop()
	}
}

// fetcher replicates the partitions one leader leads to this node, over the Kafka Fetch API with
// this node's replica id, truncating diverged logs with OffsetForLeaderEpoch first.
type fetcher struct {
	b      *Broker
	leader int32
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wakeCh chan struct{}

	mu       sync.Mutex
	parts    map[tp]uint64 // value: the generation of a pending truncation request, 0 if none
	gen      uint64        // the last generation handed out
	client   *wire.Client
	failures int
}

func newFetcher(b *Broker, leader int32) *fetcher {
	ctx, cancel := context.WithCancel(b.ctx)
	f := &fetcher{b: b, leader: leader, ctx: ctx, cancel: cancel, done: make(chan struct{}), wakeCh: make(chan struct{}, 1), parts: map[tp]uint64{}}
	go f.run()
	return f
}

func (f *fetcher) add(key tp) {
	f.mu.Lock()
	f.gen++
	f.parts[key] = f.gen
	f.mu.Unlock()
	f.poke()
}

func (f *fetcher) remove(key tp) {
	f.mu.Lock()
	delete(f.parts, key)
	f.mu.Unlock()
}

func (f *fetcher) poke() {
	select {
	case f.wakeCh <- struct{}{}:
	default:
	}
}

func (f *fetcher) resetConn() {
	f.mu.Lock()
	if f.client != nil {
		_ = f.client.Close()
		f.client = nil
	}
	f.mu.Unlock()
}

func (f *fetcher) stop() {
	f.cancel()
	f.resetConn()
	<-f.done
}

func (f *fetcher) sleep(d time.Duration) {
	select {
	case <-f.ctx.Done():
	case <-f.wakeCh:
	case <-f.b.cfg.Clock.After(d):
	}
}

func (f *fetcher) run() {
	defer close(f.done)
	defer f.resetConn()
	parts := map[tp]uint64{} // the round's copy, reused: one map for the fetcher's life
	for f.ctx.Err() == nil {
		f.snapshot(parts)
		if len(parts) == 0 {
			f.sleep(time.Second)
			continue
		}
		c, err := f.conn()
		if err == nil {
			err = f.round(c, parts)
		}
		if err != nil {
			f.resetConn()
			f.failures++
			if f.failures == 1 || f.failures%50 == 0 {
				f.b.lg.Debug("replica fetch from leader failed", "leader", f.leader, "err", err)
			}
			f.sleep(min(time.Duration(f.failures)*20*time.Millisecond, 500*time.Millisecond))
			continue
		}
		f.failures = 0
	}
}

func (f *fetcher) conn() (*wire.Client, error) {
	f.mu.Lock()
	c := f.client
	f.mu.Unlock()
	if c != nil {
		return c, nil
	}
	bk, ok := f.b.Image().Broker(f.leader)
	if !ok {
		return nil, fmt.Errorf("leader %d is not in the metadata", f.leader)
	}
	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Second)
	defer cancel()
	c, err := wire.Dial(ctx, f.b.cfg.Dialer, net.JoinHostPort(bk.Host, strconv.Itoa(int(bk.Port))), "kafkaguard-replica-"+strconv.Itoa(int(f.b.cfg.ID)))
	if err != nil {
		return nil, err
	}
	if err := f.b.authenticate(ctx, c); err != nil {
		_ = c.Close()
		return nil, err
	}
	f.mu.Lock()
	f.client = c
	f.mu.Unlock()
	return c, nil
}

// round truncates the partitions that need it, then fetches once for the rest.
func (f *fetcher) round(c *wire.Client, parts map[tp]uint64) error {
	self := f.b.cfg.ID
	for key, gen := range parts {
		if gen == 0 {
			continue
		}
		ok, err := f.truncate(c, key)
		if err != nil {
			return err
		}
		if ok {
			f.truncated(key, gen)
			parts[key] = 0
		}
	}

	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID = self
	req.MaxWaitMillis = int32(f.b.cfg.ReplicaFetchMaxWait.Milliseconds())
	req.MinBytes = 1
	req.MaxBytes = 16 << 20
	byTopic := map[string]int{}
	epochs := map[tp]int32{}
	for key, gen := range parts {
		r := f.b.replica(key.topic, key.partition)
		if gen != 0 || r == nil {
			continue
		}
		i, ok := byTopic[key.topic]
		if !ok {
			t := kmsg.NewFetchRequestTopic()
			t.Topic = key.topic
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			byTopic[key.topic] = i
		}
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition = key.partition
		p.CurrentLeaderEpoch = r.LeaderEpoch()
		epochs[key] = p.CurrentLeaderEpoch
		p.FetchOffset = r.Log().EndOffset()
		p.LastFetchedEpoch = r.Log().LatestEpoch()
		p.PartitionMaxBytes = 4 << 20
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	if len(req.Topics) == 0 {
		f.sleep(100 * time.Millisecond)
		return nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.b.cfg.ReplicaFetchMaxWait+10*time.Second)
	defer cancel()
	// The answer's record batches live in the client's buffer until the next round's fetch:
	// they are in the log by then (the asks in between use buffers of their own).
	kresp, err := c.RequestReusing(ctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return fmt.Errorf("fetch from leader %d: %w", f.leader, kerr.ErrorForCode(resp.ErrorCode))
	}
	backoff := false
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			key := tp{t.Topic, p.Partition}
			f.mu.Lock()
			_, still := f.parts[key]
			f.mu.Unlock()
			r := f.b.replica(key.topic, key.partition)
			if !still || r == nil {
				continue
			}
			switch p.ErrorCode {
			case 0:
				if d := p.DivergingEpoch; d.EndOffset >= 0 {
					// The leader found that our log diverges from its own (KIP-320): truncate now,
					// without another OffsetForLeaderEpoch round trip.
					if _, err := r.TruncateAgainst(d.Epoch, d.EndOffset, epochs[key]); roleMoved(err) {
						backoff = true
					} else if err != nil {
						return err
					}
					continue
				}
				if err := r.AppendReplicated(p.RecordBatches, p.HighWatermark, epochs[key]); errors.Is(err, kerr.FencedLeaderEpoch) {
					backoff = true // leadership moved while the fetch was in flight
				} else if err != nil {
					f.b.lg.Warn("appending replicated batches", "topic", key.topic, "partition", key.partition, "err", err)
					f.markTruncate(key)
				}
			case kerr.OffsetOutOfRange.Code:
				if err := f.outOfRange(c, key, r, epochs[key]); err != nil {
					return err
				}
			default:
				backoff = true // not leader (yet), stale epoch: wait for the new metadata
			}
		}
	}
	if backoff {
		f.sleep(50 * time.Millisecond)
	}
	return nil
}

// outOfRange handles OFFSET_OUT_OF_RANGE as Kafka's fetcher does: a log that ends below the
// leader's log start can never catch up by fetching, so it restarts empty at the leader's log
// start; any other log (one that ends past the leader's end, say) is truncated against the
// leader's epochs before the next fetch.
func (f *fetcher) outOfRange(c *wire.Client, key tp, r *partition.Replica, leaderEpoch int32) error {
	start, err := f.leaderLogStart(c, key, leaderEpoch)
	if err != nil {
		return err
	}
	if end := r.Log().EndOffset(); start > end {
		if err := r.TruncateFullyAndStartAt(start, leaderEpoch); err != nil {
			f.b.lg.Warn("restarting a follower log at the leader's log start", "topic", key.topic, "partition", key.partition, "err", err)
		}
		return nil
	}
	f.markTruncate(key)
	return nil
}

// ask sends the leader a request other than Fetch, waiting at most 5 seconds for the answer.
func (f *fetcher) ask(c *wire.Client, req kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	return c.Request(ctx, req)
}

// leaderLogStart asks the leader for its log start offset (ListOffsets earliest, as this
// replica). It returns -1 when the leader answers with an error (it may no longer lead).
func (f *fetcher) leaderLogStart(c *wire.Client, key tp, leaderEpoch int32) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(4)
	req.ReplicaID = f.b.cfg.ID
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = key.topic
	p := kmsg.NewListOffsetsRequestTopicPartition()
	p.Partition = key.partition
	p.CurrentLeaderEpoch = leaderEpoch
	p.Timestamp = -2 // earliest
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	kresp, err := f.ask(c, req)
	if err != nil {
		return -1, err
	}
	resp := kresp.(*kmsg.ListOffsetsResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return -1, fmt.Errorf("ListOffsets: malformed answer from leader %d", f.leader)
	}
	if rp := resp.Topics[0].Partitions[0]; rp.ErrorCode == 0 {
		return rp.Offset, nil
	}
	return -1, nil
}

// snapshot copies the partitions to fetch into dst (emptied first), each with the generation of
// its pending truncation request (0 if none).
func (f *fetcher) snapshot(dst map[tp]uint64) {
	clear(dst)
	f.mu.Lock()
	defer f.mu.Unlock()
	maps.Copy(dst, f.parts)
}

// truncated records that the truncation request gen (from a snapshot) is done. A request made
// since, by markTruncate or a new add, has a newer generation and stays pending.
func (f *fetcher) truncated(key tp, gen uint64) {
	f.mu.Lock()
	if g, ok := f.parts[key]; ok && g == gen {
		f.parts[key] = 0
	}
	f.mu.Unlock()
}

// needsTruncation reports whether key must be truncated before it is fetched.
func (f *fetcher) needsTruncation(key tp) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.parts[key] != 0
}

func (f *fetcher) markTruncate(key tp) {
	f.mu.Lock()
	if _, ok := f.parts[key]; ok {
		f.gen++
		f.parts[key] = f.gen
	}
	f.mu.Unlock()
}

// truncate asks the leader where this replica's latest epoch ends and cuts the local log there,
// so records the old leader wrote but the new one never had are removed (Kafka's KIP-101).
func (f *fetcher) truncate(c *wire.Client, key tp) (bool, error) {
	r := f.b.replica(key.topic, key.partition)
	if r == nil {
		return false, nil
	}
	latest, epoch := r.Log().LatestEpoch(), r.LeaderEpoch()
	if latest < 0 {
		return true, nil // empty log: nothing can diverge
	}
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(4)
	req.ReplicaID = f.b.cfg.ID
	t := kmsg.NewOffsetForLeaderEpochRequestTopic()
	t.Topic = key.topic
	p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	p.Partition = key.partition
	p.CurrentLeaderEpoch = epoch
	p.LeaderEpoch = latest
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	kresp, err := f.ask(c, req)
	if err != nil {
		return false, err
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return false, fmt.Errorf("OffsetForLeaderEpoch: malformed answer from leader %d", f.leader)
	}
	rp := resp.Topics[0].Partitions[0]
	if rp.ErrorCode != 0 {
		f.sleep(50 * time.Millisecond)
		return false, nil
	}
	done, err := r.TruncateAgainst(rp.LeaderEpoch, rp.EndOffset, epoch)
	if roleMoved(err) {
		return false, nil // leadership moved: the next leader's fetcher truncates again
	}
	return done, err
}

// roleMoved reports whether err says the replica no longer follows in the epoch a leader's
// answer came in: the answer is dropped, not an error of the connection.
func roleMoved(err error) bool {
	return errors.Is(err, kerr.FencedLeaderEpoch) || errors.Is(err, kerr.NotLeaderForPartition)
}
