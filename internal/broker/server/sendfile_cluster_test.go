package server_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaguard/kafkaguard/internal/broker/cluster"
	"github.com/kafkaguard/kafkaguard/internal/broker/meta"
	"github.com/kafkaguard/kafkaguard/internal/broker/server"
	"github.com/kafkaguard/kafkaguard/internal/broker/wire"
	"github.com/kafkaguard/kafkaguard/internal/testkit"
)

// testCluster is a controller and brokers started directly, so that tests reach each broker's
// Config and SendfileBytes (kafkatest hides them).
type testCluster struct {
	tb       testing.TB
	dir      string
	zeroCopy bool
	ctrl     *cluster.Controller
	config   func(*server.Config) // if not nil, adjusts each broker's config before it starts

	mu    sync.Mutex
	addrs []string
	nodes []*server.Broker // nil while killed
	links []*fetchLinks
}

// fetchLinks is one broker's way to the other brokers in these tests (its replica fetchers'
// connections): paused, it refuses dials and drops its connections, as the cluster package's
// PauseReplication does at its edge.
type fetchLinks struct {
	mu     sync.Mutex
	paused bool
	conns  []net.Conn
}

func (l *fetchLinks) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.paused {
		return nil, errors.New("replication paused")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		l.conns = append(l.conns, c)
	}
	return c, err
}

func (l *fetchLinks) pause(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused = on
	if on {
		for _, c := range l.conns {
			_ = c.Close()
		}
		l.conns = nil
	}
}

// pauseReplication stops (or resumes) broker id's replica fetchers.
func (c *testCluster) pauseReplication(id int32, on bool) { c.links[id].pause(on) }

func startCluster(tb testing.TB, brokers int, zeroCopy bool, config ...func(*server.Config)) *testCluster {
	tb.Helper()
	c := &testCluster{tb: tb, dir: tb.TempDir(), zeroCopy: zeroCopy}
	if len(config) > 0 {
		c.config = config[0]
	}
	ctrl, err := cluster.NewController(cluster.ControllerConfig{SessionTimeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	c.ctrl = ctrl
	c.addrs = make([]string, brokers)
	c.nodes = make([]*server.Broker, brokers)
	for range brokers {
		c.links = append(c.links, &fetchLinks{})
	}
	for i := range brokers {
		c.addrs[i] = "127.0.0.1:0"
		c.start(int32(i))
	}
	tb.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, b := range c.nodes {
			if b != nil {
				_ = b.Close()
			}
		}
		ctrl.Close()
	})
	return c
}

func (c *testCluster) start(id int32) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := server.Config{
		ID: id, ListenAddr: c.addrs[id], DataDir: filepath.Join(c.dir, fmt.Sprint("broker-", id)), Controller: c.ctrl.For(id),
		ReplicaLagMax: 10 * time.Second, ReplicaFetchMaxWait: 50 * time.Millisecond, HeartbeatInterval: 150 * time.Millisecond,
		DefaultReplicationFactor: 1,
		DisableZeroCopy:          !c.zeroCopy,
		Dialer:                   c.links[id],
	}
	if c.config != nil {
		c.config(&cfg)
	}
	b, err := server.Start(ctx, cfg)
	if err != nil {
		c.tb.Fatalf("start broker %d: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.addrs[id] = b, b.Addr()
	c.mu.Unlock()
}

func (c *testCluster) kill(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[id].Kill()
	c.nodes[id] = nil
}

func (c *testCluster) broker(id int32) *server.Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *testCluster) bootstrap() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.addrs...)
}

// waitFor polls cond until it holds, failing the test after 30 seconds.
func (c *testCluster) waitFor(what string, cond func() bool) {
	c.tb.Helper()
	testkit.WaitFor(c.tb, 30*time.Second, what, cond)
}

func (c *testCluster) partition(topic string, p int32) meta.Partition {
	st, _ := c.ctrl.Image().Partition(topic, p)
	return st
}

// createTopic creates a topic and waits until every partition has its full ISR.
func (c *testCluster) createTopic(topic string, partitions int32, rf int16, configs map[string]string) {
	c.tb.Helper()
	errs := c.ctrl.CreateTopics(context.Background(), []server.TopicSpec{{Name: topic, Partitions: partitions, ReplicationFactor: rf, Configs: configs}}, false)
	if errs[0] != nil {
		c.tb.Fatal(errs[0])
	}
	c.waitFor("topic "+topic+" fully replicated", func() bool {
		for p := range partitions {
			if st := c.partition(topic, p); st.Leader < 0 || len(st.ISR) != int(rf) {
				return false
			}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, b := range c.nodes {
			if b != nil && b.Image().Version < c.ctrl.Image().Version {
				return false
			}
		}
		return true
	})
}

// sendfileBytes sums SendfileBytes over the running brokers.
func (c *testCluster) sendfileBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, b := range c.nodes {
		if b != nil {
			n += b.SendfileBytes()
		}
	}
	return n
}

type recordID struct {
	partition int32
	offset    int64
}

// ledger maps each record's partition and offset to the SHA-256 of its value.
type ledger struct {
	mu sync.Mutex
	m  map[recordID][32]byte
}

func newLedger() *ledger { return &ledger{m: map[recordID][32]byte{}} }

func (l *ledger) add(tb testing.TB, r *kgo.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, sum := recordID{r.Partition, r.Offset}, sha256.Sum256(r.Value)
	if old, ok := l.m[id]; ok && old != sum {
		tb.Errorf("partition %d offset %d read twice with different bytes", r.Partition, r.Offset)
	}
	l.m[id] = sum
}

func (l *ledger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// mustEqual fails unless got holds exactly the records of l, byte for byte.
func (l *ledger) mustEqual(tb testing.TB, what string, got *ledger) {
	tb.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	got.mu.Lock()
	defer got.mu.Unlock()
	bad := 0
	for id, sum := range l.m {
		if g, ok := got.m[id]; !ok || g != sum {
			if bad++; bad <= 5 {
				tb.Errorf("%s: partition %d offset %d: read %v, bytes equal %v", what, id.partition, id.offset, ok, g == sum)
			}
		}
	}
	for id := range got.m {
		if _, ok := l.m[id]; !ok {
			if bad++; bad <= 10 {
				tb.Errorf("%s: partition %d offset %d was read but never acknowledged", what, id.partition, id.offset)
			}
		}
	}
	if bad > 0 {
		tb.Fatalf("%s: %d records differ (of %d acknowledged, %d read)", what, bad, len(l.m), len(got.m))
	}
}

// produce sends n records of random values (64 to 4 KiB) and returns once all are acknowledged.
// partition < 0 lets the key spread records over partitions.
func produce(tb testing.TB, cl *kgo.Client, topic string, n int, partition int32, acked *ledger) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range n {
		v := make([]byte, 64+int(randUint32()%4032))
		_, _ = rand.Read(v)
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%37), Value: v}
		if partition >= 0 {
			r.Partition = partition
		}
		wg.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				if failed.Add(1) == 1 {
					tb.Errorf("produce: %v", err)
				}
				return
			}
			if acked != nil {
				acked.add(tb, r)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		tb.Fatalf("%d of %d records not acknowledged", failed.Load(), n)
	}
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// batchBytes counts the record-batch bytes a franz-go consumer receives.
type batchBytes struct{ n atomic.Int64 }

func (h *batchBytes) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	const batchOverhead = 61 // the v2 batch header, which CompressedBytes leaves out
	h.n.Add(int64(m.CompressedBytes + batchOverhead))
}

// consume reads topic's partitions from the start into got until stop is closed and got holds
// want records.
func consume(tb testing.TB, bootstrap []string, topic string, partitions int32, got *ledger, want func() int, stop <-chan struct{}, opts ...kgo.Opt) {
	tb.Helper()
	offsets := map[int32]kgo.Offset{}
	for p := range partitions {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(bootstrap...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(50 * time.Millisecond), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.FetchMaxPartitionBytes(256 << 10),
	}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stopped := false
	for !stopped || got.len() < want() {
		select {
		case <-stop:
			stopped = true
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			tb.Errorf("consumer read %d of %d records before its deadline", got.len(), want())
			return
		}
		fs.EachRecord(func(r *kgo.Record) { got.add(tb, r) })
	}
}

func TestZeroCopyConsumerReadsBackExactlyWhatWasProducedAcrossSegmentRolls(t *testing.T) {
	t.Parallel()
	for _, zeroCopy := range []bool{true, false} {
		t.Run(fmt.Sprintf("zerocopy=%v", zeroCopy), func(t *testing.T) {
			const topic, partitions = "zc", 4
			c := startCluster(t, 1, zeroCopy)
			c.createTopic(topic, partitions, 1, map[string]string{"segment.bytes": "65536"})
			prod, err := kgo.NewClient(kgo.SeedBrokers(c.bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.ProducerLinger(time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()

			acked, got := newLedger(), newLedger()
			var hook batchBytes
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { // reads while the producer appends
				defer close(done)
				consume(t, c.bootstrap(), topic, partitions, got, acked.len, stop, kgo.WithHooks(&hook))
			}()
			for range 4 {
				produce(t, prod, topic, 500, -1, acked)
			}
			close(stop)
			<-done
			acked.mustEqual(t, "consumer", got)

			segments, _ := filepath.Glob(filepath.Join(c.dir, "broker-0", topic+"-*", "*.log"))
			if len(segments) < 3*partitions {
				t.Fatalf("only %d segment files: the test must read across segment rolls", len(segments))
			}
			sent, read := c.sendfileBytes(), hook.n.Load()
			t.Logf("%d records, %d segments, consumer received %d batch bytes, broker sent %d with sendfile", acked.len(), len(segments), read, sent)
			switch {
			case !zeroCopy && sent != 0:
				t.Fatalf("zero-copy off, yet %d bytes went out with sendfile", sent)
			case zeroCopy && (sent < read || sent > read+read/10):
				t.Fatalf("sendfile sent %d bytes for %d bytes of batches the consumer received", sent, read)
			}
		})
	}
}

// fetchAll sends one Fetch of every partition from offset 0 at version v.
func fetchAll(t *testing.T, cl *wire.Client, v int16, topic string, id [16]byte, partitions int32) *kmsg.FetchResponse {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(v)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 500, 1, 50<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	for p := range partitions {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := cl.Request(context.Background(), req)
	if err != nil {
		t.Fatalf("fetch v%d: %v", v, err)
	}
	return resp.(*kmsg.FetchResponse)
}

// checkBatches parses whole v2 batches, checks each CRC-32C, and returns the record values.
func checkBatches(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	var values [][]byte
	for len(raw) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			t.Fatalf("batch: %v", err)
		}
		size := int(b.Length) + 12
		if crc := crc32.Checksum(raw[21:size], crc32.MakeTable(crc32.Castagnoli)); int32(crc) != b.CRC {
			t.Fatalf("batch at offset %d: CRC mismatch", b.FirstOffset)
		}
		rs := b.Records
		for range b.NumRecords {
			var r kmsg.Record
			if err := r.ReadFrom(rs); err != nil {
				t.Fatalf("record: %v", err)
			}
			values = append(values, r.Value)
			rs = rs[binaryVarintLen(rs)+int(r.Length):]
		}
		raw = raw[size:]
	}
	return values
}

// binaryVarintLen is the length of the zig-zag varint that starts b.
func binaryVarintLen(b []byte) int {
	_, n := binary.Varint(b)
	return n
}

func TestZeroCopyFetchOfSeveralPartitionsIsByteExactAtEveryVersion(t *testing.T) {
	t.Parallel()
	const topic, partitions = "multi", 4
	c := startCluster(t, 1, true)
	c.createTopic(topic, partitions, 1, map[string]string{"segment.bytes": "4096"})
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	want := map[int32][][32]byte{}
	for p := range int32(partitions - 1) { // the last partition stays empty
		for i := range 30 {
			v := make([]byte, 100+i*7)
			_, _ = rand.Read(v)
			r, err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Partition: p, Value: v}).First()
			if err != nil {
				t.Fatal(err)
			}
			if r.Partition != p {
				t.Fatalf("record went to partition %d, want %d", r.Partition, p)
			}
			want[p] = append(want[p], sha256.Sum256(v))
		}
	}
	cl, err := wire.Dial(context.Background(), nil, c.bootstrap()[0], "zc-test")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	id := c.ctrl.Image().Topic(topic).ID
	for _, v := range []int16{4, 11, 12, 13, 17} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			before := c.sendfileBytes()
			resp := fetchAll(t, cl, v, topic, id, partitions)
			var data int64
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if rp.ErrorCode != 0 {
						t.Fatalf("partition %d: %v", rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
					}
					data += int64(len(rp.RecordBatches))
					values := checkBatches(t, rp.RecordBatches) // spans several 4 KiB segments
					if len(values) != len(want[rp.Partition]) {
						t.Fatalf("partition %d: %d records, want %d", rp.Partition, len(values), len(want[rp.Partition]))
					}
					for i, val := range values {
						if sha256.Sum256(val) != want[rp.Partition][i] {
							t.Fatalf("partition %d record %d differs from what was produced", rp.Partition, i)
						}
					}
					if rp.RecordBatches == nil {
						t.Errorf("partition %d: null record set; Kafka sends an empty one (sarama before v12 cannot decode null)", rp.Partition)
					}
				}
			}
			if got := c.sendfileBytes() - before; got != data {
				t.Fatalf("one fetch carried %d batch bytes; sendfile sent %d", data, got)
			}
		})
	}
}

func TestZeroCopyReplicationSurvivesAFollowerTruncation(t *testing.T) {
	t.Parallel()
	const topic, partitions = "trunc", 2
	c := startCluster(t, 2, true)
	c.createTopic(topic, partitions, 2, map[string]string{"segment.bytes": "32768"})
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	acked, live := newLedger(), newLedger()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // a consumer reads through the whole story
		defer close(done)
		consume(t, c.bootstrap(), topic, partitions, live, acked.len, stop)
	}()
	for p := range int32(partitions) {
		produce(t, prod, topic, 300, p, acked)
	}

	// The leader of partition 0 takes acks=1 records its follower never copies, then dies.
	st := c.partition(topic, 0)
	leader, follower := st.Leader, 1-st.Leader
	c.pauseReplication(follower, true)
	leaderOnly, err := kgo.NewClient(kgo.SeedBrokers(c.addrs[leader]), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	produce(t, leaderOnly, topic, 100, 0, nil)
	leaderOnly.Close()
	before, _ := c.broker(leader).PartitionState(topic, 0)
	c.kill(leader)
	c.pauseReplication(follower, false)
	c.waitFor("the follower to lead", func() bool { return c.partition(topic, 0).Leader == follower })
	for p := range int32(partitions) {
		produce(t, prod, topic, 300, p, acked)
	}

	// The old leader returns, truncates the records no one else has, and copies the new
	// leader's log through the zero-copy path while the producer keeps appending.
	servedBefore := c.broker(follower).SendfileBytes()
	c.start(leader)
	appending := make(chan struct{})
	go func() {
		defer close(appending)
		for p := range int32(partitions) {
			produce(t, prod, topic, 300, p, acked)
		}
	}()
	c.waitFor("the old leader back in every ISR", func() bool {
		for p := range int32(partitions) {
			if len(c.partition(topic, p).ISR) != 2 {
				return false
			}
		}
		return true
	})
	<-appending
	c.waitFor("the old leader caught up", func() bool {
		for p := range int32(partitions) {
			a, _ := c.broker(leader).PartitionState(topic, p)
			b, _ := c.broker(follower).PartitionState(topic, p)
			if a.LEO != b.LEO {
				return false
			}
		}
		return true
	})
	after, _ := c.broker(leader).PartitionState(topic, 0)
	if c.broker(follower).SendfileBytes() == servedBefore {
		t.Fatal("the returning replica did not fetch through sendfile")
	}

	// Make the truncated replica the only one left, and read everything from it.
	c.kill(follower)
	c.waitFor("the truncated replica to lead", func() bool {
		for p := range int32(partitions) {
			if c.partition(topic, p).Leader != leader {
				return false
			}
		}
		return true
	})
	close(stop)
	<-done
	acked.mustEqual(t, "consumer during the failovers", live)
	fresh := newLedger()
	closed := make(chan struct{})
	close(closed)
	consume(t, c.bootstrap(), topic, partitions, fresh, acked.len, closed)
	acked.mustEqual(t, "consumer of the truncated replica", fresh)
	t.Logf("partition 0 on the old leader: end %d before it died, %d after truncating and catching up; %d acknowledged records read back intact", before.LEO, after.LEO, acked.len())
}
