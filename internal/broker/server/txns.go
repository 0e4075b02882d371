package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/group"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/partition"
	"github.com/kafkaguard/kafkaguard/internal/broker/txn"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
)

// txnAbortInterval is Kafka's transaction.abort.timed.out.transaction.cleanup.interval.ms.
const txnAbortInterval = 10 * time.Second

// newTxnCoordinator returns this broker's transaction coordinator. __transaction_state has as
// many partitions as __consumer_offsets.
func (b *Broker) newTxnCoordinator() *txn.Coordinator {
	return txn.NewCoordinator(txn.Config{
		Partitions:         b.cfg.Group.OffsetsPartitions,
		OffsetsPartitions:  b.cfg.Group.OffsetsPartitions,
		AllocateProducerID: b.cfg.Controller.AllocateProducerID,
		Markers:            markerWriter{b},
	}, b.lg.With("component", "txn"))
}

// applyTxns moves transaction coordination with leadership of __transaction_state partitions. A
// partition's leader epoch is its coordinator epoch, which the coordinator's markers carry.
func (b *Broker) applyTxns(img *meta.Image) {
	load := func(ctx context.Context, p int32, store group.Store, replay group.Replay) error {
		return b.txns.Load(ctx, p, img.Topic(meta.TransactionStateTopic).Partitions[p].LeaderEpoch, store, replay)
	}
	b.applyCoordinator(img, meta.TransactionStateTopic, b.txnLoaded, load, b.txns.Unload)
}

// abortTimedOutTxns is the periodic abort of transactions past their timeout.
func (b *Broker) abortTimedOutTxns() { b.txns.AbortTimedOut(b.ctx) }

// ensureTxnTopic asks the controller for __transaction_state, as Kafka creates it on the first
// FindCoordinator for a transactional id: RF min(3, live brokers), min.insync.replicas 2
// (capped at the RF by the replicas).
func (b *Broker) ensureTxnTopic(ctx context.Context, img *meta.Image) {
	live := 0
	for _, bk := range img.Brokers {
		if bk.Alive {
			live++
		}
	}
	spec := TopicSpec{
		Name: meta.TransactionStateTopic, Partitions: b.cfg.Group.OffsetsPartitions,
		ReplicationFactor: int16(max(1, min(3, live))),
		Configs:           map[string]string{meta.ConfigMinISR: "2"},
	}
	if errs := b.cfg.Controller.CreateTopics(ctx, []TopicSpec{spec}, false); len(errs) == 1 && errs[0] != nil && !errors.Is(errs[0], kerr.TopicAlreadyExists) {
		b.lg.Warn("creating the transaction state topic", "err", errs[0])
	}
}

// markerWriter writes transaction markers for the coordinator: on partitions this broker leads
// directly, on the others with WriteTxnMarkers to their leaders.
type markerWriter struct{ b *Broker }

// WriteMarkers implements txn.MarkerWriter. A partition whose topic is gone counts as done,
// as in Kafka.
func (w markerWriter) WriteMarkers(ctx context.Context, producerID int64, epoch int16, commit bool, coordinatorEpoch int32, parts []txn.Partition) error {
	img := w.b.Image()
	remote := map[int32][]txn.Partition{}
	var errs []error
	for _, p := range parts {
		t := img.Topic(p.Topic)
		if t == nil || int(p.Partition) >= len(t.Partitions) {
			continue
		}
		leader := t.Partitions[p.Partition].Leader
		if leader != w.b.cfg.ID {
			remote[leader] = append(remote[leader], p)
			continue
		}
		r := w.b.replica(p.Topic, p.Partition)
		if r == nil {
			errs = append(errs, fmt.Errorf("%s-%d: %w", p.Topic, p.Partition, kerr.NotLeaderForPartition))
			continue
		}
		if err := w.b.appendMarker(ctx, r, p.Topic, p.Partition, producerID, epoch, commit, coordinatorEpoch); err != nil {
			errs = append(errs, err)
		}
	}
	for leader, ps := range remote {
		if err := w.remote(ctx, img, leader, producerID, epoch, commit, coordinatorEpoch, ps); err != nil {
			errs = append(errs, fmt.Errorf("markers on broker %d: %w", leader, err))
		}
	}
	return errors.Join(errs...)
}

// appendMarker writes a transaction marker on r, a partition this broker leads: on a
// __consumer_offsets partition through the group coordinator, which with it applies or drops
// the producer's pending transactional offset commits (Kafka's completeTransaction), on any
// other directly.
func (b *Broker) appendMarker(ctx context.Context, r *partition.Replica, topic string, p int32, producerID int64, epoch int16, commit bool, coordinatorEpoch int32) error {
	if topic == meta.OffsetsTopic {
		return b.groups.CompleteTxn(ctx, p, producerID, epoch, commit, coordinatorEpoch)
	}
	return r.AppendMarker(ctx, producerID, epoch, commit, coordinatorEpoch)
}

// remote sends one WriteTxnMarkers to leader for parts.
func (w markerWriter) remote(ctx context.Context, img *meta.Image, leader int32, producerID int64, epoch int16, commit bool, coordinatorEpoch int32, parts []txn.Partition) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(1)
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = producerID, epoch, commit, coordinatorEpoch
	byTopic := map[string]int{}
	for _, p := range parts {
		i, ok := byTopic[p.Topic]
		if !ok {
			i = len(m.Topics)
			byTopic[p.Topic] = i
			t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			t.Topic = p.Topic
			m.Topics = append(m.Topics, t)
		}
		m.Topics[i].Partitions = append(m.Topics[i].Partitions, p.Partition)
	}
	req.Markers = append(req.Markers, m)
	kresp, err := w.b.brokerRequest(ctx, img, leader, "kafkaguard-txn-", req)
	if err != nil {
		if errors.Is(err, errBrokerUnavailable) {
			return fmt.Errorf("leader %d unavailable: %w", leader, kerr.NotLeaderForPartition)
		}
		return err
	}
	resp, ok := kresp.(*kmsg.WriteTxnMarkersResponse)
	if !ok {
		return fmt.Errorf("unexpected response %T", kresp)
	}
	var errs []error
	for _, rm := range resp.Markers {
		for _, t := range rm.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 && p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
					errs = append(errs, fmt.Errorf("%s-%d: %w", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode)))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// errBrokerUnavailable is brokerRequest's error for a broker the image does not show alive.
var errBrokerUnavailable = errors.New("broker unavailable")

// brokerRequest sends req to broker id on a connection of its own (client id clientID and this
// broker's id), authenticated as the brokers authenticate to each other, within 30 s.
func (b *Broker) brokerRequest(ctx context.Context, img *meta.Image, id int32, clientID string, req kmsg.Request) (kmsg.Response, error) {
	bk, ok := img.Broker(id)
	if !ok || !bk.Alive {
		return nil, fmt.Errorf("broker %d: %w", id, errBrokerUnavailable)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := wire.Dial(dctx, b.cfg.Dialer, net.JoinHostPort(bk.Host, strconv.Itoa(int(bk.Port))), clientID+strconv.Itoa(int(b.cfg.ID)))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := b.authenticate(dctx, c); err != nil {
		return nil, err
	}
	return c.Request(dctx, req)
}
