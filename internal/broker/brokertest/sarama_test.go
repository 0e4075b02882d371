package brokertest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkaguard/kafkaguard/internal/testkit"
	"github.com/kafkaguard/kafkaguard/internal/testkit/bundled"
	"github.com/kafkaguard/kafkaguard/kafkatest"
)

// saramaConfig is sarama's no-loss configuration (idempotent, acks=all, one request in flight,
// manual commits) for Kafka version v, with timeouts short enough for tests.
func saramaConfig(v sarama.KafkaVersion) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = v
	cfg.ClientID = "kafkatest-sarama"
	cfg.Metadata.Retry.Max = 50
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 100
	cfg.Producer.Retry.Backoff = 50 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Session.Timeout = time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 100 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Timeout = 2 * time.Second
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 50 * time.Millisecond
	return cfg
}

// keyed is the value "key:seq" of key k (0-based) and sequence s, keyed by "kNN".
func keyed(topic string, k, s int) *sarama.ProducerMessage {
	key := fmt.Sprintf("k%02d", k)
	return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(fmt.Sprintf("%s:%d", key, s))}
}

// deliveries is the log of message values processed by one or more group members, in
// processing order.
type deliveries struct {
	mu     sync.Mutex
	values [][]byte
}

func (d *deliveries) add(v []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.values = append(d.values, v)
}

// records parses the values so far; call it from the test's goroutine.
func (d *deliveries) records(t *testing.T) []produced {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]produced, len(d.values))
	for i, v := range d.values {
		out[i] = parseValue(t, v)
	}
	return out
}

// groupRecorder is a sarama ConsumerGroupHandler that records every message it is given (in its
// own log and in the shared one, if any) and marks it; it commits the marked offsets
// synchronously whenever it has processed every message sarama has buffered for a claim, and
// when its session ends: manual, at-least-once commits. (Committing after every message would
// cost a fetch long-poll each: sarama sends commits and fetches on one connection, which a
// Kafka broker serves one request at a time.)
type groupRecorder struct {
	shared *deliveries

	mine   deliveries
	mu     sync.Mutex
	claims []int32
}

func (h *groupRecorder) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = nil
	for _, ps := range s.Claims() {
		h.claims = append(h.claims, ps...)
	}
	slices.Sort(h.claims)
	return nil
}

func (h *groupRecorder) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = nil
	return nil
}

func (h *groupRecorder) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.mine.add(m.Value)
			if h.shared != nil {
				h.shared.add(m.Value)
			}
			s.MarkMessage(m, "")
			if len(claim.Messages()) == 0 {
				s.Commit()
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

func (h *groupRecorder) records(t *testing.T) []produced { return h.mine.records(t) }

func (h *groupRecorder) owned() []int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.claims)
}

// groupMember is a running sarama consumer group member.
type groupMember struct {
	stop func() // leave the group (idempotent; also run at the end of the test)

	mu   sync.Mutex
	errs []error
}

// errors returns what the member reported: Consume's errors and those on its Errors channel.
func (m *groupMember) errors() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.errs)
}

func (m *groupMember) report(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errs = append(m.errs, err)
}

// runGroup runs a sarama consumer group member with handler h on topic until its stop is called.
func runGroup(t *testing.T, c *kafkatest.Cluster, cfg *sarama.Config, group, topic string, h sarama.ConsumerGroupHandler) *groupMember {
	t.Helper()
	cg, err := sarama.NewConsumerGroup(c.Bootstrap(), group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &groupMember{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				m.report(fmt.Errorf("consume: %w", err))
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range cg.Errors() {
			m.report(err)
		}
	}()
	var once sync.Once
	m.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			if err := cg.Close(); err != nil {
				t.Errorf("sarama group %s: close: %v", group, err)
			}
			<-errsDone
		})
	}
	t.Cleanup(m.stop)
	return m
}

func TestSaramaIdempotentProducerPartitionConsumerAndGroupLoseNothing(t *testing.T) {
	t.Parallel()
	for _, v := range []sarama.KafkaVersion{sarama.V2_1_0_0, sarama.V3_6_0_0, sarama.MaxVersion} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			c := kafkatest.NewCluster(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const topic, partitions, keys, perKey = "sarama", 3, 20, 50
			if err := c.CreateTopic(ctx, topic, partitions, 1, nil); err != nil {
				t.Fatal(err)
			}
			cfg := saramaConfig(v)

			prod, err := sarama.NewSyncProducer(c.Bootstrap(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			for s := 0; s < perKey; s++ {
				msgs := make([]*sarama.ProducerMessage, keys)
				for k := range msgs {
					msgs[k] = keyed(topic, k, s)
				}
				if err := prod.SendMessages(msgs); err != nil {
					t.Fatalf("round %d: %v", s, err)
				}
			}
			ends := endOffsets(ctx, t, c, topic)
			total := int64(0)
			for _, e := range ends {
				total += e
			}
			if total != keys*perKey {
				t.Fatalf("the log holds %d records, want %d (end offsets %v)", total, keys*perKey, ends)
			}

			// A plain partition consumer reads each partition from the start to its end offset.
			cons, err := sarama.NewConsumer(c.Bootstrap(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			var read []produced
			for p := int32(0); p < partitions; p++ {
				pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				next := int64(0)
				for next < ends[p] {
					select {
					case m := <-pc.Messages():
						if m.Offset != next {
							t.Fatalf("partition %d: got offset %d, want %d", p, m.Offset, next)
						}
						next++
						read = append(read, parseValue(t, m.Value))
					case err := <-pc.Errors():
						t.Fatalf("partition %d: %v", p, err)
					case <-ctx.Done():
						t.Fatalf("partition %d: read %d of %d before timeout", p, next, ends[p])
					}
				}
				// Stay for a few empty long polls: an answer without records must decode too.
				select {
				case err := <-pc.Errors():
					t.Fatalf("partition %d, after reading to the end: %v", p, err)
				case m := <-pc.Messages():
					t.Fatalf("partition %d: offset %d beyond the end offset %d", p, m.Offset, ends[p])
				case <-time.After(4 * cfg.Consumer.MaxWaitTime):
				}
				if err := pc.Close(); err != nil {
					t.Fatal(err)
				}
			}
			checkExactlyOnceInOrder(t, read, keys, perKey)

			// A group member commits each message after it has recorded it.
			h := &groupRecorder{}
			m := runGroup(t, c, cfg, "sarama-group", topic, h)
			testkit.WaitFor(t, 30*time.Second, "the group member to read every record", func() bool { return len(h.records(t)) >= keys*perKey })
			time.Sleep(4 * cfg.Consumer.MaxWaitTime) // a few empty long polls, which must decode too
			m.stop()
			if errs := m.errors(); len(errs) > 0 {
				t.Fatalf("the group member reported %d errors, first: %v", len(errs), errs[0])
			}
			checkExactlyOnceInOrder(t, h.records(t), keys, perKey)
			committed := committedOffsets(ctx, t, c, "sarama-group", topic)
			for p, end := range ends {
				if committed[p] != end {
					t.Fatalf("partition %d: committed %d, want the end offset %d (all: %v)", p, committed[p], end, committed)
				}
			}
		})
	}
}

func TestSaramaGroupRebalanceBetweenTwoMembersMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	c := kafkatest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic, group, partitions, keys, perKey = "sarama-rebalance", "sarama-rebalance", 4, 8, 100
	if err := c.CreateTopic(ctx, topic, partitions, 1, nil); err != nil {
		t.Fatal(err)
	}
	cfg := saramaConfig(sarama.MaxVersion)

	// The producer writes keyed records steadily while the group changes shape.
	prod, err := sarama.NewSyncProducer(c.Bootstrap(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var produceErr error
	var sent sync.WaitGroup
	sent.Add(1)
	progress := make(chan int, perKey)
	go func() {
		defer sent.Done()
		defer close(progress)
		for s := 0; s < perKey; s++ {
			msgs := make([]*sarama.ProducerMessage, keys)
			for k := range msgs {
				msgs[k] = keyed(topic, k, s)
			}
			if err := prod.SendMessages(msgs); err != nil {
				produceErr = fmt.Errorf("round %d: %w", s, err)
				return
			}
			progress <- s
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// Partitions change hands only between sessions, so the shared log of what both members
	// processed, in processing order, holds each key's records in order.
	var all deliveries
	a := &groupRecorder{shared: &all}
	b := &groupRecorder{shared: &all}
	ma := runGroup(t, c, cfg, group, topic, a)
	testkit.WaitFor(t, 20*time.Second, "member a to own every partition and read", func() bool {
		return len(a.owned()) == partitions && len(a.records(t)) > keys*perKey/5
	})
	mb := runGroup(t, c, cfg, group, topic, b)
	testkit.WaitFor(t, 20*time.Second, "a and b to split the partitions and b to read", func() bool {
		oa, ob := a.owned(), b.owned()
		return len(oa) > 0 && len(ob) > 0 && len(oa)+len(ob) == partitions && len(b.records(t)) > 0
	})
	mid := len(a.records(t)) + len(b.records(t))
	mb.stop() // b leaves mid-stream: a takes its partitions back from the committed offsets
	testkit.WaitFor(t, 20*time.Second, "a to own every partition again", func() bool { return len(a.owned()) == partitions })
	sent.Wait()
	if produceErr != nil {
		t.Fatal(produceErr)
	}
	if mid >= keys*perKey {
		t.Fatalf("the rebalances happened after everything was read (%d records); nothing was mid-stream", mid)
	}

	// Every produced record reaches a member, each key's records in order; a redelivery (a record
	// processed again after a rebalance) can only repeat what came before.
	testkit.WaitFor(t, 20*time.Second, "every record to be consumed", func() bool {
		seen := map[produced]bool{}
		for _, p := range all.records(t) {
			seen[p] = true
		}
		return len(seen) == keys*perKey
	})
	next := map[string]int{}
	dups := 0
	for _, p := range all.records(t) {
		switch {
		case p.seq == next[p.key]:
			next[p.key]++
		case p.seq < next[p.key]:
			dups++
		default:
			t.Fatalf("key %s: got sequence %d before %d (lost or reordered)", p.key, p.seq, next[p.key])
		}
	}
	ends := endOffsets(ctx, t, c, topic)
	testkit.WaitFor(t, 10*time.Second, "the group's commits to reach the end offsets", func() bool {
		committed := committedOffsets(ctx, t, c, group, topic)
		for p, end := range ends {
			if committed[p] != end {
				return false
			}
		}
		return true
	})
	ma.stop()
	// Errors a rebalance causes (a commit refused in the middle of one) are retried; log them.
	for _, err := range append(ma.errors(), mb.errors()...) {
		t.Logf("group member reported: %v", err)
	}
	t.Logf("%d records, %d read before b left, a read %d, b read %d, redelivered %d", keys*perKey, mid, len(a.records(t)), len(b.records(t)), dups)
}

// keyedAsync produces keys×perKey keyed records through an idempotent async producer, calling
// onAck after each acknowledgement, and returns the acknowledged values and the errors.
func keyedAsync(t *testing.T, prod sarama.AsyncProducer, topic string, keys, perKey int, onAck func(acked int)) (acked []string, errs []error) {
	t.Helper()
	go func() {
		for s := 0; s < perKey; s++ {
			for k := 0; k < keys; k++ {
				prod.Input() <- keyed(topic, k, s)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for len(acked)+len(errs) < keys*perKey {
		select {
		case m := <-prod.Successes():
			v, _ := m.Value.Encode()
			acked = append(acked, string(v))
			onAck(len(acked))
		case err := <-prod.Errors():
			errs = append(errs, err)
		}
	}
	return acked, errs
}

func TestSaramaIdempotentAcksAllLosesNothingWhenLeaderIsKilledMidStream(t *testing.T) {
	t.Parallel()
	const topic, keys, perKey = "sarama-killed-leader", 10, 150
	c, leader := bundled.ThreeBrokers(t, topic, map[string]string{"min.insync.replicas": "2"})
	before, _ := c.Partition(topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := saramaConfig(sarama.MaxVersion)
	prod, err := sarama.NewAsyncProducer(c.Bootstrap(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	killed := false
	acked, errs := keyedAsync(t, prod, topic, keys, perKey, func(n int) {
		if !killed && n >= keys*perKey/3 {
			killed = true
			if err := c.Kill(leader); err != nil {
				t.Fatal(err)
			}
		}
	})
	for _, err := range errs {
		t.Errorf("not acknowledged: %v", err)
	}
	if t.Failed() {
		t.FailNow()
	}
	after, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.Leader >= 0 && i.Leader != leader })
	if err != nil {
		t.Fatal(err)
	}
	if after.LeaderEpoch <= before.LeaderEpoch {
		t.Fatalf("leader epoch %d did not grow past %d", after.LeaderEpoch, before.LeaderEpoch)
	}
	var got []produced
	stored := map[string]bool{}
	for _, v := range readAll(t, c, topic) {
		got = append(got, parseValue(t, []byte(v)))
		stored[v] = true
	}
	for _, v := range acked {
		if !stored[v] {
			t.Fatalf("acknowledged %q is not in the log after failover", v)
		}
	}
	checkExactlyOnceInOrder(t, got, keys, perKey)
	t.Logf("%d acknowledged, leader %d killed after %d acks, new leader %d epoch %d", len(acked), leader, keys*perKey/3, after.Leader, after.LeaderEpoch)
}

// TestSaramaAcksDecideWhetherLeaderOnlyRecordsAreAcknowledged runs one schedule — followers
// paused, five records produced, leader killed, followers resumed — with acks=1 and acks=all.
// acks=1 acknowledges records only the leader had, and they are lost; acks=all acknowledges none
// of them, so nothing acknowledged is lost.
func TestSaramaAcksDecideWhetherLeaderOnlyRecordsAreAcknowledged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		acks      sarama.RequiredAcks
		wantAcked bool
	}{
		{"acks=1 acknowledges and loses", sarama.WaitForLocal, true},
		{"acks=all never acknowledges", sarama.WaitForAll, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := fmt.Sprintf("sarama-acks%d", tc.acks)
			c, leader := bundled.ThreeBrokers(t, topic, nil, kafkatest.ReplicaLagMax(30*time.Second))
			info, _ := c.Partition(topic, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cfg := saramaConfig(sarama.MaxVersion)
			cfg.Producer.Idempotent = false
			cfg.Producer.RequiredAcks = tc.acks
			cfg.Producer.Retry.Max = 0
			cfg.Producer.Timeout = 500 * time.Millisecond
			prod, err := sarama.NewSyncProducer(c.Bootstrap(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("replicated")}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.HW == 1 }); err != nil {
				t.Fatal(err)
			}
			bundled.OnFollowers(t, info, c.PauseReplication)
			var msgs []*sarama.ProducerMessage
			for i := 0; i < 5; i++ {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint("leader-only-", i))})
			}
			err = prod.SendMessages(msgs)
			var perrs sarama.ProducerErrors
			switch {
			case tc.wantAcked && err != nil:
				t.Fatalf("acks=%d while followers are paused: %v", tc.acks, err)
			case !tc.wantAcked && !errors.As(err, &perrs):
				t.Fatalf("acks=%d while followers are paused: got %v, want every record refused", tc.acks, err)
			case !tc.wantAcked && len(perrs) != len(msgs):
				t.Fatalf("acks=%d: %d of %d records acknowledged although no follower copied them", tc.acks, len(msgs)-len(perrs), len(msgs))
			}
			if !tc.wantAcked {
				t.Logf("acks=all while followers are paused: %v", perrs[0].Err)
			}
			if rep, _ := c.Replica(leader, topic, 0); rep.LEO != 6 {
				t.Fatalf("leader's log ends at %d, want 6 (the five records were appended locally)", rep.LEO)
			}
			if err := c.Kill(leader); err != nil {
				t.Fatal(err)
			}
			bundled.OnFollowers(t, info, c.ResumeReplication)
			after, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return i.Leader >= 0 && i.Leader != leader })
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, c, topic); !slices.Equal(got, []string{"replicated"}) {
				t.Fatalf("after failover to %d the topic holds %q, want only the replicated record", after.Leader, got)
			}
		})
	}
}

func TestSaramaNotEnoughReplicasWhenTwoOfThreeBrokersAreDown(t *testing.T) {
	t.Parallel()
	const topic = "sarama-min-isr"
	c, leader := bundled.ThreeBrokers(t, topic, map[string]string{"min.insync.replicas": "2"})
	info, _ := c.Partition(topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bundled.OnFollowers(t, info, c.Kill)
	if _, err := c.WaitPartition(ctx, topic, 0, func(i kafkatest.PartitionInfo) bool { return slices.Equal(i.ISR, []int32{leader}) }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		acks sarama.RequiredAcks
		want error
	}{
		{"acks=all is refused", sarama.WaitForAll, sarama.ErrNotEnoughReplicas},
		{"acks=1 succeeds", sarama.WaitForLocal, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := saramaConfig(sarama.MaxVersion)
			cfg.Producer.Idempotent = tc.acks == sarama.WaitForAll
			cfg.Producer.RequiredAcks = tc.acks
			cfg.Producer.Retry.Max = 1
			prod, err := sarama.NewSyncProducer(c.Bootstrap(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			before, _ := c.Replica(leader, topic, 0)
			_, off, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(tc.name)})
			if !errors.Is(err, tc.want) {
				t.Fatalf("ISR=[%d], min.insync.replicas=2: got %v, want %v", leader, err, tc.want)
			}
			after, _ := c.Replica(leader, topic, 0)
			switch {
			case tc.want != nil && after.LEO != before.LEO:
				t.Fatalf("log end offset moved from %d to %d although the write was refused", before.LEO, after.LEO)
			case tc.want == nil && (off != before.LEO || after.LEO != before.LEO+1):
				t.Fatalf("acknowledged at offset %d; log end %d -> %d", off, before.LEO, after.LEO)
			}
		})
	}
}
